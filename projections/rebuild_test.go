package projections_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// replayFixture is a journal with a running engine, rebuilds and query.
type replayFixture struct {
	t        testing.TB
	nc       *nats.Conn
	js       jetstream.JetStream
	journal  *ingest.Journal
	projs    []reducers.Projection
	engine   *projections.Engine
	rebuilds *projections.Rebuilds
	query    *projections.Query
	stop     func()
}

var quietLog = slog.New(slog.NewTextHandler(logOut(), nil))

func logOut() io.Writer {
	if os.Getenv("BILLFOLD_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

func newReplayFixture(t testing.TB, nc *nats.Conn, js jetstream.JetStream, o reducers.Options, grace time.Duration) *replayFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	f := &replayFixture{t: t, nc: nc, js: js, journal: ingest.NewJournal(nc, js), projs: reducers.All(o)}
	var err error
	f.engine, err = projections.NewEngine(ctx, js, f.projs, projections.EngineOptions{Replicas: 1, Log: quietLog,
		Retry: projections.RetryPolicy{Attempts: 2, Initial: time.Millisecond, Max: 5 * time.Millisecond}})
	require.NoError(t, err)
	f.rebuilds, err = projections.NewRebuilds(ctx, f.engine, projections.RebuildOptions{Grace: grace, Log: quietLog})
	require.NoError(t, err)
	f.query = projections.NewQuery(f.engine, f.projs, "")
	var wg sync.WaitGroup
	wg.Go(func() { f.engine.Run(ctx) })
	wg.Go(func() { f.rebuilds.Run(ctx) })
	wg.Go(func() { f.query.Run(ctx) })
	f.stop = func() { cancel(); wg.Wait(); f.rebuilds.Wait() }
	t.Cleanup(f.stop)
	return f
}

func (f *replayFixture) append(s samples.Stripe) {
	_, err := f.journal.Append(context.Background(), &domain.Envelope{
		Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type, Created: s.Created,
		Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event(),
	})
	require.NoError(f.t, err)
}

// rebuild starts a rebuild or replay and waits for its end.
func (f *replayFixture) rebuild(req projections.RebuildRequest) *projections.Rebuild {
	f.t.Helper()
	rb, _, err := f.rebuilds.Start(context.Background(), req, "test")
	require.NoError(f.t, err)
	var done *projections.Rebuild
	require.Eventually(f.t, func() bool {
		done, err = f.rebuilds.Get(context.Background(), rb.ID)
		return err == nil && done.Finished()
	}, 60*time.Second, 20*time.Millisecond)
	return done
}

// verify asserts that every live record equals the clean fold.
func (f *replayFixture) verify() projections.VerifyReport {
	f.t.Helper()
	rep, err := f.engine.Verify(context.Background(), nil)
	require.NoError(f.t, err)
	return rep
}

func (f *replayFixture) changes() uint64 {
	s, err := f.js.Stream(context.Background(), domain.ChangesStream)
	require.NoError(f.t, err)
	info, err := s.Info(context.Background())
	require.NoError(f.t, err)
	return info.State.Msgs
}

// waitFeedSettled waits until the change feed stops growing.
func (f *replayFixture) waitFeedSettled() uint64 {
	f.t.Helper()
	last, stable := f.changes(), 0
	for stable < 5 {
		time.Sleep(100 * time.Millisecond)
		if n := f.changes(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	return last
}

// Invariant 6: a rebuild folds into a new generation, switches every
// projection to it, equals the live projections record for record, sends
// nothing downstream already has, and the old generation goes after its
// grace period.
func TestRebuildSwitchesToAnEqualGenerationWithoutRepublishing(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	f := newReplayFixture(t, nc, js, reducers.DefaultOptions(), 500*time.Millisecond)
	journalSamples(t, f.journal, 15)
	waitCaughtUp(t, f.engine)
	before := f.waitFeedSettled()
	require.Positive(t, before)
	live := map[string]map[string][]byte{}
	for _, p := range f.projs {
		live[p.Name()] = storeContents(t, js, p.Name())
	}

	rb := f.rebuild(projections.RebuildRequest{})
	require.Equal(t, projections.RebuildDone, rb.Status, rb.Error)
	assert.EqualValues(t, 15*len(samples.StripeTypes())+1, rb.Folded)
	for _, p := range f.projs {
		assert.Equal(t, 2, f.engine.Generation(p.Name()).Number, p.Name())
		assert.Equal(t, domain.ProjectionBucket(p.Name(), 2), f.engine.Store(p.Name()).Bucket())
	}
	rep := f.verify()
	assert.True(t, rep.Identical, "%+v", rep.Differences)

	// Byte for byte what the live generation held.
	for _, p := range f.projs {
		kv, err := js.KeyValue(context.Background(), domain.ProjectionBucket(p.Name(), 2))
		require.NoError(t, err)
		for k, v := range live[p.Name()] {
			e, err := kv.Get(context.Background(), k)
			require.NoError(t, err, k)
			assert.Equal(t, string(v), string(e.Value()), k)
		}
	}
	// Queries read the new generation.
	require.Eventually(t, func() bool {
		page, err := f.query.ListSubscriptions(context.Background(), projections.SubscriptionFilter{}, 100, "")
		return err == nil && len(page.Items) == 15
	}, 10*time.Second, 20*time.Millisecond)
	// Nothing was published again.
	assert.Equal(t, before, f.waitFeedSettled(), "a rebuild without --republish sends nothing downstream already has")
	// A live delivery after the switch reaches the feed through the new generation.
	f.append(samples.Stripe{EventID: "evt_after_switch", Type: "customer.updated", Created: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), CustomerID: "cus_1"})
	waitCaughtUp(t, f.engine)
	assert.Greater(t, f.waitFeedSettled(), before)
	// The replaced generation is removed after its grace period.
	require.Eventually(t, func() bool {
		_, err := js.KeyValue(context.Background(), domain.ProjectionBucket(domain.ProjectionSubscriptions, 1))
		return err != nil
	}, 20*time.Second, 100*time.Millisecond)

	// With republish, every record goes to the feed again.
	settled := f.waitFeedSettled()
	rb = f.rebuild(projections.RebuildRequest{Projections: []string{domain.ProjectionCustomers}, Republish: true})
	require.Equal(t, projections.RebuildDone, rb.Status, rb.Error)
	assert.Equal(t, 3, f.engine.Generation(domain.ProjectionCustomers).Number)
	assert.Equal(t, 2, f.engine.Generation(domain.ProjectionOrders).Number)
	assert.GreaterOrEqual(t, f.waitFeedSettled(), settled+15)
}

// Invariant 4 under live load: deliveries keep arriving while a rebuild
// folds and switches; afterwards every projection equals the clean fold,
// and queries never failed or saw a half-built generation (the
// subscription count never drops).
func TestRebuildUnderLiveLoadEqualsCleanFold(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	f := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
	journalSamples(t, f.journal, 30)
	waitCaughtUp(t, f.engine)
	<-f.query.Ready()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // live deliveries
		base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			typ := samples.StripeTypes()[i%len(samples.StripeTypes())]
			f.append(samples.Stripe{EventID: fmt.Sprintf("evt_live_%d", i), Type: typ, Created: base.Add(time.Duration(i) * time.Second),
				CustomerID: fmt.Sprintf("cus_live_%d", i/len(samples.StripeTypes())), SubscriptionID: fmt.Sprintf("sub_live_%d", i/len(samples.StripeTypes()))})
			time.Sleep(2 * time.Millisecond)
		}
	})
	minSeen := 1 << 30
	wg.Go(func() { // a reader
		for {
			select {
			case <-stop:
				return
			default:
			}
			counts, err := f.query.Counts(context.Background())
			if !assert.NoError(t, err) {
				return
			}
			n := 0
			for _, c := range counts {
				n += c
			}
			minSeen = min(minSeen, n)
			time.Sleep(time.Millisecond)
		}
	})
	rb := f.rebuild(projections.RebuildRequest{})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	require.Equal(t, projections.RebuildDone, rb.Status, rb.Error)
	assert.GreaterOrEqual(t, minSeen, 30, "queries never saw fewer subscriptions than before the rebuild")
	waitCaughtUp(t, f.engine)
	rep := f.verify()
	assert.True(t, rep.Identical, "%+v", rep.Differences)
	want, _, err := projections.FoldJournal(context.Background(), js, f.projs)
	require.NoError(t, err)
	for _, p := range f.projs {
		kv, err := js.KeyValue(context.Background(), domain.ProjectionBucket(p.Name(), 2))
		require.NoError(t, err)
		for k, v := range want[p.Name()] {
			e, err := kv.Get(context.Background(), k)
			require.NoError(t, err, k)
			assert.Equal(t, string(v), string(e.Value()), k)
		}
	}
}

