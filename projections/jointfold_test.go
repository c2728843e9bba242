package projections_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// appendRound journals customers new Stripe customers, each with the
// whole sample lifecycle, under ids of their own (round names them).
func appendRound(t *testing.T, j *ingest.Journal, round string, customers int) {
	t.Helper()
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for c := range customers {
		for i, typ := range samples.StripeTypes() {
			s := samples.Stripe{
				EventID: fmt.Sprintf("evt_%s_%d_%d", round, c, i), Type: typ, Created: base.Add(time.Duration(i) * time.Minute),
				CustomerID: fmt.Sprintf("cus_%s_%d", round, c), SubscriptionID: fmt.Sprintf("sub_%s_%d", round, c),
			}
			_, err := j.Append(context.Background(), &domain.Envelope{
				Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type, Created: s.Created,
				Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event(),
			})
			require.NoError(t, err)
		}
	}
}

// foldConsumers lists the journal's fold consumers: the joint ones and the
// projectors' own.
func foldConsumers(t *testing.T, js jetstream.JetStream) (joint, own []*jetstream.ConsumerInfo) {
	t.Helper()
	s, err := js.Stream(context.Background(), domain.JournalStream)
	require.NoError(t, err)
	list := s.ListConsumers(context.Background())
	for info := range list.Info() {
		switch {
		case strings.HasPrefix(info.Name, "billfold-fold-"):
			joint = append(joint, info)
		case info.Name != ingest.DeliveryLogDurable:
			own = append(own, info)
		}
	}
	require.NoError(t, list.Err())
	return joint, own
}

// newJournal starts an embedded NATS with billfold's streams and returns
// its JetStream, the journal and the projections.
func newJournal(t *testing.T) (jetstream.JetStream, *ingest.Journal, []reducers.Projection) {
	t.Helper()
	nc, js := natstest.Connect(t, natstest.Server(t))
	require.NoError(t, ingest.EnsureStreams(context.Background(), js, ingest.StreamOptions{Replicas: 1}))
	return js, ingest.NewJournal(nc, js), reducers.All(reducers.DefaultOptions())
}

// waitFold waits, at most 30 s, until the journal has joint joint fold
// consumers and own projectors' own ones.
func waitFold(t *testing.T, js jetstream.JetStream, joint, own int, msg string) {
	t.Helper()
	require.Eventually(t, func() bool {
		j, o := foldConsumers(t, js)
		return len(j) == joint && len(o) == own
	}, 30*time.Second, 20*time.Millisecond, msg)
}

// assertCleanFold asserts every store equals a clean fold of the journal.
func assertCleanFold(t *testing.T, js jetstream.JetStream, projs []reducers.Projection) {
	t.Helper()
	want, _, err := rebuild.FoldJournal(context.Background(), js, projs)
	require.NoError(t, err)
	for _, p := range projs {
		got := projtest.StoreContents(t, js, p.Name())
		if !assert.ElementsMatch(t, slices.Collect(maps.Keys(want[p.Name()])), slices.Collect(maps.Keys(got)), "%s: the records of a clean fold", p.Name()) {
			continue
		}
		for k, v := range want[p.Name()] {
			assert.JSONEq(t, string(v), string(got[k]), "%s %s", p.Name(), k)
		}
	}
}

// startEngines runs n engines (n billfold processes) on one NATS until
// stop, or the test's end.
func startEngines(t *testing.T, ctx context.Context, js jetstream.JetStream, projs []reducers.Projection, n int) (engines []*projections.Engine, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range n {
		e, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1, Log: projtest.QuietLog})
		require.NoError(t, err)
		engines = append(engines, e)
		wg.Go(func() { e.Run(ctx) })
	}
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return engines, stop
}

// Issue 14: while no projection is held, one journal consumer folds every
// projection. Each event is delivered once and acknowledged once, not once
// per projection, and the stores are those of a clean fold.
func TestOneConsumerFoldsEveryProjection(t *testing.T) {
	js, j, projs := newJournal(t)
	ctx := context.Background()
	engines, _ := startEngines(t, ctx, js, projs, 1)
	e := engines[0]
	appendRound(t, j, "one", 30)
	projtest.WaitCaughtUp(t, e)

	joint, own := foldConsumers(t, js)
	require.Len(t, joint, 1, "one joint consumer")
	assert.Empty(t, own, "no projector has a consumer of its own")
	head, err := projections.JournalHead(ctx, js)
	require.NoError(t, err)
	info := joint[0]
	assert.Equal(t, head, info.AckFloor.Stream, "every event acknowledged")
	assert.Equal(t, head, info.Delivered.Consumer, "each event delivered once for the four projections")
	for _, p := range projs {
		pos, err := e.Position(ctx, p.Name(), 1)
		require.NoError(t, err)
		assert.Equal(t, head, pos, "%s is at the joint consumer's position", p.Name())
	}
	assertCleanFold(t, js, projs)
}

