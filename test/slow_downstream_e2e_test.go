package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/test/natstest"
)

// slowFeed is an SSE client of /v1/changes that, while slow is set, reads
// one event a second and never catches up.
type slowFeed struct {
	slow   atomic.Bool
	mu     sync.Mutex
	ids    []uint64
	events map[uint64]feed.Change
	closed atomic.Bool
}

// attachSlowFeed opens the feed (changes from now on) and returns once the
// server says it is attached.
func attachSlowFeed(t *testing.T, srv *server) *slowFeed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.admin+"/v1/changes", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	f := &slowFeed{events: map[uint64]feed.Change{}}
	f.slow.Store(true)
	attached := make(chan struct{})
	go func() {
		defer f.closed.Store(true)
		r := bufio.NewReaderSize(resp.Body, 4096)
		var id uint64
		var change feed.Change
		once := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, ":") && !once:
				once = true
				close(attached)
			case strings.HasPrefix(line, "id: "):
				id, _ = strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
			case strings.HasPrefix(line, "data: "):
				change = feed.Change{}
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &change)
			case line == "" && id != 0:
				f.mu.Lock()
				f.ids = append(f.ids, id)
				f.events[id] = change
				f.mu.Unlock()
				id = 0
				if f.slow.Load() {
					time.Sleep(time.Second)
				}
			}
		}
	}()
	select {
	case <-attached:
	case <-time.After(10 * time.Second):
		t.Fatal("feed not attached")
	}
	return f
}

// received returns the event ids read so far.
func (f *slowFeed) received() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ids)
}

// ackRun sends n signed Stripe customer.created deliveries at a steady
// rate, one at a time as a provider's queue would, and returns each one's
// time to the answer. Every answer must be 200 accepted.
func ackRun(t *testing.T, srv *server, phase string, n int, rate float64) []time.Duration {
	t.Helper()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	lat := make([]time.Duration, 0, n)
	for i := range n {
		<-tick.C
		body := stripeBody(fmt.Sprintf("evt_slow_%s_%03d", phase, i), "customer.created", false)
		h := stripeSig(body, time.Now(), stripeSecret)
		start := time.Now()
		code, answer, _ := srv.post("stripe", body, h)
		lat = append(lat, time.Since(start))
		require.Equal(t, 200, code, "%s delivery %d: %s", phase, i, answer)
		require.JSONEq(t, `{"received":true,"status":"accepted"}`, answer)
	}
	return lat
}