// Rebuild equals live, over generated histories: customers' events in a
// random order with random duplicates, folded live and then rebuilt, give
// the same records as the clean fold.
func TestRebuildEqualsLiveOverGeneratedHistories(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			nc, js := natstest.Connect(t, natstest.Server(t))
			f := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
			r := rand.New(rand.NewPCG(seed, 7))
			var events []samples.Stripe
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for c := range 3 + r.IntN(5) {
				for i, typ := range samples.StripeTypes() {
					if r.IntN(4) == 0 {
						continue
					}
					events = append(events, samples.Stripe{EventID: fmt.Sprintf("evt_%d_%d", c, i), Type: typ,
						Created: base.Add(time.Duration(r.IntN(3)) * time.Second), CustomerID: fmt.Sprintf("cus_%d", c), SubscriptionID: fmt.Sprintf("sub_%d", c)})
				}
			}
			r.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
			for _, ev := range events {
				f.append(ev) // duplicates are refused by the journal, as in production
				if r.IntN(5) == 0 {
					_, _ = f.journal.Append(context.Background(), &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: ev.EventID,
						EventType: ev.Type, Created: ev.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: ev.Event()})
				}
			}
			waitCaughtUp(t, f.engine)
			live := map[string]map[string][]byte{}
			for _, p := range f.projs {
				live[p.Name()] = storeContents(t, js, p.Name())
			}
			rb := f.rebuild(projections.RebuildRequest{})
			require.Equal(t, projections.RebuildDone, rb.Status, rb.Error)
			for _, p := range f.projs {
				kv, err := js.KeyValue(context.Background(), domain.ProjectionBucket(p.Name(), 2))
				require.NoError(t, err)
				rebuilt := map[string][]byte{}
				keys, err := kv.ListKeys(context.Background())
				require.NoError(t, err)
				for k := range keys.Keys() {
					e, err := kv.Get(context.Background(), k)
					require.NoError(t, err)
					rebuilt[k] = e.Value()
				}
				assert.Equal(t, live[p.Name()], rebuilt, p.Name())
			}
			assert.True(t, f.verify().Identical)
		})
	}
}

