package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/test/natstest"
)

// A three-node JetStream cluster of separate nats-server processes, every
// stream and bucket at R3, billfold serving from it under signed load from
// a provider that re-sends whatever is not answered 200. Each node loss is
// a SIGKILL of the process (a crash: no Raft step-down, no goodbye to the
// peers):
//
//   - the journal's stream leader: the survivors elect another leader;
//     until then every refused delivery is answered 503 with Retry-After;
//     the unavailability window runs from the kill to the first 200 to a
//     delivery sent after it (a delivery held until the election counts
//     as unavailable time);
//   - a follower: the leader stays, and nothing is refused;
//   - two of the three nodes (quorum lost): every delivery is answered 503
//     with Retry-After until they are started again, then billfold
//     recovers without a restart.
//
// After each, the killed nodes come back, every stream converges (a
// leader and two current replicas), every delivery answered 200 is in the
// journal exactly once, projected once (wallet balances are exact) and in
// the delivery log, and `billfold verify` exits 0.
func TestClusterSurvivesNodeCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: runs in the full suite")
	}
	c := startNATSCluster(t, 3)
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret},
		"--nats-url", c.urls(), "--replicas", "3", "--append-timeout", "2s", "--rate-limit", "0")
	// The test's own view of the cluster reconnects to whichever node lives.
	_, js := natstest.ConnectURL(t, c.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	info := journalInfo(t, js)
	require.Equal(t, 3, info.Config.Replicas)

	t.Run("leader", func(t *testing.T) {
		leader := journalInfo(t, js).Cluster.Leader
		require.NotEmpty(t, leader)
		p := startClusterPhase(t, srv, "leader")
		killed := c.kill(leader)
		var now string
		require.Eventually(t, func() bool {
			if info := journalInfoNow(js); info != nil {
				now = info.Cluster.Leader
			}
			return now != "" && now != leader
		}, 30*time.Second, 50*time.Millisecond, "the survivors elect a new journal leader\n%s", c.logTails())
		p.waitFirst200After(t, killed)
		results := p.halt(t)
		window := firstOKAfter(results, killed).Sub(killed)
		refused := checkRefusals(t, results, killed, time.Time{})
		c.node(leader).start(t)
		p.finish(t, js, c)
		t.Logf("cluster, journal leader %s SIGKILLed under load: leader now %s; %s; unavailability window (kill to the first 200 to a delivery sent after it) %s; %d attempts refused (503, Retry-After)",
			leader, now, p.summary, window.Round(time.Millisecond), refused)
	})

	t.Run("follower", func(t *testing.T) {
		info := journalInfo(t, js)
		leader := info.Cluster.Leader
		require.NotEmpty(t, info.Cluster.Replicas)
		follower := info.Cluster.Replicas[0].Name
		p := startClusterPhase(t, srv, "follower")
		killed := c.kill(follower)
		p.waitFirst200After(t, killed)
		p.waitOKsAfter(t, killed, 50) // traffic on two nodes
		results := p.halt(t)
		window := firstOKAfter(results, killed).Sub(killed)
		refused := checkRefusals(t, results, killed, time.Time{})
		assert.Equal(t, leader, journalInfo(t, js).Cluster.Leader, "the journal keeps its leader when a follower dies")
		assert.Zero(t, refused, "no delivery refused while two of three nodes serve")
		c.node(follower).start(t)
		p.finish(t, js, c)
		t.Logf("cluster, follower %s SIGKILLed under load: leader stays %s; %s; first 200 after the kill %s later",
			follower, leader, p.summary, window.Round(time.Millisecond))
	})

	t.Run("quorum", func(t *testing.T) {
		leader := journalInfo(t, js).Cluster.Leader
		var victims []string
		for _, n := range c.nodes {
			if n.name != leader {
				victims = append(victims, n.name)
			}
		}
		victims = append(victims[:1], leader) // a follower and the leader
		p := startClusterPhase(t, srv, "quorum")
		c.kill(victims[0])
		killed := c.kill(victims[1])
		// Measured, not slept: wait until deliveries sent after both kills
		// have been refused for two seconds.
		require.Eventually(t, func() bool {
			for _, a := range p.load.answered() {
				if a.sent.After(killed.Add(2*time.Second)) && a.status != http.StatusOK {
					return true
				}
			}
			return false
		}, 30*time.Second, 50*time.Millisecond, "deliveries are refused without a quorum")
		restarted := time.Now()
		for _, v := range victims {
			c.node(v).start(t)
		}
		p.waitFirst200After(t, restarted)
		results := p.halt(t)
		refused := checkRefusals(t, results, killed, restarted)
		recovered := firstOKAfter(results, restarted).Sub(restarted)
		for _, r := range results {
			for _, a := range r.attempts {
				if !a.sent.Before(killed) && a.at.Before(restarted) {
					assert.NotEqual(t, http.StatusOK, a.status, "%s answered 200 without a quorum", r.id)
				}
			}
		}
		assert.Positive(t, refused)
		p.finish(t, js, c)
		t.Logf("cluster, two of three nodes (%v) SIGKILLed under load: %s; %d attempts refused (503, Retry-After) during %s without a quorum; first 200 %s after both were started again",
			victims, p.summary, refused, restarted.Sub(killed).Round(time.Millisecond), recovered.Round(time.Millisecond))
	})
}

// clusterPhase is one node loss under its own workload.
type clusterPhase struct {
	srv     *server
	w       crashWorkload
	load    *providerLoad
	results []providerAttempts
	summary string
}

