package reducers

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
)

// genHistory draws a multi-customer history: Clerk users (some created
// after their top-ups, some deleted, some naming a Stripe customer as
// their external_id), Stripe customers, subscriptions
// moving through random statuses and flags with previous_attributes,
// invoices, top-ups paid at once or asynchronously, refunds and PactaPay
// payments. The clock often stands still, so many events share a second.
func genHistory(t *rapid.T) []*domain.Envelope {
	h := newHistory(t)
	tick := func() {
		h.tick(rapid.SampledFrom([]time.Duration{0, 0, time.Second, time.Hour}).Draw(t, "tick"))
	}
	statuses := []string{"trialing", "active", "past_due", "unpaid", "paused", "incomplete", "canceled"}
	for c := range rapid.IntRange(1, 4).Draw(t, "customers") {
		user, cus, sub := fmt.Sprintf("user_%d", c), fmt.Sprintf("cus_%d", c), fmt.Sprintf("sub_%d", c)
		hasUser := rapid.Bool().Draw(t, "hasUser")
		if hasUser && rapid.Bool().Draw(t, "userFirst") {
			h.clerkUser("user.created", user, user+"@example.com")
			tick()
		}
		h.stripe("customer.created", map[string]any{"id": cus, "object": "customer", "email": cus + "@example.com", "metadata": map[string]any{"user_id": user}}, nil)
		status, cape := "trialing", false
		h.stripe("customer.subscription.created", subscription(sub, cus, status, nil), nil)
		for range rapid.IntRange(0, 8).Draw(t, "steps") {
			tick()
			switch rapid.IntRange(0, 5).Draw(t, "step") {
			case 0, 1:
				next := rapid.SampledFrom(statuses).Draw(t, "status")
				h.stripe("customer.subscription.updated", subscription(sub, cus, next, map[string]any{"cancel_at_period_end": cape}), map[string]any{"status": status})
				status = next
			case 2:
				h.stripe("customer.subscription.updated", subscription(sub, cus, status, map[string]any{"cancel_at_period_end": !cape}), map[string]any{"cancel_at_period_end": cape})
				cape = !cape
			case 3:
				h.stripe("customer.subscription.trial_will_end", subscription(sub, cus, status, map[string]any{"cancel_at_period_end": cape}), nil)
			case 4:
				typ := rapid.SampledFrom([]string{"invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"}).Draw(t, "invoice")
				h.stripe(typ, invoice(fmt.Sprintf("in_%d_%d", c, h.n), sub, "paid", 900, 900), nil)
			case 5:
				h.stripe("customer.subscription.deleted", subscription(sub, cus, "canceled", map[string]any{"ended_at": h.now.Unix()}), nil)
			}
		}
		for j := range rapid.IntRange(0, 2).Draw(t, "topups") {
			pi, cs := fmt.Sprintf("pi_%d_%d", c, j), fmt.Sprintf("cs_%d_%d", c, j)
			md := map[string]any{"user_id": user, "credits": "25"}
			tick()
			if rapid.Bool().Draw(t, "async") {
				h.stripe("checkout.session.completed", session(cs, pi, "unpaid", 500, md), nil)
				tick()
				h.stripe("checkout.session.async_payment_succeeded", session(cs, pi, "paid", 500, md), nil)
			} else {
				h.stripe("checkout.session.completed", session(cs, pi, "paid", 500, md), nil)
			}
			switch rapid.IntRange(0, 2).Draw(t, "refund") {
			case 1:
				tick()
				h.stripe("charge.refunded", charge("ch_"+pi, pi, 500, 200, refund("re_a_"+pi, 200, "succeeded")), nil)
			case 2:
				tick()
				h.stripe("refund.created", map[string]any{"id": "re_b_" + pi, "object": "refund", "amount": 500, "status": "succeeded", "payment_intent": pi, "charge": "ch_" + pi}, nil)
				h.stripe("charge.refunded", charge("ch_"+pi, pi, 500, 500, refund("re_b_"+pi, 500, "succeeded")), nil)
			}
		}
		if hasUser {
			tick()
			h.clerkUser("user.created", user, user+"@example.com")
			if rapid.Bool().Draw(t, "externalID") { // a link that may contradict the top-ups' customer (cus_1)
				h.clerkProfile("user.updated", user, rapid.SampledFrom([]string{"cus_1", cus, "app_1"}).Draw(t, "ext"))
			}
			if rapid.Bool().Draw(t, "deleted") {
				tick()
				h.clerkUser("user.deleted", user, "")
				h.clerkUser("user.updated", user, "late@example.com")
			}
		}
		if rapid.Bool().Draw(t, "pactapay") {
			tick()
			pp := map[string]any{"id": fmt.Sprintf("pp_%d", h.n), "payment_id": fmt.Sprintf("pay_%d", c), "amount": 700, "currency": "usd"}
			h.add(domain.PactaPay, "payment.completed", pp)
		}
	}
	return h.events
}

// shuffleWithDuplicates draws a delivery of events: any order, and any
// event possibly delivered again later.
func shuffleWithDuplicates(t *rapid.T, events []*domain.Envelope) []*domain.Envelope {
	out := rapid.Permutation(events).Draw(t, "order")
	for range rapid.IntRange(0, len(events)).Draw(t, "duplicates") {
		ev := rapid.SampledFrom(events).Draw(t, "duplicate")
		at := rapid.IntRange(0, len(out)).Draw(t, "at")
		out = append(out[:at], append([]*domain.Envelope{ev}, out[at:]...)...)
	}
	return out
}

// markSomeUnsigned marks a random few events as unsigned input, as an
// unsigned endpoint for the same provider would journal them.
func markSomeUnsigned(t *rapid.T, events []*domain.Envelope) {
	for i, ev := range events {
		if rapid.IntRange(0, 4).Draw(t, fmt.Sprintf("unsigned%d", i)) == 0 {
			unsigned(ev)
		}
	}
}

// Invariant 4: the projections are a function of the set of events.
// Folding any permutation, with any duplicates, gives byte-identical
// records to folding in provider order, also when some of the events are
// unsigned input (ranked below signed input, invariant 2).
func TestAnyDeliveryOrderConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		events := genHistory(t)
		markSomeUnsigned(t, events)
		want := fold(t, DefaultOptions(), events)
		got := fold(t, DefaultOptions(), shuffleWithDuplicates(t, events))
		require.Equal(t, len(want), len(got), "same records")
		for k, v := range want {
			require.JSONEq(t, string(v), string(got[k]), "record %s", k)
		}
	})
}

// Exactly-once effect: a delivery seen twice in a row (a redelivery after a
// crash between write and ack) changes nothing the second time.
func TestRedeliveryIsANoOp(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		events := genHistory(t)
		m := memory{}
		for _, ev := range events {
			for _, p := range All(DefaultOptions()) {
				if !p.Handles(ev.Provider, ev.EventType) {
					continue
				}
				first, err := p.Apply(ev, m)
				require.NoError(t, err)
				for k, v := range first {
					m[k] = v
				}
				again, err := p.Apply(ev, m)
				require.NoError(t, err)
				require.Empty(t, again, "%s applied %s twice", p.Name(), ev)
			}
		}
	})
}
