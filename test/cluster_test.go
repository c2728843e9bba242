package test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/test/natstest"
)

// Three NATS servers in a cluster, the journal and KV at R3, two billfold
// processes against it. Killing the journal's stream leader under load
// loses no delivery answered 200 and applies none twice; the
// unavailability window (first to last refused delivery) stays under 5 s;
// once the node is back every stream converges and `billfold verify`
// exits 0 on both processes.
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

	// The provider re-sends what got no 200.
	window, refused := unavailableWindow(results)
	for _, r := range results {
		if r.status != 200 {
			body := stripeBody(r.id, "customer.created", false)
			code, answer, _ := a.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
			require.Equal(t, 200, code, answer)
		}
	}
	// Converged: every stream billfold owns (journal, delivery log, dead
	// letters, changes, the KV buckets) has a leader and both other nodes,
	// the restarted one included, current.
	var names []string
	require.Eventually(t, func() bool {
		names = names[:0]
		for name := range js.StreamNames(ctxT(t)).Name() {
			i, err := js.Stream(ctxT(t), name)
			if err != nil {
				return false
			}
			info, err := i.Info(ctxT(t))
			if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 || !allCurrent(info.Cluster.Replicas) {
				return false
			}
			names = append(names, name)
		}
		return len(names) > len(domain.Projections)
	}, 30*time.Second, 100*time.Millisecond, "the restarted node catches up on every stream")
	lost, twice := faultFigures(t, js, a, results)
	for _, srv := range []*server{a, b} {
		out, code := runBillfold(t, "verify", "--server", srv.admin)
		require.Equal(t, 0, code, "billfold verify on %s after the node came back:\n%s", srv.admin, out)
	}
	t.Logf("cluster: killed stream leader %s under load and brought it back; %d deliveries sent, %d acknowledged (200; %d of them only when re-sent), %d lost, %d applied twice; unavailability window %s; %d streams converged at R3; verify identical on both billfold processes",
		leader, len(results), len(results), refused, lost, twice, window.Round(time.Millisecond), len(names))
	assert.Greater(t, len(results), 100)
	assert.Less(t, window, 5*time.Second, "the unavailability window (first to last refused delivery) stays under 5 s")
}

func allCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current {
			return false
		}
	}
	return true
}
