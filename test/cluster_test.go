package test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/test/natstest"
)

// Three NATS servers in a cluster, the journal at R3, two billfold
// processes against it. Killing the journal's stream leader under load
// loses no delivery answered 200; the unavailability window (first to last
// refused delivery) is logged for docs/reliability.md.
func TestClusterLosesTheJournalLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: runs in the full suite")
	}
	c := natstest.StartCluster(t, 3)
	urls := c.URLs()
	env := []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}
	a := startServer(t, t.TempDir(), env, "--nats-url", urls, "--replicas", "3", "--append-timeout", "2s")
	b := startServer(t, t.TempDir(), env, "--nats-url", urls, "--replicas", "3", "--append-timeout", "2s")

	_, js := natstest.ConnectURL(t, urls)
	stream, err := js.Stream(ctxT(t), domain.JournalStream)
	require.NoError(t, err)
	info, err := stream.Info(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, 3, info.Config.Replicas)
	leader := info.Cluster.Leader
	require.NotEmpty(t, leader)

	load := startLoad(func() []*server { return []*server{a, b} }, "evt_cluster", 10*time.Millisecond, 4000)
	time.Sleep(time.Second)
	var killed int
	for i, s := range c.Servers {
		if s.Name() == leader {
			killed = i
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	time.Sleep(4 * time.Second)
	c.Servers[killed] = natstest.Start(t, c.Opts[killed])
	time.Sleep(time.Second)
	results := load.halt()

	window, refused := unavailableWindow(results)
	t.Logf("cluster: killed stream leader %s; %d deliveries, %d refused; unavailability window %s", leader, len(results), refused, window)
	for _, r := range results {
		if r.status != 200 {
			body := stripeBody(r.id, "customer.created", false)
			code, answer, _ := a.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
			require.Equal(t, 200, code, answer)
		}
	}
	require.Eventually(t, func() bool {
		i, err := stream.Info(ctxT(t))
		return err == nil && i.Cluster.Leader != "" && len(i.Cluster.Replicas) == 2 && allCurrent(i.Cluster.Replicas)
	}, 30*time.Second, 100*time.Millisecond, "the restarted node catches up")
	assertJournaledOnce(t, strings.Split(urls, ",")[0], results)
	assert.Greater(t, len(results), 100)
}

func allCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current {
			return false
		}
	}
	return true
}
