package rebuild_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// replayFixture is a journal with a running engine, rebuilds and query.
type replayFixture struct {
	t        testing.TB
	nc       *nats.Conn
	js       jetstream.JetStream
	journal  *ingest.Journal
	projs    []reducers.Projection
	engine   *projections.Engine
	rebuilds *rebuild.Rebuilds
	query    *query.Query
	stop     func()
}

func newReplayFixture(t testing.TB, nc *nats.Conn, js jetstream.JetStream, o reducers.Options, grace time.Duration) *replayFixture {
	t.Helper()
	return newReplayFixtureWith(t, nc, js, o, rebuild.RebuildOptions{Grace: grace})
}

// newReplayFixtureWith is newReplayFixture with the rebuilds' options.
func newReplayFixtureWith(t testing.TB, nc *nats.Conn, js jetstream.JetStream, o reducers.Options, ro rebuild.RebuildOptions) *replayFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	f := &replayFixture{t: t, nc: nc, js: js, journal: ingest.NewJournal(nc, js), projs: reducers.All(o)}
	var err error
	f.engine, err = projections.NewEngine(ctx, js, f.projs, projections.EngineOptions{Replicas: 1, Log: projtest.QuietLog,
		Retry: projections.RetryPolicy{Attempts: 2, Initial: time.Millisecond, Max: 5 * time.Millisecond}})
	require.NoError(t, err)
	ro.Log = projtest.QuietLog
	f.rebuilds, err = rebuild.NewRebuilds(ctx, f.engine, ro)
	require.NoError(t, err)
	f.query = query.New(f.engine, f.projs, "")
	var wg sync.WaitGroup
	wg.Go(func() { f.engine.Run(ctx) })
	wg.Go(func() { f.rebuilds.Run(ctx) })
	wg.Go(func() { f.query.Run(ctx) })
	f.stop = func() { cancel(); wg.Wait(); f.rebuilds.Wait() }
	t.Cleanup(f.stop)
	return f
}

func (f *replayFixture) append(s samples.Stripe) {
	require.NoError(f.t, f.tryAppend(s))
}

// tryAppend journals s as intake does (a second append of the same event
// is refused by the journal as a duplicate); safe in any goroutine.
func (f *replayFixture) tryAppend(s samples.Stripe) error {
	_, err := f.journal.Append(context.Background(), stripeEnvelope(s))
	return err
}

// redeliver publishes another copy of s onto its journal subject without
// the journal's dedupe condition: the projector receives the event again
// under a new sequence, as after a redelivery, and only the reducers'
// own dedupe stands between it and a second effect.
func (f *replayFixture) redeliver(s samples.Stripe) error {
	env := stripeEnvelope(s)
	msg := &nats.Msg{Subject: env.JournalSubject(), Header: nats.Header{}, Data: env.Body}
	env.EncodeHeader(msg.Header)
	_, err := f.js.PublishMsg(context.Background(), msg)
	return err
}

func stripeEnvelope(s samples.Stripe) *domain.Envelope {
	return &domain.Envelope{
		Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type, Created: s.Created,
		Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event(),
	}
}

// rebuild starts a rebuild or replay and waits for its end.
func (f *replayFixture) rebuild(req rebuild.RebuildRequest) *rebuild.Rebuild {
	f.t.Helper()
	rb, _, err := f.rebuilds.Start(context.Background(), req, "test")
	require.NoError(f.t, err)
	var done *rebuild.Rebuild
	require.Eventually(f.t, func() bool {
		done, err = f.rebuilds.Get(context.Background(), rb.ID)
		return err == nil && done.Finished()
	}, 60*time.Second, 20*time.Millisecond)
	return done
}