// Invariant 5: with a reducer bug simulated for one event type, its events
// are dead letters while the others flow; after the fix (a new engine with
// sound reducers, as after a redeploy) verify shows the damage, a requeue
// applies each exactly once, recording who asked, and verify then agrees.
// A second requeue changes nothing: no double credit.
func TestRequeueAfterAFixAppliesOnce(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	broken := reducers.DefaultOptions()
	broken.FailTypes = []string{"checkout.session.completed"}
	f := newReplayFixture(t, nc, js, broken, time.Hour)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for u := range 3 {
		f.append(samples.Stripe{EventID: fmt.Sprintf("evt_topup_%d", u), Type: "checkout.session.completed", Created: base, CustomerID: fmt.Sprintf("cus_%d", u),
			Object: map[string]any{"id": fmt.Sprintf("cs_%d", u), "mode": "payment", "payment_status": "paid", "payment_intent": fmt.Sprintf("pi_%d", u),
				"amount_total": 1000, "currency": "usd", "metadata": map[string]any{"user_id": fmt.Sprintf("user_%d", u), "credits": "100"}}})
		f.append(samples.Stripe{EventID: fmt.Sprintf("evt_cus_%d", u), Type: "customer.created", Created: base, CustomerID: fmt.Sprintf("cus_%d", u)})
	}
	waitCaughtUp(t, f.engine)
	dls, err := f.engine.DeadLetters(context.Background(), projections.DeadLetterFilter{})
	require.NoError(t, err)
	require.NotEmpty(t, dls)
	for _, dl := range dls {
		assert.Equal(t, "checkout.session.completed", dl.EventType)
		assert.Equal(t, domain.CodeReducerFailed, dl.Code)
		assert.Equal(t, projections.DeadLetterOpen, dl.Status)
	}
	f.stop()

	fixed := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
	waitCaughtUp(t, fixed.engine)
	rep := fixed.verify()
	require.False(t, rep.Identical, "verify sees what the bug left out")
	assert.NotZero(t, rep.Projections[domain.ProjectionWallets].Differences)

	ctx := context.Background()
	res, err := fixed.engine.RequeueWhere(ctx, projections.DeadLetterFilter{EventType: "checkout.session.completed"}, "alice", false, false)
	require.NoError(t, err)
	assert.Equal(t, len(dls), res.Applied)
	assert.Zero(t, res.Failed)
	for _, dl := range res.Items {
		assert.Equal(t, projections.DeadLetterResolved, dl.Status)
		require.Len(t, dl.Requeues, 1)
		assert.Equal(t, "alice", dl.Requeues[0].By)
		assert.Equal(t, projections.OutcomeApplied, dl.Requeues[0].Outcome)
	}
	rep = fixed.verify()
	assert.True(t, rep.Identical, "%+v", rep.Differences)
	wallets := storeContents(t, js, domain.ProjectionWallets)

	// Again, explicitly: nothing changes, the history says so.
	again, err := fixed.engine.Requeue(ctx, dls[0].ID, "bob")
	require.NoError(t, err)
	assert.Len(t, again.Requeues, 2)
	assert.Equal(t, wallets, storeContents(t, js, domain.ProjectionWallets), "a second requeue credits nothing")
	open, err := fixed.engine.DeadLetters(ctx, projections.DeadLetterFilter{})
	require.NoError(t, err)
	assert.Empty(t, open)
}

