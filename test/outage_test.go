package test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// With --nats-url pointing at a separate NATS server, stopping that server
// under load gives 503 with Retry-After to every delivery it refuses (any
// other refusal fails), never 200 to one sent while it is down, /readyz
// goes 503,
// nothing is lost; starting it again, billfold recovers without a restart,
// and `billfold verify` finds the projections equal to a clean fold.
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
	probeSent := time.Now()
	code, answer, h := srv.post("stripe", body, stripeSig(body, probeSent, stripeSecret))
	probeAt := time.Now()
	assert.Equal(t, http.StatusServiceUnavailable, code, answer)

	time.Sleep(time.Second)
	ns = natstest.Start(t, opts)
	up := time.Now()
	require.Eventually(t, func() bool { code, _ := srv.get("/readyz"); return code == http.StatusOK },
		20*time.Second, 50*time.Millisecond, "billfold recovers without a restart")
	time.Sleep(300 * time.Millisecond)
	// The probe is a delivery like the others: its provider re-sends it.
	results := append(load.halt(), result{id: "evt_outage_probe", status: code, retryAfter: h.Get("Retry-After"), sent: probeSent, at: probeAt})

	// Every refusal is a 503 with Retry-After, the answer that makes a
	// provider re-send (a 500, a 400 or no answer fails the test); nothing
	// sent after NATS stopped is answered 200 before it is back (nothing
	// could have acknowledged it); and nothing is lost: the provider
	// re-sends what got no 200, and every event ends journaled once.
	var ok, refused int
	for _, r := range results {
		if r.status == http.StatusOK {
			ok++
			assert.False(t, r.sent.After(down) && r.at.Before(up), "200 while the journal was down: %s", r.id)
			continue
		}
		refused++
		assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s: a refusal is 503", r.id)
		assert.Equal(t, ingest.RetryAfter, r.retryAfter, "%s: a 503 says when to re-send", r.id)
		body := stripeBody(r.id, "customer.created", false)
		code, answer, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
		require.Equal(t, 200, code, answer)
	}
	require.Greater(t, ok, 10)
	require.Greater(t, refused, 10, "the load ran through the outage")
	window, _ := unavailableWindow(results)

	_, js := natstest.ConnectURL(t, url)
	lost, twice := faultFigures(t, js, srv, results)
	out, code := runBillfold(t, "verify", "--server", srv.admin)
	require.Equal(t, 0, code, "billfold verify after the outage:\n%s", out)
	t.Logf("outage: %d deliveries sent, %d acknowledged (200; %d of them only when re-sent after 503 or no answer), %d lost, %d applied twice; unavailability window %s, journal down %s; verify identical",
		len(results), len(results), refused, lost, twice, window.Round(time.Millisecond), up.Sub(down).Round(time.Millisecond))
}

// faultFigures checks the end of a fault under load, once every delivery in
// results has been answered 200 (first time or re-sent): each is in the
// journal exactly once and its customer in the customers projection, and
// the journal holds nothing else. It returns the deliveries lost (missing
// from either) and the extra copies journaled (applied twice).
func faultFigures(t *testing.T, js jetstream.JetStream, srv *server, results []result) (lost, twice int) {
	t.Helper()
	waitProjected(t, js, srv)
	ctx := ctxT(t)
	kv, err := js.KeyValue(ctx, domain.ProjectionBucket(domain.ProjectionCustomers, currentGeneration(ctx, js, domain.ProjectionCustomers)))
	require.NoError(t, err)
	journaled := journalSubjectCounts(t, js, "stripe")
	total := 0
	for _, n := range journaled {
		total += n
	}
	for _, r := range results {
		n := journaled[domain.JournalSubject("stripe", r.id)]
		_, err := kv.Get(ctx, reducers.CustomerKey("stripe", "cus_"+r.id))
		if n == 0 || err != nil {
			lost++
			t.Errorf("event %s (first answer %d): journaled %d times, in the customers projection: %t", r.id, r.status, n, err == nil)
		}
		twice += max(0, n-1)
	}
	assert.Equal(t, len(results), total, "each event journaled once, nothing else")
	assert.Zero(t, lost, "lost")
	assert.Zero(t, twice, "applied twice")
	return lost, twice
}
