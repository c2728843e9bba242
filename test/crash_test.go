package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// crashEffect is what one delivery of the crash workload must leave in the
// projections.
type crashEffect struct {
	kind    string // customer, subscription or topup
	object  string // the customer, subscription or payment intent id
	user    string // topup: the wallet credited
	credits int64
}

// crashWorkload is a provider's traffic in blocks of four events: a new
// customer, its subscription created and then updated to past_due (the
// update delivered first in every other block, as providers do), and a
// credit top-up to one of a few users, so that every wallet collects many
// top-ups and a double credit shows in its balance.
type crashWorkload struct {
	deliveries []signedDelivery
	effects    map[string]crashEffect
}

func newCrashWorkload(prefix string, blocks, users int) crashWorkload {
	w := crashWorkload{effects: map[string]crashEffect{}}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	add := func(s samples.Stripe, e crashEffect) {
		w.deliveries = append(w.deliveries, signedDelivery{id: s.EventID, body: s.Event()})
		w.effects[s.EventID] = e
	}
	for k := range blocks {
		at := base.Add(time.Duration(k) * time.Minute)
		cus, sub, pi := fmt.Sprintf("cus_"+prefix+"_%05d", k), fmt.Sprintf("sub_"+prefix+"_%05d", k), fmt.Sprintf("pi_"+prefix+"_%05d", k)
		user := fmt.Sprintf("user_"+prefix+"_%d", k%users)
		add(samples.Stripe{EventID: fmt.Sprintf("evt_"+prefix+"_%05d_customer", k), Type: "customer.created", Created: at, CustomerID: cus,
			Object: map[string]any{"email": cus + "@example.com", "metadata": map[string]any{"user_id": user}}},
			crashEffect{kind: domain.KindCustomer, object: cus})
		created := samples.Stripe{EventID: fmt.Sprintf("evt_"+prefix+"_%05d_sub_created", k), Type: "customer.subscription.created",
			Created: at, CustomerID: cus, SubscriptionID: sub, Status: "active"}
		updated := samples.Stripe{EventID: fmt.Sprintf("evt_"+prefix+"_%05d_sub_updated", k), Type: "customer.subscription.updated",
			Created: at.Add(30 * time.Second), CustomerID: cus, SubscriptionID: sub, Status: "past_due", Previous: map[string]any{"status": "active"}}
		if k%2 == 1 {
			created, updated = updated, created
		}
		add(created, crashEffect{kind: domain.KindSubscription, object: sub})
		credits := int64(1 + k%9)
		add(samples.Stripe{EventID: fmt.Sprintf("evt_"+prefix+"_%05d_topup", k), Type: "checkout.session.completed", Created: at.Add(10 * time.Second), CustomerID: cus,
			Object: map[string]any{"id": "cs_" + prefix + "_" + strconv.Itoa(k), "payment_intent": pi, "amount_total": 1000,
				"metadata": map[string]any{"user_id": user, "credits": strconv.FormatInt(credits, 10)}}},
			crashEffect{kind: domain.KindTopUp, object: pi, user: user, credits: credits})
		add(updated, crashEffect{kind: domain.KindSubscription, object: sub})
	}
	return w
}

// crashKills is how many times the crash tests SIGKILL billfold.
const crashKills = 20

// Crash safety under load (issue 8, "Crash"), with the journal on a
// separate NATS server that never dies: billfold serve is SIGKILLed at
// random moments, 20 times, while a provider sends it signed deliveries
// and re-sends each one that got no answer or a 5xx until it is answered
// 200; each time it is restarted on the same data dir. At the end every
// delivery answered 200 is in the journal exactly once, in its
// projections and in the delivery log, none is applied twice (each
// wallet's balance is exactly the sum of its top-ups), and `billfold
// verify` exits 0.
func TestProjectorsSurviveKills(t *testing.T) {
	url := externalNATS(t)
	_, js := natstest.ConnectURL(t, url)
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--nats-url", url, "--rate-limit", "0")
	w := newCrashWorkload("crash", 3000, 8)
	run := killUnderLoad(t, srv, w, crashKills)
	waitProjected(t, js, srv)
	waitDeliveryLog(t, srv)
	out, code := runBillfold(t, "verify", "--server", srv.admin)
	require.Equal(t, 0, code, "billfold verify after %d kills:\n%s", crashKills, out)
	f := checkCrashOutcome(t, js, w, run.results)
	t.Logf("crash (external NATS): %s; verify identical", run.summary(f))
}