// startClusterPhase starts a provider's load of new events (prefix
// names them) on srv and waits until it flows.
func startClusterPhase(t *testing.T, srv *server, prefix string) *clusterPhase {
	t.Helper()
	p := &clusterPhase{srv: srv, w: newCrashWorkload(prefix, 2000, 4)}
	p.load = startProviderLoad(func() string { return srv.public }, p.w.deliveries, 4, 15*time.Millisecond)
	require.Eventually(t, func() bool { return len(p.load.answered()) >= 50 }, 30*time.Second, 20*time.Millisecond, "the load flows")
	return p
}

// waitFirst200After waits until a delivery sent after since is answered 200.
func (p *clusterPhase) waitFirst200After(t *testing.T, since time.Time) {
	t.Helper()
	p.waitOKsAfter(t, since, 1)
}

// waitOKsAfter waits until n deliveries sent after since are answered 200.
func (p *clusterPhase) waitOKsAfter(t *testing.T, since time.Time, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		ok := 0
		for _, a := range p.load.answered() {
			if a.status == http.StatusOK && !a.sent.Before(since) {
				ok++
			}
		}
		return ok >= n
	}, 60*time.Second, 20*time.Millisecond, "%d deliveries sent after %s are answered 200\n%s", n, since.Format(time.TimeOnly), tail(p.srv.logs.String(), 3000))
}

// halt stops the load once every delivery in flight is answered 200.
func (p *clusterPhase) halt(t *testing.T) []providerAttempts {
	t.Helper()
	p.results = p.load.halt(60 * time.Second)
	for _, r := range p.results {
		require.True(t, r.acked(), "delivery %s answered 200 in the end: %+v", r.id, r.attempts)
	}
	require.Less(t, len(p.results), len(p.w.deliveries), "the load ran through the phase: give it more events")
	return p.results
}

// checkRefusals asserts that every attempt not answered 200 was answered
// 503 with Retry-After, the answer that tells a provider to re-send
// (never another status, never no answer), and returns how many attempts
// sent after from (and, when to is set, before to) were refused.
func checkRefusals(t *testing.T, results []providerAttempts, from, to time.Time) int {
	t.Helper()
	refused := 0
	for _, r := range results {
		for _, a := range r.attempts {
			if a.status == http.StatusOK {
				continue
			}
			assert.Equal(t, http.StatusServiceUnavailable, a.status, "%s: a refusal is 503", r.id)
			assert.Equal(t, ingest.RetryAfter, a.retryAfter, "%s: a 503 says when to re-send", r.id)
			if !a.sent.Before(from) && (to.IsZero() || a.sent.Before(to)) {
				refused++
			}
		}
	}
	return refused
}

// finish waits until every stream has a leader and two current replicas,
// then checks the phase's deliveries and runs billfold verify.
func (p *clusterPhase) finish(t *testing.T, js jetstream.JetStream, c *natsCluster) {
	t.Helper()
	streams := waitConverged(t, js, c)
	waitProjected(t, js, p.srv)
	waitDeliveryLog(t, p.srv)
	f := checkCrashOutcome(t, js, p.w, p.results)
	out, code := runBillfold(t, "verify", "--server", p.srv.admin)
	if t.Failed() || code != 0 {
		for _, line := range strings.Split(out, "\n") {
			// "<projection> <key>: differs"
			if f := strings.Fields(line); len(f) == 3 && f[2] == "differs" {
				t.Logf("%s", recordTrail(t, js, f[0], strings.TrimSuffix(f[1], ":"), ""))
			}
		}
		t.Logf("billfold's log:\n%s", tail(p.srv.logs.String(), 30000))
	}
	require.Equal(t, 0, code, "billfold verify after the nodes came back:\n%s", out)
	p.summary = fmt.Sprintf("%s, %d streams converged at R3, verify identical", crashCounts(p.results, f), streams)
}

// firstOKAfter is when the first delivery sent at or after since was
// answered 200.
func firstOKAfter(results []providerAttempts, since time.Time) time.Time {
	var first time.Time
	for _, r := range results {
		for _, a := range r.attempts {
			if a.status == http.StatusOK && !a.sent.Before(since) && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
	}
	return first
}

// journalInfo is the journal stream's info, retried while the cluster
// elects.
func journalInfo(t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	require.Eventually(t, func() bool {
		info = journalInfoNow(js)
		return info != nil && info.Cluster.Leader != ""
	}, 30*time.Second, 50*time.Millisecond, "the journal's stream info, with a leader")
	return info
}

// journalInfoNow is the journal stream's info with its cluster part, or
// nil when the cluster cannot say now.
func journalInfoNow(js jetstream.JetStream) *jetstream.StreamInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return nil
	}
	return info
}

// waitConverged waits until every stream billfold owns (journal, delivery
// log, dead letters, changes, the KV buckets) has a leader and both other
// nodes current, and returns how many there are.
func waitConverged(t *testing.T, js jetstream.JetStream, c *natsCluster) int {
	t.Helper()
	var names []string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		names = names[:0]
		for name := range js.StreamNames(ctx).Name() {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return false
			}
			info, err := s.Info(ctx)
			if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 || !allCurrent(info.Cluster.Replicas) {
				return false
			}
			names = append(names, name)
		}
		return len(names) > len(domain.Projections)
	}, 60*time.Second, 100*time.Millisecond, "the restarted nodes catch up on every stream\n%s", c.logTails())
	return len(names)
}

func allCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current {
			return false
		}
	}
	return true
}

// logTails is the end of every node's log.
func (c *natsCluster) logTails() string {
	var s string
	for _, n := range c.nodes {
		s += n.logTail() + "\n"
	}
	return s
}