// verify asserts that every live record equals the clean fold.
func (f *replayFixture) verify() rebuild.VerifyReport {
	f.t.Helper()
	rep, err := rebuild.Verify(context.Background(), f.engine, nil)
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
	projtest.AppendSamples(t, f.journal, 15)
	projtest.WaitCaughtUp(t, f.engine)
	before := f.waitFeedSettled()
	require.Positive(t, before)
	// A joint fold's consumer naming generation 1 that no engine uses (as
	// one left by a switch no engine saw).
	orphan := domain.FoldDurable(map[string]int{domain.ProjectionCustomers: 1, "retired": 1})
	_, err := js.CreateConsumer(context.Background(), domain.JournalStream, jetstream.ConsumerConfig{Durable: orphan, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	live := map[string]map[string][]byte{}
	for _, p := range f.projs {
		live[p.Name()] = projtest.StoreContents(t, js, p.Name())
	}

	rb := f.rebuild(rebuild.RebuildRequest{})
	require.Equal(t, rebuild.RebuildDone, rb.Status, rb.Error)
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
		page, err := f.query.ListSubscriptions(context.Background(), query.SubscriptionFilter{}, 100, "")
		return err == nil && len(page.Items) == 15
	}, 10*time.Second, 20*time.Millisecond)
	// Nothing was published again.
	assert.Equal(t, before, f.waitFeedSettled(), "a rebuild without --republish sends nothing downstream already has")
	// A live delivery after the switch reaches the feed through the new generation.
	f.append(samples.Stripe{EventID: "evt_after_switch", Type: "customer.updated", Created: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), CustomerID: "cus_1"})
	projtest.WaitCaughtUp(t, f.engine)
	assert.Greater(t, f.waitFeedSettled(), before)
	// The replaced generation is removed after its grace period, with
	// every journal consumer that folded it.
	require.Eventually(t, func() bool {
		for _, p := range f.projs {
			if _, err := js.KeyValue(context.Background(), domain.ProjectionBucket(p.Name(), 1)); err == nil {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond)
	journal, err := js.Stream(context.Background(), domain.JournalStream)
	require.NoError(t, err)
	for name := range journal.ConsumerNames(context.Background()).Name() {
		for _, p := range f.projs {
			assert.False(t, name == domain.ProjectorDurable(p.Name(), 1) || domain.FoldsGeneration(name, p.Name(), 1),
				"consumer %s folds generation 1 of %s, which was removed", name, p.Name())
		}
	}

	// With republish, every record goes to the feed again.
	settled := f.waitFeedSettled()
	rb = f.rebuild(rebuild.RebuildRequest{Projections: []string{domain.ProjectionCustomers}, Republish: true})
	require.Equal(t, rebuild.RebuildDone, rb.Status, rb.Error)
	assert.Equal(t, 3, f.engine.Generation(domain.ProjectionCustomers).Number)
	assert.Equal(t, 2, f.engine.Generation(domain.ProjectionOrders).Number)
	assert.GreaterOrEqual(t, f.waitFeedSettled(), settled+15)
}

// A rebuild whose records outgrow its memory bound writes them to the new
// generation as it folds and reads them back when an event needs them:
// it ends equal to the live projections byte for byte, sends nothing
// downstream already has, and with republish sends every record once
// more, not the versions it wrote on the way.
func TestRebuildWithinAMemoryBoundEqualsLive(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	f := newReplayFixtureWith(t, nc, js, reducers.DefaultOptions(), rebuild.RebuildOptions{Grace: time.Hour, Memory: 16 << 10})
	projtest.AppendSamples(t, f.journal, 15)
	projtest.WaitCaughtUp(t, f.engine)
	before := f.waitFeedSettled()
	live := map[string]map[string][]byte{}
	records := 0
	for _, p := range f.projs {
		live[p.Name()] = projtest.StoreContents(t, js, p.Name())
		records += len(live[p.Name()])
	}

	rb := f.rebuild(rebuild.RebuildRequest{})
	require.Equal(t, rebuild.RebuildDone, rb.Status, rb.Error)
	assert.Positive(t, rb.Spilled, "16 KiB cannot hold every record")
	assert.Equal(t, records, rb.Records)
	rep := f.verify()
	assert.True(t, rep.Identical, "%+v", rep.Differences)
	for _, p := range f.projs {
		assert.Equal(t, live[p.Name()], projtest.StoreContents(t, js, p.Name()), p.Name())
	}
	assert.Equal(t, before, f.waitFeedSettled(), "nothing downstream already has, not the spilled writes either")

	subscriptionChanges := func() int {
		s, err := js.Stream(context.Background(), domain.ChangesStream)
		require.NoError(t, err)
		info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(domain.ChangeSubjectPrefix+domain.ProjectionSubscriptions+".>"))
		require.NoError(t, err)
		n := 0
		for _, c := range info.State.Subjects {
			n += int(c)
		}
		return n
	}
	published := subscriptionChanges()
	rb = f.rebuild(rebuild.RebuildRequest{Projections: []string{domain.ProjectionSubscriptions}, Republish: true})
	require.Equal(t, rebuild.RebuildDone, rb.Status, rb.Error)
	assert.Positive(t, rb.Spilled)
	f.waitFeedSettled()
	assert.Equal(t, published+len(live[domain.ProjectionSubscriptions]), subscriptionChanges(), "each subscription once more")
}

// Invariant 4 under live load: deliveries keep arriving while a rebuild
// folds and switches; afterwards every projection equals the clean fold,
// and queries never failed or saw a half-built generation (the
// subscription count never drops).
func TestRebuildUnderLiveLoadEqualsCleanFold(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	f := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
	projtest.AppendSamples(t, f.journal, 30)
	projtest.WaitCaughtUp(t, f.engine)
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
			err := f.tryAppend(samples.Stripe{EventID: fmt.Sprintf("evt_live_%d", i), Type: typ, Created: base.Add(time.Duration(i) * time.Second),
				CustomerID: fmt.Sprintf("cus_live_%d", i/len(samples.StripeTypes())), SubscriptionID: fmt.Sprintf("sub_live_%d", i/len(samples.StripeTypes()))})
			if !assert.NoError(t, err) { // not require: this is not the test's goroutine
				return
			}
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
	rb := f.rebuild(rebuild.RebuildRequest{})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	require.Equal(t, rebuild.RebuildDone, rb.Status, rb.Error)
	assert.GreaterOrEqual(t, minSeen, 30, "queries never saw fewer subscriptions than before the rebuild")
	projtest.WaitCaughtUp(t, f.engine)
	rep := f.verify()
	assert.True(t, rep.Identical, "%+v", rep.Differences)
	want, _, err := rebuild.FoldJournal(context.Background(), js, f.projs)
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

// permutedHistory is a generated provider history: customers with paid
// and unpaid credit top-ups, some fully refunded, and subscriptions that go
// past_due; the order the journal receives it in, with redeliveries; and
// what the projections must end as, computed from the history alone.
type permutedHistory struct {
	deliveries []samples.Stripe // in journal order; an event seen again is a redelivery
	split      int              // deliveries before it are folded live before the rest arrive
	balances   map[string]int64 // user -> credits of paid top-ups minus those fully refunded
	users      []string
	pastDue    []string // subscriptions whose update to past_due is the latest by Stripe's clock
}

func drawPermutedHistory(t *rapid.T) permutedHistory {
	h := permutedHistory{balances: map[string]int64{}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []samples.Stripe
	users := rapid.IntRange(1, 3).Draw(t, "users")
	for u := range users {
		h.users = append(h.users, fmt.Sprintf("user_%d", u))
		events = append(events, samples.Stripe{EventID: fmt.Sprintf("evt_cus_%d", u), Type: "customer.created", Created: base, CustomerID: fmt.Sprintf("cus_%d", u)})
	}
	for k := range rapid.IntRange(1, 6).Draw(t, "top-ups") {
		u := rapid.IntRange(0, users-1).Draw(t, fmt.Sprintf("top-up %d user", k))
		credits := rapid.Int64Range(1, 500).Draw(t, fmt.Sprintf("top-up %d credits", k))
		paid := rapid.Bool().Draw(t, fmt.Sprintf("top-up %d paid", k))
		at := base.Add(time.Duration(k+1) * time.Minute)
		status := "unpaid"
		if paid {
			status = "paid"
			h.balances[h.users[u]] += credits
		}
		pi := fmt.Sprintf("pi_%d", k)
		events = append(events, samples.Stripe{EventID: fmt.Sprintf("evt_topup_%d", k), Type: "checkout.session.completed", Created: at,
			CustomerID: fmt.Sprintf("cus_%d", u), Status: status,
			Object: map[string]any{"id": fmt.Sprintf("cs_%d", k), "payment_intent": pi, "amount_total": 1000,
				"metadata": map[string]any{"user_id": h.users[u], "credits": fmt.Sprint(credits)}}})
		if paid && rapid.Bool().Draw(t, fmt.Sprintf("top-up %d refunded", k)) {
			h.balances[h.users[u]] -= credits
			events = append(events, samples.Stripe{EventID: fmt.Sprintf("evt_refund_%d", k), Type: "charge.refunded", Created: at.Add(time.Hour),
				CustomerID: fmt.Sprintf("cus_%d", u), Object: map[string]any{"id": fmt.Sprintf("ch_%d", k), "payment_intent": pi, "amount": 1000, "amount_refunded": 1000}})
		}
	}
	for k := range rapid.IntRange(0, 3).Draw(t, "subscriptions") {
		sub, at := fmt.Sprintf("sub_%d", k), base.Add(time.Duration(k)*time.Hour)
		events = append(events,
			samples.Stripe{EventID: fmt.Sprintf("evt_sub_%d_created", k), Type: "customer.subscription.created", Created: at,
				CustomerID: "cus_0", SubscriptionID: sub, Status: "active"},
			samples.Stripe{EventID: fmt.Sprintf("evt_sub_%d_updated", k), Type: "customer.subscription.updated", Created: at.Add(30 * time.Second),
				CustomerID: "cus_0", SubscriptionID: sub, Status: "past_due", Previous: map[string]any{"status": "active"}})
		h.pastDue = append(h.pastDue, sub)
	}
	// Redeliveries: some events arrive again, anywhere after or before
	// their first delivery.
	deliveries := slices.Clone(events)
	for i, ev := range events {
		for range rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("event %d redeliveries", i)) {
			deliveries = append(deliveries, ev)
		}
	}
	h.deliveries = rapid.Permutation(deliveries).Draw(t, "journal order")
	h.split = rapid.IntRange(0, len(h.deliveries)).Draw(t, "folded live before the rest")
	return h
}

// Rebuild equals live, as a property over generated histories delivered
// to the projectors in any order, redeliveries included: the live
// projections (folded as the events arrive, in two batches), a rebuild of
// the journal, and the outcome computed from the history alone (each
// wallet holds the credits of its paid top-ups minus the fully refunded
// ones; a subscription updated to past_due after its creation, by Stripe's
// clock, is past_due) all agree. Each check starts its own NATS server and
// engine; -rapid.checks raises the default 10.
func TestRebuildEqualsLiveOverPermutedHistories(t *testing.T) {
	projtest.LimitRapidChecks(t, 10)
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		h := drawPermutedHistory(rt)
		ns := natstest.Server(t)
		nc, js := natstest.Connect(t, ns)
		f := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
		defer func() { f.stop(); nc.Close(); ns.Shutdown(); ns.WaitForShutdown() }()

		seen := map[string]bool{}
		deliver := func(evs []samples.Stripe) {
			for _, ev := range evs {
				if seen[ev.EventID] {
					require.NoError(rt, f.redeliver(ev))
					continue
				}
				seen[ev.EventID] = true
				require.NoError(rt, f.tryAppend(ev))
			}
			projtest.WaitCaughtUp(t, f.engine)
		}
		deliver(h.deliveries[:h.split])
		deliver(h.deliveries[h.split:])
		live := map[string]map[string][]byte{}
		for _, p := range f.projs {
			live[p.Name()] = projtest.StoreContents(t, js, p.Name())
		}

		rb := f.rebuild(rebuild.RebuildRequest{})
		require.Equal(rt, rebuild.RebuildDone, rb.Status, rb.Error)
		require.EqualValues(rt, len(h.deliveries), rb.Folded, "the rebuild folds every copy the journal holds")
		for _, p := range f.projs {
			kv, err := js.KeyValue(ctx, domain.ProjectionBucket(p.Name(), 2))
			require.NoError(rt, err)
			rebuilt := map[string][]byte{}
			keys, err := kv.ListKeys(ctx)
			require.NoError(rt, err)
			for k := range keys.Keys() {
				e, err := kv.Get(ctx, k)
				require.NoError(rt, err)
				rebuilt[k] = e.Value()
			}
			require.Equal(rt, live[p.Name()], rebuilt, "%s: rebuild == live", p.Name())
		}

		// The independent expectation, on the live records (equal to the
		// rebuilt ones).
		for _, user := range h.users {
			raw, ok := live[domain.ProjectionWallets][reducers.WalletKey(user)]
			if !ok {
				require.Zero(rt, h.balances[user], "%s has no wallet", user)
				continue
			}
			w, err := decodeStored[domain.WalletRecord](raw)
			require.NoError(rt, err)
			require.Equal(rt, h.balances[user], w.Balance, "%s: paid top-ups minus refunded ones", user)
		}
		for _, sub := range h.pastDue {
			raw, ok := live[domain.ProjectionSubscriptions][reducers.SubscriptionKey("stripe", sub)]
			require.True(rt, ok, sub)
			rec, err := decodeStored[domain.SubscriptionRecord](raw)
			require.NoError(rt, err)
			require.Equal(rt, domain.StatePastDue, rec.State, sub)
		}
		rep := f.verify()
		require.True(rt, rep.Identical, "%+v", rep.Differences)
	})
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
	projtest.WaitCaughtUp(t, f.engine)
	dls, err := f.engine.DeadLetters(context.Background(), deadletter.Filter{})
	require.NoError(t, err)
	require.NotEmpty(t, dls)
	for _, dl := range dls {
		assert.Equal(t, "checkout.session.completed", dl.EventType)
		assert.Equal(t, domain.CodeReducerFailed, dl.Code)
		assert.Equal(t, deadletter.Open, dl.Status)
	}
	f.stop()

	fixed := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
	projtest.WaitCaughtUp(t, fixed.engine)
	rep := fixed.verify()
	require.False(t, rep.Identical, "verify sees what the bug left out")
	assert.NotZero(t, rep.Projections[domain.ProjectionWallets].Differences)

	ctx := context.Background()
	res, err := fixed.engine.RequeueWhere(ctx, deadletter.Filter{EventType: "checkout.session.completed"}, "alice", false, false)
	require.NoError(t, err)
	assert.Equal(t, len(dls), res.Applied)
	assert.Zero(t, res.Failed)
	for _, dl := range res.Items {
		assert.Equal(t, deadletter.Resolved, dl.Status)
		require.Len(t, dl.Requeues, 1)
		assert.Equal(t, "alice", dl.Requeues[0].By)
		assert.Equal(t, deadletter.OutcomeApplied, dl.Requeues[0].Outcome)
	}
	rep = fixed.verify()
	assert.True(t, rep.Identical, "%+v", rep.Differences)
	wallets := projtest.StoreContents(t, js, domain.ProjectionWallets)

	// Again, explicitly: nothing changes, the history says so.
	again, err := fixed.engine.Requeue(ctx, dls[0].ID, "bob")
	require.NoError(t, err)
	assert.Len(t, again.Requeues, 2)
	assert.Equal(t, wallets, projtest.StoreContents(t, js, domain.ProjectionWallets), "a second requeue credits nothing")
	open, err := fixed.engine.DeadLetters(ctx, deadletter.Filter{})
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
	projtest.WaitCaughtUp(t, f.engine)
	dls, err := f.engine.DeadLetters(context.Background(), deadletter.Filter{Projection: domain.ProjectionCustomers})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	after, err := f.engine.Requeue(context.Background(), dls[0].ID, "carol")
	require.NoError(t, err)
	assert.Equal(t, deadletter.Open, after.Status)
	assert.Greater(t, after.Attempts, dls[0].Attempts)
	require.Len(t, after.Requeues, 1)
	assert.Equal(t, deadletter.OutcomeFailed, after.Requeues[0].Outcome)
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
	projtest.WaitCaughtUp(t, f.engine)
	f.stop()
	fixed := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
	projtest.WaitCaughtUp(t, fixed.engine)

	_, dry, err := fixed.rebuilds.Start(context.Background(), rebuild.RebuildRequest{Filter: rebuild.ReplayFilter{EventID: "evt_2"}, DryRun: true}, "test")
	require.NoError(t, err)
	assert.EqualValues(t, 1, dry.Events)
	require.Len(t, dry.Sample, 1)
	assert.Equal(t, "evt_2", dry.Sample[0].EventID)

	rb := fixed.rebuild(rebuild.RebuildRequest{Filter: rebuild.ReplayFilter{EventID: "evt_2"}})
	require.Equal(t, rebuild.RebuildDone, rb.Status, rb.Error)
	assert.EqualValues(t, 1, rb.Matched)
	// customers and wallets (a customer's links) both fold customer.created.
	assert.Equal(t, 2, rb.DeadLettersResolved)
	for _, p := range []string{domain.ProjectionCustomers, domain.ProjectionWallets} {
		open, err := fixed.engine.DeadLetters(context.Background(), deadletter.Filter{Projection: p})
		require.NoError(t, err)
		assert.Len(t, open, 3, p)
	}

	rb = fixed.rebuild(rebuild.RebuildRequest{Projections: []string{domain.ProjectionCustomers, domain.ProjectionWallets}})
	require.Equal(t, rebuild.RebuildDone, rb.Status, rb.Error)
	assert.Equal(t, 6, rb.DeadLettersResolved)
	open, err := fixed.engine.DeadLetters(context.Background(), deadletter.Filter{})
	require.NoError(t, err)
	assert.Empty(t, open)
	assert.True(t, fixed.verify().Identical)
}

// decodeStored decodes the record part of a stored value.
func decodeStored[R any](value []byte) (*R, error) {
	raw, err := reducers.RecordOf(value)
	if err != nil {
		return nil, err
	}
	rec := new(R)
	return rec, json.Unmarshal(raw, rec)
}