// The same in the default mode: no --nats-url, so the process that is
// SIGKILLed is also the embedded NATS server that stores the journal, the
// delivery log and the projections in its data dir. At the end billfold
// verify exits 0 on the last process; then it is stopped and the test
// opens the data dir's store itself with a NATS server of its own to count
// the journal, the delivery log and the projections.
func TestEmbeddedModeSurvivesKills(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--rate-limit", "0")
	w := newCrashWorkload("embedded", 3000, 8)
	run := killUnderLoad(t, srv, w, crashKills)
	waitProjectedAdmin(t, srv)
	waitDeliveryLog(t, srv)
	out, code := runBillfold(t, "verify", "--server", srv.admin)
	require.Equal(t, 0, code, "billfold verify after %d kills:\n%s", crashKills, out)
	require.Zero(t, srv.stop(), "the last process stops cleanly, releasing its store")

	_, js := natstest.Connect(t, natstest.Start(t, natstest.Options(filepath.Join(dir, "jetstream"))))
	f := checkCrashOutcome(t, js, w, run.results)
	t.Logf("crash (embedded NATS, the default mode): %s; verify identical", run.summary(f))
}

// killRun is what a provider saw while billfold was killed under its load.
type killRun struct {
	results []providerAttempts
	kills   int
	elapsed time.Duration
}

// killUnderLoad sends w's deliveries to srv as a provider does while
// SIGKILLing srv kills times at random moments (100-700 ms apart) and
// restarting it on its data dir each time. It returns once every delivery
// sent was answered 200 (re-sent as often as needed).
func killUnderLoad(t *testing.T, srv *server, w crashWorkload, kills int) killRun {
	t.Helper()
	const (
		workers  = 4
		interval = 15 * time.Millisecond // per worker: at most about 260 new events a second
	)
	// The provider always sends to the current process; restart moves the
	// listener, so the address is handed over, never read while written.
	var public atomic.Pointer[string]
	setPublic := func() { u := srv.public; public.Store(&u) }
	setPublic()
	start := time.Now()
	load := startProviderLoad(func() string { return *public.Load() }, w.deliveries, workers, interval)
	for range kills {
		time.Sleep(time.Duration(100+rand.IntN(600)) * time.Millisecond)
		srv.restart()
		setPublic()
	}
	time.Sleep(300 * time.Millisecond) // traffic to the last process too
	require.Less(t, int(load.next.Load()), len(w.deliveries), "the load ran through every kill: give it more events")
	run := killRun{results: load.halt(30 * time.Second), kills: kills, elapsed: time.Since(start)}
	attempts := 0
	for _, r := range run.results {
		attempts += len(r.attempts)
		require.True(t, r.acked(), "delivery %s is answered 200 in the end: %+v", r.id, r.attempts)
	}
	require.Greater(t, attempts, len(run.results), "kills interrupted deliveries and the provider re-sent them")
	return run
}

// summary is the run's figures for the test log and docs/reliability.md.
func (r killRun) summary(f crashFigures) string {
	return fmt.Sprintf("%s, %d kills (SIGKILL) in %s, %d wallets", crashCounts(r.results, f), r.kills, r.elapsed.Round(100*time.Millisecond), f.wallets)
}

// crashCounts says what a provider sent and what checkCrashOutcome found.
func crashCounts(results []providerAttempts, f crashFigures) string {
	attempts := 0
	for _, r := range results {
		attempts += len(r.attempts)
	}
	return fmt.Sprintf("%d deliveries sent (%d HTTP attempts, %d re-sent), %d acknowledged (200), %d lost, %d applied twice, %d without a delivery-log entry",
		len(results), attempts, attempts-len(results), len(results), f.lost, f.twice, f.unlogged)
}

// crashFigures are the counts checkCrashOutcome found.
type crashFigures struct {
	lost, twice, unlogged, wallets int
}

