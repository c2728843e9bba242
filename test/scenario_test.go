package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/ingest/svix"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

const (
	scenarioClerkSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	scenarioPactaPaySecret = "pactapay_scenario_secret"
)

var scenarioBraintreeKey = braintree.KeyPair{PublicKey: "scenario_public", PrivateKey: "scenario_private"}

// scenarioEnv configures the Stripe, Clerk, Braintree and PactaPay
// endpoints with the scenario's secrets.
func scenarioEnv() []string {
	return []string{
		"STRIPE_WEBHOOK_SECRET=" + stripeSecret, "CLERK_WEBHOOK_SECRET=" + scenarioClerkSecret,
		"BRAINTREE_PUBLIC_KEY=" + scenarioBraintreeKey.PublicKey, "BRAINTREE_PRIVATE_KEY=" + scenarioBraintreeKey.PrivateKey,
		"PACTAPAY_WEBHOOK_SECRET=" + scenarioPactaPaySecret,
	}
}

// scenarioConfig is the --config of a scenario server: the endpoints of
// scenarioEnv, with a PactaPay tolerance wide enough for the scenario's
// calendar (it starts on a fixed date, and PactaPay's body timestamp is
// signed and held to the tolerance).
func scenarioConfig(t *testing.T) []string {
	return []string{"--config", writeConfig(t, t.TempDir(), `
endpoints:
  - {name: stripe, provider: stripe, secrets: ["${STRIPE_WEBHOOK_SECRET}"]}
  - {name: clerk, provider: clerk, secrets: ["${CLERK_WEBHOOK_SECRET}"]}
  - {name: braintree, provider: braintree, secrets: ["${BRAINTREE_PUBLIC_KEY}:${BRAINTREE_PRIVATE_KEY}"]}
  - {name: pactapay, provider: pactapay, secrets: ["${PACTAPAY_WEBHOOK_SECRET}"], tolerance: 87600h}
`)}
}

// scenarioDelivery is one provider delivery; sign is called at send time,
// because signed timestamps must be fresh.
type scenarioDelivery struct {
	endpoint string
	body     []byte
	sign     func(body []byte) map[string]string
}

// scenario builds the deliveries of many customers' lives and what each of
// their records must end as.
type scenario struct {
	deliveries []scenarioDelivery
	n          int
	checks     []func(t *testing.T, r *recordReader)
}

func (s *scenario) stripe(ev samples.Stripe) {
	s.n++
	ev.EventID = fmt.Sprintf("evt_scn_%05d", s.n)
	s.deliveries = append(s.deliveries, scenarioDelivery{endpoint: "stripe", body: ev.Event(), sign: func(b []byte) map[string]string {
		return stripeSig(b, time.Now(), stripeSecret)
	}})
}

func (s *scenario) clerk(typ, user string, at time.Time) {
	s.n++
	id := fmt.Sprintf("msg_scn_%05d", s.n)
	data := map[string]any{"id": user, "object": "user"}
	if typ == "user.deleted" {
		data["deleted"] = true
	} else {
		data["first_name"], data["last_name"], data["primary_email_address_id"] = "Ana", user, "idn_"+user
		data["email_addresses"] = []any{map[string]any{"id": "idn_" + user, "email_address": user + "@example.com"}}
		data["created_at"], data["updated_at"] = at.UnixMilli(), at.UnixMilli()
	}
	body, _ := json.Marshal(map[string]any{"type": typ, "object": "event", "timestamp": at.UnixMilli(), "data": data})
	s.deliveries = append(s.deliveries, scenarioDelivery{endpoint: "clerk", body: body, sign: func(b []byte) map[string]string {
		now := time.Now()
		sig, err := svix.Sign(scenarioClerkSecret, id, now, b)
		if err != nil {
			panic(err)
		}
		return map[string]string{"svix-id": id, "svix-timestamp": strconv.FormatInt(now.Unix(), 10), "svix-signature": sig, "Content-Type": "application/json"}
	}})
}