// A requeue that fails again stays a dead letter with its attempts raised.
func TestRequeueThatFailsAgainRaisesAttempts(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	broken := reducers.DefaultOptions()
	broken.FailTypes = []string{"customer.created"}
	f := newReplayFixture(t, nc, js, broken, time.Hour)
	f.append(samples.Stripe{EventID: "evt_1", Type: "customer.created", Created: time.Now(), CustomerID: "cus_1"})
	waitCaughtUp(t, f.engine)
	dls, err := f.engine.DeadLetters(context.Background(), projections.DeadLetterFilter{Projection: domain.ProjectionCustomers})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	after, err := f.engine.Requeue(context.Background(), dls[0].ID, "carol")
	require.NoError(t, err)
	assert.Equal(t, projections.DeadLetterOpen, after.Status)
	assert.Greater(t, after.Attempts, dls[0].Attempts)
	require.Len(t, after.Requeues, 1)
	assert.Equal(t, projections.OutcomeFailed, after.Requeues[0].Outcome)
	assert.Equal(t, domain.CodeReducerFailed, after.Requeues[0].Code)
}

// A bounded replay re-applies only what its filter selects, and a rebuild
// after a fix resolves the dead letters it applied.
func TestReplayFilterAndRebuildResolveDeadLetters(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	broken := reducers.DefaultOptions()
	broken.FailTypes = []string{"customer.created"}
	f := newReplayFixture(t, nc, js, broken, time.Hour)
	for i := range 4 {
		f.append(samples.Stripe{EventID: fmt.Sprintf("evt_%d", i), Type: "customer.created", Created: time.Now(), CustomerID: fmt.Sprintf("cus_%d", i)})
	}
	waitCaughtUp(t, f.engine)
	f.stop()
	fixed := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
	waitCaughtUp(t, fixed.engine)

	_, dry, err := fixed.rebuilds.Start(context.Background(), projections.RebuildRequest{Filter: projections.ReplayFilter{EventID: "evt_2"}, DryRun: true}, "test")
	require.NoError(t, err)
	assert.EqualValues(t, 1, dry.Events)
	require.Len(t, dry.Sample, 1)
	assert.Equal(t, "evt_2", dry.Sample[0].EventID)

	rb := fixed.rebuild(projections.RebuildRequest{Filter: projections.ReplayFilter{EventID: "evt_2"}})
	require.Equal(t, projections.RebuildDone, rb.Status, rb.Error)
	assert.EqualValues(t, 1, rb.Matched)
	assert.Equal(t, 1, rb.DeadLettersResolved)
	open, err := fixed.engine.DeadLetters(context.Background(), projections.DeadLetterFilter{Projection: domain.ProjectionCustomers})
	require.NoError(t, err)
	assert.Len(t, open, 3)

	rb = fixed.rebuild(projections.RebuildRequest{Projections: []string{domain.ProjectionCustomers}})
	require.Equal(t, projections.RebuildDone, rb.Status, rb.Error)
	assert.Equal(t, 3, rb.DeadLettersResolved)
	open, err = fixed.engine.DeadLetters(context.Background(), projections.DeadLetterFilter{Projection: domain.ProjectionCustomers})
	require.NoError(t, err)
	assert.Empty(t, open)
	assert.True(t, fixed.verify().Identical)
}
