package test

import (
	"context"
	"fmt"
	"math/rand/v2"
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

func newCrashWorkload(blocks, users int) crashWorkload {
	w := crashWorkload{effects: map[string]crashEffect{}}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	add := func(s samples.Stripe, e crashEffect) {
		w.deliveries = append(w.deliveries, signedDelivery{id: s.EventID, body: s.Event()})
		w.effects[s.EventID] = e
	}
	for k := range blocks {
		at := base.Add(time.Duration(k) * time.Minute)
		cus, sub, pi := fmt.Sprintf("cus_crash_%05d", k), fmt.Sprintf("sub_crash_%05d", k), fmt.Sprintf("pi_crash_%05d", k)
		user := fmt.Sprintf("user_crash_%d", k%users)
		add(samples.Stripe{EventID: fmt.Sprintf("evt_crash_%05d_customer", k), Type: "customer.created", Created: at, CustomerID: cus,
			Object: map[string]any{"email": cus + "@example.com", "metadata": map[string]any{"user_id": user}}},
			crashEffect{kind: domain.KindCustomer, object: cus})
		created := samples.Stripe{EventID: fmt.Sprintf("evt_crash_%05d_sub_created", k), Type: "customer.subscription.created",
			Created: at, CustomerID: cus, SubscriptionID: sub, Status: "active"}
		updated := samples.Stripe{EventID: fmt.Sprintf("evt_crash_%05d_sub_updated", k), Type: "customer.subscription.updated",
			Created: at.Add(30 * time.Second), CustomerID: cus, SubscriptionID: sub, Status: "past_due", Previous: map[string]any{"status": "active"}}
		if k%2 == 1 {
			created, updated = updated, created
		}
		add(created, crashEffect{kind: domain.KindSubscription, object: sub})
		credits := int64(1 + k%9)
		add(samples.Stripe{EventID: fmt.Sprintf("evt_crash_%05d_topup", k), Type: "checkout.session.completed", Created: at.Add(10 * time.Second), CustomerID: cus,
			Object: map[string]any{"id": "cs_crash_" + strconv.Itoa(k), "payment_intent": pi, "amount_total": 1000,
				"metadata": map[string]any{"user_id": user, "credits": strconv.FormatInt(credits, 10)}}},
			crashEffect{kind: domain.KindTopUp, object: pi, user: user, credits: credits})
		add(updated, crashEffect{kind: domain.KindSubscription, object: sub})
	}
	return w
}

// Crash safety under load (issue 8, "Crash"): billfold serve is SIGKILLed
// at random moments, 20 times, while a provider sends it signed
// deliveries and re-sends each one that got no answer or a 5xx until it is
// answered 200; each time it is restarted on the same data dir. At the
// end every delivery answered 200 is in the journal exactly once and in its
// projections, none is applied twice (each wallet's balance is exactly the
// sum of its top-ups), and `billfold verify` exits 0.
func TestProjectorsSurviveKills(t *testing.T) {
	const (
		kills    = 20
		users    = 8
		workers  = 4
		interval = 15 * time.Millisecond // per worker: at most about 260 new events a second
	)
	url := externalNATS(t)
	_, js := natstest.ConnectURL(t, url)
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--nats-url", url, "--rate-limit", "0")

	// The provider always sends to the current process; restart moves the
	// listener, so the address is handed over, never read while written.
	var public atomic.Pointer[string]
	setPublic := func() { u := srv.public; public.Store(&u) }
	setPublic()
	w := newCrashWorkload(3000, users)
	start := time.Now()
	load := startProviderLoad(func() string { return *public.Load() }, w.deliveries, workers, interval)
	for range kills {
		time.Sleep(time.Duration(100+rand.IntN(600)) * time.Millisecond)
		srv.restart()
		setPublic()
	}
	time.Sleep(300 * time.Millisecond) // traffic to the last process too
	require.Less(t, int(load.next.Load()), len(w.deliveries), "the load ran through every kill: give it more events")
	results := load.halt(30 * time.Second)
	elapsed := time.Since(start)

	var attempts, acked, unanswered int
	for _, r := range results {
		attempts += len(r.answers)
		if r.acked() {
			acked++
		} else {
			unanswered++
		}
	}
	require.Zero(t, unanswered, "every delivery is answered 200 in the end")
	require.Greater(t, attempts, len(results), "kills interrupted deliveries and the provider re-sent them")

	waitProjected(t, js, srv)
	ctx := context.Background()
	journaled := journalSubjectCounts(t, js, "stripe")
	r := &recordReader{t: t, kv: map[string]jetstream.KeyValue{}}
	for _, p := range domain.Projections {
		var err error
		r.kv[p], err = js.KeyValue(ctx, domain.ProjectionBucket(p, 1))
		require.NoError(t, err)
	}
	has := func(p, key string) bool { _, err := r.kv[p].Get(ctx, key); return err == nil }

	// Lost: answered 200 but missing from the journal or its projection.
	// Applied twice: journaled more than once, or credited more than once.
	var lost, twice int
	wantBalance, wantTopUps := map[string]int64{}, map[string]int{}
	subEvents := map[string]int{}
	for _, res := range results {
		e := w.effects[res.id]
		n := journaled[domain.JournalSubject("stripe", res.id)]
		twice += max(0, n-1)
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
			lost++
			t.Errorf("delivery %s answered 200: journaled %d times, in its projection: %t", res.id, n, inProjection)
		}
	}
	for user, want := range wantBalance {
		wallet := r.wallet(user)
		twice += max(0, len(wallet.Entries)-wantTopUps[user])
		assert.Equal(t, want, wallet.Balance, "%s: every top-up credited exactly once", user)
		assert.Len(t, wallet.Entries, wantTopUps[user], user)
	}
	// A subscription whose two events were both answered ends past_due by
	// Stripe's clock, whichever came first.
	for sub, n := range subEvents {
		if n == 2 {
			rec := r.subscription(domain.Stripe, sub)
			assert.Equal(t, domain.StatePastDue, rec.State, sub)
			assert.Equal(t, []domain.LifecycleState{domain.StateActive, domain.StatePastDue}, states(rec), sub)
		}
	}
	total := 0
	for _, n := range journaled {
		total += n
	}
	assert.Equal(t, len(results), total, "the journal holds the delivered events and nothing else")

	out, code := runBillfold(t, "verify", "--server", srv.admin)
	require.Equal(t, 0, code, "billfold verify after %d kills:\n%s", kills, out)
	t.Logf("crash: %d deliveries sent (%d HTTP attempts, %d re-sent), %d acknowledged (200), %d lost, %d applied twice, %d kills (SIGKILL) in %s; %d wallets, verify identical",
		len(results), attempts, attempts-len(results), acked, lost, twice, kills, elapsed.Round(100*time.Millisecond), len(wantBalance))
	assert.Zero(t, lost, "lost")
	assert.Zero(t, twice, "applied twice")
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