// quantile is the q-quantile (nearest rank) of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// changeSeqs returns, for each event id in want, the BILLFOLD_CHANGES
// sequences of the record changes it caused.
func changeSeqs(t *testing.T, js jetstream.JetStream, want map[string]bool) map[string][]uint64 {
	t.Helper()
	ctx := ctxT(t)
	s, err := js.Stream(ctx, domain.ChangesStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	out := map[string][]uint64{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		if !strings.HasPrefix(m.Subject, domain.ChangeSubjectPrefix) {
			continue
		}
		var c feed.Change
		require.NoError(t, json.Unmarshal(m.Data, &c))
		if want[c.EventID] {
			out[c.EventID] = append(out[c.EventID], seq)
		}
	}
	return out
}

// A slow change feed client and a slow NATS subscriber do not slow the
// answer to providers: billfold answers after the journal's PubAck, and
// the feeds are read from the journal's projections later. The same
// deliveries at the same rate are sent without and then with the slow
// consumers attached; every one is accepted, nothing is lost, the
// projections catch up, the slow SSE client is not dropped and gets every
// change once it reads again, and the slow subscriber gets every change.
// The ACK percentiles are logged (docs/reliability.md has the last ones)
// and bounded relative to the baseline measured in the same run: the
// median within 3x the baseline's + 5 ms, the p99 within 4x + 20 ms.
func TestSlowDownstreamDoesNotSlowAcks(t *testing.T) {
	const (
		n    = 150
		rate = 50.0 // deliveries per second
	)
	url := externalNATS(t)
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--nats-url", url,
		"--rate-limit", "100000", "--rate-burst", "100000")
	_, js := natstest.ConnectURL(t, url)

	baseline := ackRun(t, srv, "baseline", n, rate)
	waitProjected(t, js, srv)

	// The slow consumers: an SSE client reading one event a second, and a
	// core NATS subscriber on every change that spends 50 ms on each.
	sse := attachSlowFeed(t, srv)
	var asyncErrs atomic.Int64
	nc, _ := natstest.ConnectURL(t, url, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) { asyncErrs.Add(1) }))
	var subMu sync.Mutex
	subGot := map[string]bool{}
	sub, err := nc.Subscribe(domain.ChangeFilter(""), func(m *nats.Msg) {
		var c feed.Change
		_ = json.Unmarshal(m.Data, &c)
		time.Sleep(50 * time.Millisecond)
		subMu.Lock()
		subGot[c.EventID] = true
		subMu.Unlock()
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	slow := ackRun(t, srv, "slow", n, rate)
	slowRead := len(sse.received())
	waitProjected(t, js, srv)

	bp50, bp99, bmax := quantile(baseline, 0.5), quantile(baseline, 0.99), quantile(baseline, 1)
	sp50, sp99, smax := quantile(slow, 0.5), quantile(slow, 0.99), quantile(slow, 1)
	t.Logf("ACK latency, %d deliveries at %.0f/s: baseline p50 %v p99 %v max %v; with slow consumers p50 %v p99 %v max %v",
		n, rate, bp50.Round(10*time.Microsecond), bp99.Round(10*time.Microsecond), bmax.Round(10*time.Microsecond),
		sp50.Round(10*time.Microsecond), sp99.Round(10*time.Microsecond), smax.Round(10*time.Microsecond))
	t.Logf("the SSE client had read %d events when the last delivery was answered", slowRead)
	// Relative to the baseline this run measured, not to a fixed figure:
	// were answers waiting for a consumer, the median would take at least
	// the subscriber's 50 ms per change, or the SSE client's second.
	assert.LessOrEqual(t, sp50, 3*bp50+5*time.Millisecond, "median ACK with slow consumers stays near the baseline's")
	assert.LessOrEqual(t, sp99, 4*bp99+20*time.Millisecond, "p99 ACK with slow consumers stays near the baseline's")
	assert.Less(t, slowRead, n/2, "the SSE client really was slow: it fell behind")

	// Nothing lost: the journal holds both runs, and every customer is in
	// its projection.
	assert.Equal(t, uint64(2*n), journalCount(t, js))
	for i := range n {
		for _, phase := range []string{"baseline", "slow"} {
			code, _ := srv.get(fmt.Sprintf("/v1/customers/stripe/cus_evt_slow_%s_%03d", phase, i))
			require.Equal(t, 200, code, "customer of %s delivery %d", phase, i)
		}
	}

	// Every change of the slow run reached the change feed; the SSE
	// client, reading at full speed again, gets each of them once and in
	// order, and the slow subscriber got each.
	want := map[string]bool{}
	for i := range n {
		want[fmt.Sprintf("evt_slow_slow_%03d", i)] = true
	}
	var seqs map[string][]uint64
	require.Eventually(t, func() bool {
		seqs = changeSeqs(t, js, want)
		return len(seqs) == n
	}, 30*time.Second, 100*time.Millisecond, "every delivery of the slow run changed a record")
	sse.slow.Store(false)
	require.Eventually(t, func() bool {
		got := sse.received()
		have := map[uint64]bool{}
		for _, id := range got {
			have[id] = true
		}
		for _, ss := range seqs {
			for _, s := range ss {
				if !have[s] {
					return false
				}
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "the SSE client gets every change of the slow run")
	got := sse.received()
	for i := 1; i < len(got); i++ {
		require.Greater(t, got[i], got[i-1], "no change twice, none out of order")
	}
	assert.False(t, sse.closed.Load(), "the slow SSE client was not dropped")
	require.Eventually(t, func() bool {
		subMu.Lock()
		defer subMu.Unlock()
		for id := range want {
			if !subGot[id] {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "the slow subscriber gets every change")
	assert.True(t, sub.IsValid())
	assert.Zero(t, asyncErrs.Load(), "no slow-consumer or other async error on the subscriber")
	srv.alive(t)
}