// A pause splits the fold (each projection its own consumer, from the
// joint one's position) and a resume merges it again once the held
// projection caught up. Through pauses and resumes of every projection in
// turn, made through either of two engines while events are journaled,
// no event is lost from any projection: the stores equal a clean fold, and
// the fold ends joint.
func TestPausesSplitAndResumesMergeTheFold(t *testing.T) {
	js, j, projs := newJournal(t)
	ctx := context.Background()
	engines, _ := startEngines(t, ctx, js, projs, 2)
	appendRound(t, j, "start", 5)
	projtest.WaitCaughtUp(t, engines[0])

	for i, p := range projs {
		by, other := engines[i%2], engines[(i+1)%2]
		_, err := by.Pause(ctx, []string{p.Name()}, "ops")
		require.NoError(t, err)
		waitFold(t, js, 0, len(projs), "pausing "+p.Name()+" splits the fold")
		appendRound(t, j, fmt.Sprintf("held%d", i), 3)
		require.Eventually(t, func() bool {
			lag, err := other.Lag(ctx)
			if err != nil {
				return false
			}
			for _, q := range projs {
				if q.Name() != p.Name() && lag[q.Name()] > 0 {
					return false
				}
			}
			return true
		}, 20*time.Second, 20*time.Millisecond, "the projections not held fold while %s is held", p.Name())
		lag, err := by.Lag(ctx)
		require.NoError(t, err)
		assert.Positive(t, lag[p.Name()], "%s does not fold while held", p.Name())

		_, err = other.Resume(ctx, nil)
		require.NoError(t, err)
		appendRound(t, j, fmt.Sprintf("resumed%d", i), 3)
		waitFold(t, js, 1, 0, "resuming "+p.Name()+" merges the fold again")
	}
	projtest.WaitCaughtUp(t, engines[1])
	assertCleanFold(t, js, projs)
}

// An install from before the joint fold has one consumer per projection,
// each at its own position. The engine folds with them until every one
// caught up, then merges them into one joint consumer from the lowest
// position, and nothing is lost or folded twice into a different state.
func TestProjectorsOfAnEarlierReleaseMergeIntoTheJointFold(t *testing.T) {
	js, j, projs := newJournal(t)
	ctx := context.Background()
	appendRound(t, j, "before", 10)

	// The earlier release: each projection folded by its own consumer, the
	// customers up to the journal's end, the others not at all.
	setup, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1, Log: projtest.QuietLog})
	require.NoError(t, err)
	joint, _ := foldConsumers(t, js)
	require.Len(t, joint, 1)
	require.NoError(t, js.DeleteConsumer(ctx, domain.JournalStream, joint[0].Name))
	var customers *projections.Projector
	for _, p := range projs {
		pr := setup.CatchUpProjector(p.Name(), setup.Store(p.Name()), projtest.QuietLog, 0)
		_, err := pr.EnsureConsumer(ctx)
		require.NoError(t, err)
		if p.Name() == domain.ProjectionCustomers {
			customers = pr
		}
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = customers.Run(cctx); close(done) }()
	require.Eventually(t, func() bool {
		pos, err := setup.Position(ctx, domain.ProjectionCustomers, 1)
		return err == nil && pos > 0
	}, 20*time.Second, 20*time.Millisecond)
	stop()
	<-done

	engines, _ := startEngines(t, ctx, js, projs, 1)
	e := engines[0]
	appendRound(t, j, "after", 5)
	waitFold(t, js, 1, 0, "the projectors' own consumers merge into one")
	projtest.WaitCaughtUp(t, e)
	assertCleanFold(t, js, projs)
}