// checkCrashOutcome checks, once the projectors have caught up, that every
// delivery of results (each answered 200 in the end) is on its journal
// subject exactly once, in its projection, credited once (every wallet's
// balance is exactly the sum of its top-ups) and has a delivery-log entry
// answered 200, and that the journal holds nothing else.
func checkCrashOutcome(t *testing.T, js jetstream.JetStream, w crashWorkload, results []providerAttempts) crashFigures {
	t.Helper()
	ctx := context.Background()
	journaled := journalSubjectCounts(t, js, "stripe")
	logged := deliveryLogOutcomes(t, js)
	r := &recordReader{t: t, kv: map[string]jetstream.KeyValue{}}
	for _, p := range domain.Projections {
		var err error
		r.kv[p], err = js.KeyValue(ctx, domain.ProjectionBucket(p, 1))
		require.NoError(t, err)
	}
	has := func(p, key string) bool { _, err := r.kv[p].Get(ctx, key); return err == nil }

	// Lost: answered 200 but missing from the journal or its projection.
	// Applied twice: journaled more than once, or credited more than once.
	var f crashFigures
	wantBalance, wantTopUps := map[string]int64{}, map[string]int{}
	subEvents := map[string]int{}
	for _, res := range results {
		e := w.effects[res.id]
		n := journaled[domain.JournalSubject("stripe", res.id)]
		f.twice += max(0, n-1)
		inProjection := false
		switch e.kind {
		case domain.KindCustomer:
			inProjection = has(domain.ProjectionCustomers, reducers.CustomerKey("stripe", e.object))
		case domain.KindSubscription:
			inProjection = has(domain.ProjectionSubscriptions, reducers.SubscriptionKey("stripe", e.object))
			subEvents[e.object]++
		case domain.KindTopUp:
			inProjection = has(domain.ProjectionOrders, reducers.OrderKey("stripe", e.object))
			wantBalance[e.user] += e.credits
			wantTopUps[e.user]++
		}
		if n == 0 || !inProjection {
			f.lost++
			t.Errorf("delivery %s answered 200: journaled %d times, in its projection: %t", res.id, n, inProjection)
		}
		// The answer that acknowledged it is in the delivery log: accepted
		// (this attempt journaled it) or duplicate (an earlier one had).
		outcomes := logged[domain.DeliverySubject("stripe", res.id)]
		if outcomes[domain.OutcomeAccepted]+outcomes[domain.OutcomeDuplicate] == 0 {
			f.unlogged++
			t.Errorf("delivery %s answered 200 has no delivery-log entry answered 200: %v", res.id, outcomes)
		}
		assert.LessOrEqual(t, outcomes[domain.OutcomeAccepted], 1, "%s: accepted at most once", res.id)
	}
	for user, want := range wantBalance {
		wallet := r.wallet(user)
		f.twice += max(0, len(wallet.Entries)-wantTopUps[user])
		assert.Equal(t, want, wallet.Balance, "%s: every top-up credited exactly once", user)
		assert.Len(t, wallet.Entries, wantTopUps[user], user)
	}
	f.wallets = len(wantBalance)
	// A subscription whose two events were both answered ends past_due by
	// Stripe's clock, whichever came first.
	for sub, n := range subEvents {
		if n == 2 {
			rec := r.subscription(domain.Stripe, sub)
			assert.Equal(t, domain.StatePastDue, rec.State, sub)
			if !assert.Equal(t, []domain.LifecycleState{domain.StateActive, domain.StatePastDue}, states(rec), sub) {
				t.Logf("what the store and the journal hold of %s:\n%s", sub, recordTrail(t, js, domain.ProjectionSubscriptions, reducers.SubscriptionKey("stripe", sub), sub))
			}
		}
	}
	// Of the workload's events, the journal holds those delivered, once.
	total := 0
	for _, d := range w.deliveries {
		total += journaled[domain.JournalSubject("stripe", d.id)]
	}
	assert.Equal(t, len(results), total, "the journal holds the delivered events and nothing else")
	assert.Zero(t, f.lost, "lost")
	assert.Zero(t, f.twice, "applied twice")
	assert.Zero(t, f.unlogged, "acknowledged without a delivery-log entry")
	return f
}

// deliveryLogOutcomes reads the whole delivery log and counts the outcomes
// of the entries on each subject.
func deliveryLogOutcomes(t *testing.T, js jetstream.JetStream) map[string]map[domain.Outcome]int {
	t.Helper()
	out := map[string]map[domain.Outcome]int{}
	for _, d := range deliveryLogEntries(t, js) {
		if out[d.Subject()] == nil {
			out[d.Subject()] = map[domain.Outcome]int{}
		}
		out[d.Subject()][d.Outcome]++
	}
	return out
}

// deliveryLogEntries reads the whole delivery log, in order.
func deliveryLogEntries(t *testing.T, js jetstream.JetStream) []domain.Delivery {
	t.Helper()
	var out []domain.Delivery
	natstest.EachMessage(t, js, domain.DeliveryStream, func(m jetstream.Msg) {
		var d domain.Delivery
		require.NoError(t, json.Unmarshal(m.Data(), &d), m.Subject())
		out = append(out, d)
	})
	return out
}