func (s *scenario) braintree(kind, sub, status string, trial, charged bool, at time.Time) {
	tx := ""
	if charged {
		tx = fmt.Sprintf(`<transaction><id>tx_%s_%d</id><status>settled</status><amount>29.00</amount><customer><id>bt_cus_%s</id></customer></transaction>`, sub, s.n, sub)
	}
	xml := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><notification><timestamp type="datetime">%s</timestamp><kind>%s</kind><subject><subscription>`+
		`<id>%s</id><status>%s</status><plan-id>gold</plan-id><price>29.00</price><trial-period type="boolean">%t</trial-period>`+
		`<transactions type="array">%s</transactions></subscription></subject></notification>`, at.UTC().Format(time.RFC3339), kind, sub, status, trial, tx)
	s.n++
	body := braintree.Sign(scenarioBraintreeKey, braintree.EncodePayload([]byte(xml)))
	s.deliveries = append(s.deliveries, scenarioDelivery{endpoint: "braintree", body: body, sign: func([]byte) map[string]string {
		return map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	}})
}

func (s *scenario) pactapay(typ, payment string, amount int64, at time.Time) {
	s.n++
	body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("pp_evt_%05d", s.n), "event": typ, "payment_id": payment,
		"amount": amount, "currency": "usd", "timestamp": at.Unix(), "metadata": map[string]any{"deal_id": "deal_" + payment}})
	s.deliveries = append(s.deliveries, scenarioDelivery{endpoint: "pactapay", body: body, sign: func(b []byte) map[string]string {
		return hmacsig.Sign(hmacsig.PactaPay(), scenarioPactaPaySecret, time.Now(), b)
	}})
}

func (s *scenario) check(f func(t *testing.T, r *recordReader)) { s.checks = append(s.checks, f) }

// recordReader reads records straight from the projection stores.
type recordReader struct {
	t  *testing.T
	kv map[string]jetstream.KeyValue
}

func readRecord[R any](r *recordReader, projection, key string) *R {
	r.t.Helper()
	e, err := r.kv[projection].Get(context.Background(), key)
	require.NoError(r.t, err, "%s %s", projection, key)
	raw, err := reducers.RecordOf(e.Value())
	require.NoError(r.t, err)
	rec := new(R)
	require.NoError(r.t, json.Unmarshal(raw, rec))
	return rec
}

func (r *recordReader) subscription(p domain.Provider, id string) *domain.SubscriptionRecord {
	return readRecord[domain.SubscriptionRecord](r, domain.ProjectionSubscriptions, reducers.SubscriptionKey(string(p), id))
}

func (r *recordReader) order(p domain.Provider, id string) *domain.OrderRecord {
	return readRecord[domain.OrderRecord](r, domain.ProjectionOrders, reducers.OrderKey(string(p), id))
}

func (r *recordReader) wallet(user string) *domain.WalletRecord {
	return readRecord[domain.WalletRecord](r, domain.ProjectionWallets, reducers.WalletKey(user))
}

func (r *recordReader) customer(p domain.Provider, id string) *domain.CustomerRecord {
	return readRecord[domain.CustomerRecord](r, domain.ProjectionCustomers, reducers.CustomerKey(string(p), id))
}

func states(s *domain.SubscriptionRecord) []domain.LifecycleState {
	var out []domain.LifecycleState
	for _, tr := range s.Transitions {
		out = append(out, tr.To)
	}
	return out
}

// buildScenario writes the lives of customers customers, fifteen kinds of
// life in turn, and the expected end of each.
func buildScenario(customers int) *scenario {
	s := &scenario{}
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for c := range customers {
		t0 := base.Add(time.Duration(c) * time.Hour)
		cus, sub, user := fmt.Sprintf("cus_scn_%d", c), fmt.Sprintf("sub_scn_%d", c), fmt.Sprintf("user_scn_%d", c)
		st := func(typ, status string, at time.Time, obj, prev map[string]any) {
			s.stripe(samples.Stripe{Type: typ, Created: at, CustomerID: cus, SubscriptionID: sub, Status: status, Object: obj, Previous: prev})
		}
		expect := func(want domain.LifecycleState, entitled bool, path ...domain.LifecycleState) {
			p := domain.Stripe
			if c%15 >= 6 && c%15 <= 8 {
				p = domain.Braintree
			}
			s.check(func(t *testing.T, r *recordReader) {
				rec := r.subscription(p, sub)
				assert.Equal(t, want, rec.State, "%s %s", p, sub)
				assert.Equal(t, entitled, rec.Entitled, "%s entitled", sub)
				assert.Equal(t, path, states(rec), "%s transitions", sub)
			})
		}
		topUp := func(typ, paymentStatus, pi string, credits int, at time.Time) {
			st(typ, paymentStatus, at, map[string]any{"id": "cs_" + pi, "payment_intent": pi, "amount_total": 1000,
				"metadata": map[string]any{"user_id": user, "credits": strconv.Itoa(credits)}}, nil)
		}
		if c%15 <= 5 {
			st("customer.created", "", t0, map[string]any{"email": cus + "@example.com", "metadata": map[string]any{"user_id": user}}, nil)
			s.check(func(t *testing.T, r *recordReader) {
				rec := r.customer(domain.Stripe, cus)
				assert.Equal(t, cus+"@example.com", rec.Email)
				assert.Equal(t, []domain.Link{{Kind: "user_id", Value: user}}, rec.Links)
			})
		}
		switch c % 15 {
		case 0: // trial, conversion, two renewals
			st("customer.subscription.created", "trialing", t0, nil, nil)
			st("customer.subscription.updated", "active", t0.Add(14*day), nil, map[string]any{"status": "trialing"})
			st("customer.subscription.trial_will_end", "trialing", t0.Add(14*day), nil, nil)
			st("invoice.paid", "", t0.Add(14*day+time.Second), nil, nil)
			st("invoice.paid", "", t0.Add(44*day), nil, nil)
			expect(domain.StateActive, true, domain.StateTrialing, domain.StateActive)
		case 1: // a renewal fails
			st("customer.subscription.created", "active", t0, nil, nil)
			st("invoice.payment_failed", "", t0.Add(30*day), nil, nil)
			st("customer.subscription.updated", "past_due", t0.Add(30*day), nil, map[string]any{"status": "active"})
			expect(domain.StatePastDue, true, domain.StateActive, domain.StatePastDue)
			s.check(func(t *testing.T, r *recordReader) {
				assert.Equal(t, "failed", r.subscription(domain.Stripe, sub).LastPayment.Outcome)
			})
		case 2: // failure, then recovery
			st("customer.subscription.created", "active", t0, nil, nil)
			st("invoice.payment_failed", "", t0.Add(30*day), nil, nil)
			st("customer.subscription.updated", "past_due", t0.Add(30*day), nil, map[string]any{"status": "active"})
			st("invoice.paid", "", t0.Add(33*day), nil, nil)
			st("customer.subscription.updated", "active", t0.Add(33*day), nil, map[string]any{"status": "past_due"})
			expect(domain.StateActive, true, domain.StateActive, domain.StatePastDue, domain.StateActive)
			s.check(func(t *testing.T, r *recordReader) {
				rec := r.subscription(domain.Stripe, sub)
				assert.Equal(t, "succeeded", rec.LastPayment.Outcome)
				assert.Equal(t, "paid", rec.LatestInvoice.Status)
			})
		case 3: // cancel at period end
			st("customer.subscription.created", "active", t0, nil, nil)
			st("customer.subscription.updated", "active", t0.Add(10*day), map[string]any{"cancel_at_period_end": true}, map[string]any{"cancel_at_period_end": false})
			expect(domain.StateCanceling, true, domain.StateActive, domain.StateCanceling)
		case 4: // paused
			st("customer.subscription.created", "active", t0, nil, nil)
			st("customer.subscription.paused", "paused", t0.Add(5*day), nil, map[string]any{"status": "active"})
			expect(domain.StatePaused, false, domain.StateActive, domain.StatePaused)
		case 5: // canceled at once
			st("customer.subscription.created", "active", t0, nil, nil)
			st("customer.subscription.deleted", "canceled", t0.Add(2*day), nil, nil)
			expect(domain.StateEnded, false, domain.StateActive, domain.StateEnded)
		case 6: // Braintree: trial, then charged
			s.braintree("subscription_went_active", sub, "Active", true, false, t0)
			s.braintree("subscription_charged_successfully", sub, "Active", true, true, t0.Add(14*day))
			expect(domain.StateActive, true, domain.StateTrialing, domain.StateActive)
		case 7: // Braintree: charge fails
			s.braintree("subscription_went_active", sub, "Active", false, false, t0)
			s.braintree("subscription_charged_unsuccessfully", sub, "Past Due", false, true, t0.Add(30*day))
			expect(domain.StatePastDue, true, domain.StateActive, domain.StatePastDue)
		case 8: // Braintree: canceled
			s.braintree("subscription_went_active", sub, "Active", false, false, t0)
			s.braintree("subscription_canceled", sub, "Canceled", false, false, t0.Add(3*day))
			expect(domain.StateEnded, false, domain.StateActive, domain.StateEnded)
		case 9: // a top-up before its user exists
			topUp("checkout.session.completed", "paid", "pi_scn_"+user, 100, t0)
			s.clerk("user.created", user, t0.Add(time.Hour))
			s.check(func(t *testing.T, r *recordReader) {
				w := r.wallet(user)
				assert.Equal(t, int64(140), w.Available, user)
				assert.Equal(t, int64(0), w.Pending, user)
				assert.Equal(t, domain.OrderPaid, r.order(domain.Stripe, "pi_scn_"+user).Status)
			})
		case 10: // an asynchronous top-up for a user billfold never sees
			topUp("checkout.session.completed", "unpaid", "pi_scn_"+user, 100, t0)
			topUp("checkout.session.async_payment_succeeded", "paid", "pi_scn_"+user, 100, t0.Add(2*day))
			s.check(func(t *testing.T, r *recordReader) {
				w := r.wallet(user)
				assert.Equal(t, int64(0), w.Available, user)
				assert.Equal(t, int64(100), w.Pending, user)
				assert.Equal(t, domain.OrderPaid, r.order(domain.Stripe, "pi_scn_"+user).Status)
			})
		case 11: // a top-up refunded in full
			s.clerk("user.created", user, t0)
			topUp("checkout.session.completed", "paid", "pi_scn_"+user, 50, t0.Add(time.Hour))
			st("charge.refunded", "", t0.Add(3*day), map[string]any{"id": "ch_scn_" + user, "payment_intent": "pi_scn_" + user, "amount_refunded": 1000}, nil)
			s.check(func(t *testing.T, r *recordReader) {
				assert.Equal(t, int64(40), r.wallet(user).Available, user)
				o := r.order(domain.Stripe, "pi_scn_"+user)
				assert.Equal(t, domain.OrderRefunded, o.Status)
				assert.Equal(t, int64(1000), o.AmountRefunded)
			})
		case 12: // PactaPay: paid, then partly refunded
			pay := fmt.Sprintf("pay_scn_%d", c)
			s.pactapay("payment.completed", pay, 1500, t0)
			s.pactapay("payment.refunded", pay, 500, t0.Add(day))
			s.check(func(t *testing.T, r *recordReader) {
				o := r.order(domain.PactaPay, pay)
				assert.Equal(t, domain.OrderPartiallyRefunded, o.Status)
				assert.Equal(t, int64(1500), o.Amount)
				assert.Equal(t, int64(500), o.AmountRefunded)
				assert.Equal(t, []domain.Link{{Kind: "deal_id", Value: "deal_" + pay}}, o.Links)
			})
		case 13: // a Clerk user deleted, then a late update
			s.clerk("user.created", user, t0)
			s.clerk("user.deleted", user, t0.Add(day))
			s.clerk("user.updated", user, t0.Add(2*day))
			s.check(func(t *testing.T, r *recordReader) {
				assert.True(t, r.customer(domain.Clerk, user).Deleted, user)
				w := r.wallet(user)
				assert.Equal(t, int64(0), w.Available, user)
				assert.Equal(t, int64(40), w.Pending, "a deleted user's bonus is held")
			})
		case 14: // a payment that failed, then succeeded
			pi := "pi_scn_retry_" + user
			st("payment_intent.payment_failed", "", t0, map[string]any{"id": pi}, nil)
			st("payment_intent.succeeded", "", t0.Add(time.Hour), map[string]any{"id": pi}, nil)
			s.check(func(t *testing.T, r *recordReader) {
				assert.Equal(t, domain.OrderPaid, r.order(domain.Stripe, pi).Status)
			})
		}
	}
	return s
}

// The scenario: a few hundred customers across Stripe, Clerk,
// Braintree and PactaPay, delivered through the real HTTP endpoints
// shuffled and with 20% duplicates, end in exactly the records written
// here.
func TestScenarioAcrossProviders(t *testing.T) {
	url := externalNATS(t)
	srv := startServer(t, t.TempDir(), scenarioEnv(), append(scenarioConfig(t), "--nats-url", url, "--rate-limit", "100000", "--rate-burst", "100000")...)

	s := buildScenario(300)
	rng := rand.New(rand.NewPCG(7, 11))
	sends := append([]scenarioDelivery(nil), s.deliveries...)
	for range len(s.deliveries) / 5 {
		sends = append(sends, s.deliveries[rng.IntN(len(s.deliveries))])
	}
	rng.Shuffle(len(sends), func(i, j int) { sends[i], sends[j] = sends[j], sends[i] })

	work := make(chan scenarioDelivery)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for range 8 {
		wg.Go(func() {
			for d := range work {
				code, answer, _ := srv.post(d.endpoint, d.body, d.sign(d.body))
				if code != 200 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %d %s", d.endpoint, code, answer))
					mu.Unlock()
				}
			}
		})
	}
	for _, d := range sends {
		work <- d
	}
	close(work)
	wg.Wait()
	require.Empty(t, failures)
	t.Logf("%d customers, %d events, %d deliveries", 300, len(s.deliveries), len(sends))

	_, js := natstest.ConnectURL(t, url)
	ctx := context.Background()
	stream, err := js.Stream(ctx, domain.JournalStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(len(s.deliveries)), info.State.Msgs, "each event journaled once")
	waitProjected(t, js, srv)

	dl, err := js.Stream(ctx, domain.DeadLetterStream)
	require.NoError(t, err)
	dlInfo, err := dl.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, dlInfo.State.Msgs, "no dead letters")

	r := &recordReader{t: t, kv: map[string]jetstream.KeyValue{}}
	for _, p := range domain.Projections {
		r.kv[p], err = js.KeyValue(ctx, domain.ProjectionBucket(p, 1))
		require.NoError(t, err)
	}
	for _, check := range s.checks {
		check(t, r)
	}
}