// The joint fold equals the one-event-at-a-time fold: over generated
// histories, two engines (two billfold processes sharing the joint
// consumer), with a projection paused part-way through one engine and
// resumed through the other (the fold split and merged again), store for
// every projection the records one projector stores taking one event at a
// time.
func TestJointFoldEqualsOneAtATime(t *testing.T) {
	projtest.LimitRapidChecks(t, 10)
	projs := reducers.All(reducers.DefaultOptions())
	check := 0
	rapid.Check(t, func(rt *rapid.T) {
		check++
		srv := natstest.Server(t)
		defer srv.Shutdown()
		nc, js := natstest.Connect(t, srv)
		ctx := context.Background()
		require.NoError(rt, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
		journal := ingest.NewJournal(nc, js)
		events := drawHistory(rt, check)
		pauseAt := rapid.IntRange(0, len(events)).Draw(rt, "pause at")
		held := rapid.SampledFrom(projs).Draw(rt, "held").Name()

		engines, stop := startEngines(t, ctx, js, projs, 2)
		for i, env := range events {
			if i == pauseAt {
				_, err := engines[0].Pause(ctx, []string{held}, "ops")
				require.NoError(rt, err)
			}
			appendEnvelope(rt, journal, env)
		}
		_, err := engines[1].Resume(ctx, nil)
		require.NoError(rt, err)
		projtest.WaitCaughtUp(t, engines[0])
		stop()

		for _, p := range projs {
			one, err := runProjectors(js, p, 2, 1, 1, 1)
			require.NoError(rt, err, p.Name())
			sameRecords(rt, p.Name(), bucketContents(rt, js, one), bucketContents(rt, js, domain.ProjectionBucket(p.Name(), 1)), "by two engines' joint fold")
		}
	})
}

// alsoSeen is seen under a name of its own: a second projection beside it.
type alsoSeen struct{ seen }

func (alsoSeen) Name() string { return "alsoseen" }

// In the joint fold, an event one projection could not store (its
// compare-and-set race kept being lost) is handed back to the journal for
// every projection, not acknowledged because the others stored it: it is
// folded into that projection on a later delivery, its second fold in the
// others changes nothing, and nothing is dead-lettered.
func TestJointFoldHandsBackWhatOneProjectionCouldNotStore(t *testing.T) {
	f := newFixture(t)
	f.journalEvent(t, "evt_first", "customer.updated", "cus_0")
	f.journalEvent(t, "evt_contended", "contended", "cus_0")
	f.journalEvent(t, "evt_after", "customer.updated", "cus_1")
	left := &atomic.Int32{}
	left.Store(50) // more than one delivery's re-folds, fewer than the deliveries' allowed
	ctx, cancel := context.WithCancel(context.Background())
	projs := []reducers.Projection{alsoSeen{}, contender{kv: mustKV(t, f.js), left: left}}
	e, err := projections.NewEngine(ctx, f.js, projs, projections.EngineOptions{Replicas: 1, Log: f.log,
		Retry: projections.RetryPolicy{Attempts: 6, Initial: time.Millisecond, Max: 50 * time.Millisecond}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { e.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	require.Eventually(t, func() bool { return slices.Contains(f.record(t, "cus_0"), "evt_contended") }, 20*time.Second, 20*time.Millisecond,
		"the contended event is folded once the race ends")
	assert.Equal(t, []string{"evt_contended", "evt_first"}, f.record(t, "cus_0"))
	assert.Equal(t, []string{"evt_after"}, f.record(t, "cus_1"))
	also, err := f.js.KeyValue(ctx, domain.ProjectionBucket("alsoseen", 1))
	require.NoError(t, err)
	entry, err := also.Get(ctx, "cus_0")
	require.NoError(t, err)
	assert.JSONEq(t, `["evt_contended","evt_first"]`, string(entry.Value()), "folded twice, stored once")
	assert.Empty(t, f.deadLetters(t))
	joint, own := foldConsumers(t, f.js)
	assert.Len(t, joint, 1, "folded jointly")
	assert.Empty(t, own)
}

// Every split and merge records, before it deletes a consumer, what the
// consumer's projections had folded. Should every consumer that folds them
// be gone (two processes splitting and merging at once on different views
// of a pause could delete each other's), the fold resumes from the
// recorded position, not from the journal's first event, and loses
// nothing.
func TestFoldResumesFromTheRecordedPositionWhenItsConsumersAreGone(t *testing.T) {
	js, j, projs := newJournal(t)
	ctx := context.Background()
	engines, stop := startEngines(t, ctx, js, projs, 1)
	appendRound(t, j, "before", 10)
	projtest.WaitCaughtUp(t, engines[0])
	_, err := engines[0].Pause(ctx, []string{domain.ProjectionOrders}, "ops")
	require.NoError(t, err)
	waitFold(t, js, 0, len(projs), "the pause splits the fold")
	stop()
	folded, err := projections.JournalHead(ctx, js)
	require.NoError(t, err)

	_, own := foldConsumers(t, js)
	for _, c := range own {
		require.NoError(t, js.DeleteConsumer(ctx, domain.JournalStream, c.Name))
	}
	_, err = engines[0].Resume(ctx, nil)
	require.NoError(t, err)
	appendRound(t, j, "after", 3)

	engines, _ = startEngines(t, ctx, js, projs, 1)
	projtest.WaitCaughtUp(t, engines[0])
	joint, _ := foldConsumers(t, js)
	require.Len(t, joint, 1)
	assert.Equal(t, folded+1, joint[0].Config.OptStartSeq, "the fold resumes after the recorded position")
	assertCleanFold(t, js, projs)
}
