package test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/test/natstest"
)

// With --nats-url pointing at a separate NATS server, stopping that server
// under load gives 503 with Retry-After (never 200), /readyz goes 503,
// nothing is lost; starting it again, billfold recovers without a restart.
func TestJournalOutage(t *testing.T) {
	opts := natstest.Options(t.TempDir())
	opts.Port = natstest.FreePort(t)
	ns := natstest.Start(t, opts)
	url := fmt.Sprintf("nats://127.0.0.1:%d", opts.Port)
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--nats-url", url, "--append-timeout", "1s")

	load := startLoad(func() []*server { return []*server{srv} }, "evt_outage", 10*time.Millisecond, 2000)
	time.Sleep(500 * time.Millisecond)
	ns.Shutdown()
	ns.WaitForShutdown()
	down := time.Now()

	require.Eventually(t, func() bool { code, _ := srv.get("/readyz"); return code == http.StatusServiceUnavailable },
		10*time.Second, 50*time.Millisecond, "/readyz goes 503 while the journal is down")
	body := stripeBody("evt_outage_probe", "customer.created", false)
	code, answer, h := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
	assert.Equal(t, http.StatusServiceUnavailable, code, answer)
	assert.Equal(t, "5", h.Get("Retry-After"))

	time.Sleep(time.Second)
	ns = natstest.Start(t, opts)
	up := time.Now()
	require.Eventually(t, func() bool { code, _ := srv.get("/readyz"); return code == http.StatusOK },
		20*time.Second, 50*time.Millisecond, "billfold recovers without a restart")
	time.Sleep(300 * time.Millisecond)
	results := load.halt()

	// Nothing acknowledged while the server was down, and nothing lost: the
	// provider re-sends what got no 200, and every event ends journaled once.
	var ok, refused int
	for _, r := range results {
		if r.status == 200 {
			ok++
			assert.False(t, r.at.After(down.Add(100*time.Millisecond)) && r.at.Before(up), "200 while the journal was down: %s", r.id)
		} else {
			refused++
			code, answer, _ := srv.post("stripe", stripeBody(r.id, "customer.created", false), stripeSig(stripeBody(r.id, "customer.created", false), time.Now(), stripeSecret))
			require.Equal(t, 200, code, answer)
		}
	}
	require.Greater(t, ok, 10)
	require.Greater(t, refused, 10, "the load ran through the outage")
	window, _ := unavailableWindow(results)
	t.Logf("outage: %d deliveries, %d answered 200, %d refused (503 or no answer) over %s", len(results), ok, refused, window)

	assertJournaledOnce(t, url, results)
}

// assertJournaledOnce checks that every event in results is in the journal
// at url exactly once, and nothing else with its prefix.
func assertJournaledOnce(t *testing.T, url string, results []result) {
	t.Helper()
	_, js := natstest.ConnectURL(t, url)
	s, err := js.Stream(ctxT(t), domain.JournalStream)
	require.NoError(t, err)
	for _, r := range results {
		m, err := s.GetLastMsgForSubject(ctxT(t), domain.JournalSubject("stripe", r.id))
		require.NoError(t, err, "event %s (answered %d) is not in the journal", r.id, r.status)
		assert.Equal(t, r.id, m.Header.Get(domain.HeaderEventID))
	}
	info, err := s.Info(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(len(results)), info.State.Msgs, "each event journaled once")
}