// waitDeliveryLog waits until billfold's debug report (GET /v1/doctor)
// shows no journaled event waiting for its accepted delivery-log entry: a
// killed process leaves the batch it was writing to the journal consumer,
// which hands it to the live process after its ack wait.
func waitDeliveryLog(t *testing.T, srv *server) {
	t.Helper()
	var rep struct {
		Deliveries struct {
			AcceptedPending *uint64 `json:"accepted_pending"`
		} `json:"deliveries"`
	}
	require.Eventually(t, func() bool {
		rep.Deliveries.AcceptedPending = nil
		return srv.getJSON("/v1/doctor", &rep) == 200 && rep.Deliveries.AcceptedPending != nil && *rep.Deliveries.AcceptedPending == 0
	}, 60*time.Second, 100*time.Millisecond, "the delivery log catches up:\n%s", tail(srv.logs.String(), 4000))
}

// waitProjectedAdmin waits until billfold's own debug report (GET
// /v1/doctor) shows every projector at lag 0: for the embedded mode, where
// the test has no connection to the store while billfold runs.
func waitProjectedAdmin(t *testing.T, srv *server) {
	t.Helper()
	var rep struct {
		Projections []struct {
			Lag uint64 `json:"lag"`
		} `json:"projections"`
	}
	require.Eventually(t, func() bool {
		rep.Projections = nil
		if srv.getJSON("/v1/doctor", &rep) != 200 || len(rep.Projections) == 0 {
			return false
		}
		for _, p := range rep.Projections {
			if p.Lag > 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "projectors catch up:\n%s", tail(srv.logs.String(), 4000))
}

// journalSubjectCounts returns how many messages the journal holds on each
// subject of namespace.
func journalSubjectCounts(t *testing.T, js jetstream.JetStream, namespace string) map[string]int {
	t.Helper()
	s, err := js.Stream(ctxT(t), domain.JournalStream)
	require.NoError(t, err)
	filter := strings.TrimSuffix(domain.JournalSubject(namespace, "x"), "x") + ">"
	info, err := s.Info(ctxT(t), jetstream.WithSubjectFilter(filter))
	require.NoError(t, err)
	out := make(map[string]int, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		out[subj] = int(n)
	}
	return out
}

// recordTrail says, for a failure message, every revision of a record the
// bucket keeps (with the event that wrote it and the revision it replaced)
// and the journal sequences of the events whose subjects mention object.
func recordTrail(t *testing.T, js jetstream.JetStream, projection, key, object string) string {
	t.Helper()
	ctx := ctxT(t)
	var b strings.Builder
	bucket := domain.ProjectionBucket(projection, 1)
	if s, err := js.Stream(ctx, domain.BucketStream(bucket)); err == nil {
		if info, err := s.Info(ctx); err == nil {
			fmt.Fprintf(&b, "bucket stream: first %d last %d msgs %d", info.State.FirstSeq, info.State.LastSeq, info.State.Msgs)
			if info.Cluster != nil { // a single server has none
				fmt.Fprintf(&b, " leader %s", info.Cluster.Leader)
			}
			b.WriteString("\n")
		}
		var entries []jetstream.KeyValueEntry
		kv, err := js.KeyValue(ctx, bucket)
		if err == nil {
			entries, err = kv.History(ctx, key)
		}
		fmt.Fprintf(&b, "history of %s: %d entries, err %v\n", key, len(entries), err)
		for _, e := range entries {
			m, err := s.GetMsg(ctx, e.Revision())
			if err != nil {
				fmt.Fprintf(&b, "  rev %d: %v\n", e.Revision(), err)
				continue
			}
			fmt.Fprintf(&b, "  rev %d at %s: event %s seq %s replaces %s, %d bytes\n", e.Revision(), e.Created().Format(time.RFC3339Nano),
				m.Header.Get(kvstore.HeaderEventID), m.Header.Get(kvstore.HeaderJournalSequence), m.Header.Get(kvstore.HeaderPreviousRevision), len(e.Value()))
		}
	}
	if s, err := js.Stream(ctx, domain.JournalStream); err == nil && object != "" {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(strings.TrimSuffix(domain.JournalSubject("stripe", "x"), "x")+">"))
		if err == nil {
			for subj := range info.State.Subjects {
				if strings.Contains(subj, strings.TrimPrefix(object, "sub_")) {
					if m, err := s.GetLastMsgForSubject(ctx, subj); err == nil {
						fmt.Fprintf(&b, "journal %s: seq %d at %s\n", subj, m.Sequence, m.Time.Format(time.RFC3339Nano))
					}
				}
			}
		}
	}
	return b.String()
}
