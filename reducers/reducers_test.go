package reducers

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
)

func reversed(evs []*domain.Envelope) []*domain.Envelope {
	out := slices.Clone(evs)
	slices.Reverse(out)
	return out
}

// A trial that converts, is set to cancel at period end, and is deleted,
// with trial_will_end sharing its second with the update that ends the
// trial: the update is not lost, in either delivery order.
func TestSubscriptionLifecycle(t *testing.T) {
	h := newHistory(t)
	trialEnd := h.now.Add(14 * 24 * time.Hour).Unix()
	h.stripe("customer.subscription.created", subscription("sub_1", "cus_1", "trialing", map[string]any{"trial_end": trialEnd}), nil)
	h.tick(14 * 24 * time.Hour)
	h.stripe("customer.subscription.updated", subscription("sub_1", "cus_1", "active", map[string]any{"trial_end": trialEnd}),
		map[string]any{"status": "trialing"})
	h.stripe("customer.subscription.trial_will_end", subscription("sub_1", "cus_1", "trialing", map[string]any{"trial_end": trialEnd}), nil)
	h.tick(time.Hour)
	h.stripe("invoice.payment_failed", invoice("in_1", "sub_1", "open", 900, 0), nil)
	h.stripe("customer.subscription.updated", subscription("sub_1", "cus_1", "past_due", nil), map[string]any{"status": "active"})
	h.tick(time.Hour)
	h.stripe("invoice.paid", invoice("in_1", "sub_1", "paid", 900, 900), nil)
	h.stripe("customer.subscription.updated", subscription("sub_1", "cus_1", "active", nil), map[string]any{"status": "past_due"})
	h.tick(time.Hour)
	h.stripe("customer.subscription.updated", subscription("sub_1", "cus_1", "active", map[string]any{"cancel_at_period_end": true}),
		map[string]any{"cancel_at_period_end": false})
	live := fold(t, DefaultOptions(), h.events)
	key := SubscriptionKey("stripe", "sub_1")
	s := record[domain.SubscriptionRecord](t, live, key)
	assert.Equal(t, domain.StateCanceling, s.State)
	assert.True(t, s.Entitled)
	assert.Equal(t, "active", s.ProviderStatus)
	assert.Equal(t, "cus_1", s.CustomerID)
	assert.Equal(t, "price_pro", s.PriceID)
	assert.Equal(t, int64(1770000000), s.CurrentPeriodEnd.Unix(), "period end read from items (API 2025-03-31)")
	assert.Equal(t, "paid", s.LatestInvoice.Status)
	assert.Equal(t, "succeeded", s.LastPayment.Outcome)
	var path []domain.LifecycleState
	for _, tr := range s.Transitions {
		path = append(path, tr.To)
	}
	assert.Equal(t, []domain.LifecycleState{domain.StateTrialing, domain.StateActive, domain.StatePastDue, domain.StateActive, domain.StateCanceling}, path)
	assert.Equal(t, 8, s.Version)
	assert.Equal(t, live, fold(t, DefaultOptions(), reversed(h.events)), "delivery order does not matter")

	// Deletion ends it for good; a late update in the same second does
	// not revive it.
	h.tick(30 * 24 * time.Hour)
	h.stripe("customer.subscription.deleted", subscription("sub_1", "cus_1", "canceled", map[string]any{"ended_at": h.now.Unix()}), nil)
	h.stripe("customer.subscription.updated", subscription("sub_1", "cus_1", "active", nil), nil)
	s = record[domain.SubscriptionRecord](t, fold(t, DefaultOptions(), reversed(h.events)), key)
	assert.Equal(t, domain.StateEnded, s.State)
	assert.False(t, s.Entitled)
	require.NotNil(t, s.EndedAt)
}

// A subscription first seen through its invoice names the invoice's
// customer, and keeps it once its own snapshot arrives, in either order.
func TestInvoiceFirstSubscriptionNamesItsCustomer(t *testing.T) {
	h := newHistory(t)
	inv := invoice("in_1", "sub_1", "paid", 900, 900)
	inv["customer"] = "cus_1"
	h.stripe("invoice.paid", inv, nil)
	key := SubscriptionKey("stripe", "sub_1")
	s := record[domain.SubscriptionRecord](t, fold(t, DefaultOptions(), h.events), key)
	assert.Equal(t, domain.StateIncomplete, s.State)
	assert.Equal(t, "cus_1", s.CustomerID, "the invoice's customer")

	h.tick(time.Minute)
	h.stripe("customer.subscription.created", subscription("sub_1", "cus_1", "active", nil), nil)
	live := fold(t, DefaultOptions(), h.events)
	assert.Equal(t, "cus_1", record[domain.SubscriptionRecord](t, live, key).CustomerID)
	assert.Equal(t, live, fold(t, DefaultOptions(), reversed(h.events)), "delivery order does not matter")
}

func TestPastDueEntitlementSwitch(t *testing.T) {
	h := newHistory(t)
	h.stripe("customer.subscription.updated", subscription("sub_1", "cus_1", "past_due", nil), nil)
	o := DefaultOptions()
	key := SubscriptionKey("stripe", "sub_1")
	assert.True(t, record[domain.SubscriptionRecord](t, fold(t, o, h.events), key).Entitled)
	o.PastDueEntitled = false
	assert.False(t, record[domain.SubscriptionRecord](t, fold(t, o, h.events), key).Entitled)
}

// A refund that arrives before its checkout completion ends on the right
// order, and the session and charge aliases find it.
func TestOrderRefundBeforeCompletion(t *testing.T) {
	h := newHistory(t)
	md := map[string]any{"deal_id": "deal_9", "note": "x"}
	h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 5000, md), nil)
	h.tick(time.Minute)
	h.stripe("charge.refunded", charge("ch_1", "pi_1", 5000, 2000, refund("re_1", 2000, "succeeded")), nil)
	h.tick(time.Minute)
	h.stripe("refund.created", map[string]any{"id": "re_2", "object": "refund", "amount": 3000, "status": "succeeded", "charge": "ch_1", "payment_intent": "pi_1"}, nil)
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		m := fold(t, DefaultOptions(), order)
		o := record[domain.OrderRecord](t, m, OrderKey("stripe", "pi_1"))
		assert.Equal(t, domain.OrderRefunded, o.Status)
		assert.Equal(t, int64(5000), o.Amount)
		assert.Equal(t, int64(5000), o.AmountRefunded)
		assert.Equal(t, "cs_1", o.SessionID)
		assert.Equal(t, map[string]string{"deal_id": "deal_9", "note": "x"}, o.Metadata)
		assert.Equal(t, []domain.Link{{Kind: "deal_id", Value: "deal_9"}}, o.Links)
		assert.Equal(t, "pi_1", record[OrderAlias](t, m, OrderAliasKey("stripe", "session", "cs_1")).OrderID)
		assert.Equal(t, "pi_1", record[OrderAlias](t, m, OrderAliasKey("stripe", "charge", "ch_1")).OrderID)
	}
	// The first refund alone is partial.
	m := fold(t, DefaultOptions(), h.events[:2])
	o := record[domain.OrderRecord](t, m, OrderKey("stripe", "pi_1"))
	assert.Equal(t, domain.OrderPartiallyRefunded, o.Status)
	assert.Equal(t, int64(2000), o.AmountRefunded)
}

func TestOrderStatuses(t *testing.T) {
	cases := []struct {
		name   string
		events func(h *history)
		want   domain.OrderStatus
	}{
		{"unpaid completion is pending", func(h *history) {
			h.stripe("checkout.session.completed", session("cs_1", "pi_1", "unpaid", 100, nil), nil)
		}, domain.OrderPending},
		{"async success pays", func(h *history) {
			h.stripe("checkout.session.completed", session("cs_1", "pi_1", "unpaid", 100, nil), nil)
			h.tick(time.Hour)
			h.stripe("checkout.session.async_payment_succeeded", session("cs_1", "pi_1", "paid", 100, nil), nil)
		}, domain.OrderPaid},
		{"async failure fails", func(h *history) {
			h.stripe("checkout.session.completed", session("cs_1", "pi_1", "unpaid", 100, nil), nil)
			h.tick(time.Hour)
			h.stripe("checkout.session.async_payment_failed", session("cs_1", "pi_1", "unpaid", 100, nil), nil)
		}, domain.OrderFailed},
		{"a retried payment that succeeds is paid", func(h *history) {
			h.stripe("payment_intent.payment_failed", map[string]any{"id": "pi_1", "object": "payment_intent", "amount": 100, "currency": "eur"}, nil)
			h.tick(time.Minute)
			h.stripe("payment_intent.succeeded", map[string]any{"id": "pi_1", "object": "payment_intent", "amount": 100, "currency": "eur"}, nil)
		}, domain.OrderPaid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHistory(t)
			c.events(h)
			for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
				assert.Equal(t, c.want, record[domain.OrderRecord](t, fold(t, DefaultOptions(), order), OrderKey("stripe", "pi_1")).Status)
			}
		})
	}
	h := newHistory(t)
	h.stripe("checkout.session.expired", session("cs_2", "", "unpaid", 100, nil), nil)
	assert.Equal(t, domain.OrderExpired, record[domain.OrderRecord](t, fold(t, DefaultOptions(), h.events), OrderKey("stripe", "cs_2")).Status)
}

func TestPactaPayOrders(t *testing.T) {
	h := newHistory(t)
	body := func(typ string, amount int64) map[string]any {
		return map[string]any{"id": "pp_evt_" + typ, "event": typ, "payment_id": "pay_1", "amount": amount, "currency": "usd", "metadata": map[string]any{"run_id": "run_7"}}
	}
	h.add(domain.PactaPay, "payment.completed", body("payment.completed", 1200))
	h.tick(time.Hour)
	h.add(domain.PactaPay, "payment.refunded", body("payment.refunded", 1200))
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		o := record[domain.OrderRecord](t, fold(t, DefaultOptions(), order), OrderKey("pactapay", "pay_1"))
		assert.Equal(t, domain.OrderRefunded, o.Status)
		assert.Equal(t, int64(1200), o.Amount)
		assert.Equal(t, "usd", o.Currency)
		assert.Equal(t, []domain.Link{{Kind: "run_id", Value: "run_7"}}, o.Links)
	}
}

// One payment credits once, whichever of its two events arrive, in
// whatever order; credits wait for their user; a full refund reverses
// them.
func TestWalletTopUps(t *testing.T) {
	h := newHistory(t)
	md := map[string]any{"user_id": "user_1", "credits": "100"}
	h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 1000, md), nil)
	h.tick(time.Second)
	h.stripe("checkout.session.async_payment_succeeded", session("cs_1", "pi_1", "paid", 1000, md), nil)
	key := WalletKey("user_1")

	w := record[domain.WalletRecord](t, fold(t, DefaultOptions(), h.events), key)
	assert.Equal(t, int64(100), w.Balance, "credited once")
	assert.Equal(t, int64(100), w.Pending, "held until the user exists")
	assert.Equal(t, int64(0), w.Available)
	assert.False(t, w.UserKnown)

	h.tick(time.Hour)
	h.clerkUser("user.created", "user_1", "ana@example.com")
	live := fold(t, DefaultOptions(), h.events)
	w = record[domain.WalletRecord](t, live, key)
	assert.Equal(t, int64(140), w.Available, "top-up released, signup bonus granted")
	assert.Equal(t, int64(0), w.Pending)
	assert.Len(t, w.Entries, 2)
	assert.Equal(t, live, fold(t, DefaultOptions(), reversed(h.events)))

	h.tick(time.Hour)
	h.stripe("charge.refunded", charge("ch_1", "pi_1", 1000, 1000), nil)
	w = record[domain.WalletRecord](t, fold(t, DefaultOptions(), reversed(h.events)), key)
	assert.Equal(t, int64(40), w.Available, "a full refund reverses the top-up")
	assert.Len(t, w.Entries, 3)

	h.tick(time.Hour)
	h.clerkUser("user.deleted", "user_1", "")
	w = record[domain.WalletRecord](t, fold(t, DefaultOptions(), h.events), key)
	assert.Equal(t, int64(0), w.Available, "a deleted user's credits are held")
	assert.Equal(t, int64(40), w.Pending)
}

func TestWalletPartialRefundKeepsCredits(t *testing.T) {
	h := newHistory(t)
	h.clerkUser("user.created", "user_1", "ana@example.com")
	h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 1000, map[string]any{"user_id": "user_1", "credits": "10"}), nil)
	h.stripe("charge.refunded", charge("ch_1", "pi_1", 1000, 500), nil)
	assert.Equal(t, int64(50), record[domain.WalletRecord](t, fold(t, DefaultOptions(), h.events), WalletKey("user_1")).Available)
}

func TestWalletInvalidTopUpIsPermanent(t *testing.T) {
	for _, md := range []map[string]any{
		{"credits": "10"},
		{"user_id": "user_1", "credits": "ten"},
		{"user_id": "user_1", "credits": "0"},
		{"user_id": "user_1", "credits": "-5"},
		{"user_id": "user_1", "credits": "1.5"},
	} {
		h := newHistory(t)
		ev := h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 1000, md), nil)
		_, err := Wallets{DefaultOptions()}.Apply(ev, memory{})
		assert.Equal(t, domain.CodeReducerInvalid, domain.ErrorCode(err), "%v", md)
	}
}

func TestCustomers(t *testing.T) {
	h := newHistory(t)
	h.stripe("customer.created", map[string]any{"id": "cus_1", "object": "customer", "email": "a@example.com", "metadata": map[string]any{"user_id": "user_1"}}, nil)
	h.tick(time.Second)
	h.stripe("customer.updated", map[string]any{"id": "cus_1", "object": "customer", "email": "b@example.com", "name": "Ana", "metadata": map[string]any{"user_id": "user_1"}}, nil)
	h.clerkUser("user.created", "user_1", "ana@example.com")
	h.tick(time.Second)
	h.clerkUser("user.deleted", "user_1", "")
	h.tick(time.Second)
	h.clerkUser("user.updated", "user_1", "new@example.com")
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		m := fold(t, DefaultOptions(), order)
		c := record[domain.CustomerRecord](t, m, CustomerKey("stripe", "cus_1"))
		assert.Equal(t, "b@example.com", c.Email)
		assert.Equal(t, []domain.Link{{Kind: "user_id", Value: "user_1"}}, c.Links)
		u := record[domain.CustomerRecord](t, m, CustomerKey("clerk", "user_1"))
		assert.True(t, u.Deleted, "user.updated after a deletion does not revive")
		assert.Equal(t, "Ana Silva", u.Name)
	}
}

func TestRedeliveryChangesNothing(t *testing.T) {
	h := newHistory(t)
	h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 1000, map[string]any{"user_id": "user_1", "credits": "10"}), nil)
	m := fold(t, DefaultOptions(), h.events)
	for _, p := range All(DefaultOptions()) {
		if p.Handles(domain.Stripe, h.events[0].EventType) {
			changes, err := p.Apply(h.events[0], m)
			require.NoError(t, err)
			assert.Empty(t, changes, p.Name())
		}
	}
}

func TestFailSwitch(t *testing.T) {
	o := DefaultOptions()
	o.FailTypes = []string{"customer.created"}
	h := newHistory(t)
	ev := h.stripe("customer.created", map[string]any{"id": "cus_1", "object": "customer"}, nil)
	_, err := Customers{o}.Apply(ev, memory{})
	assert.Equal(t, domain.CodeReducerFailed, domain.ErrorCode(err))
}

// A Connect account's events keep their account on every record they
// touch, whatever the order: should two disagree, the least account wins
// (events of the platform, without one, never clear it).
func TestRecordsKeepTheConnectAccount(t *testing.T) {
	h := newHistory(t)
	created := h.stripe("customer.subscription.created", subscription("sub_c", "cus_c", "active", nil), nil)
	created.Account = "acct_B"
	h.tick(time.Minute)
	updated := h.stripe("customer.subscription.updated", subscription("sub_c", "cus_c", "past_due", nil), map[string]any{"status": "active"})
	updated.Account = "acct_A"
	h.tick(time.Minute)
	h.stripe("customer.subscription.updated", subscription("sub_c", "cus_c", "active", nil), map[string]any{"status": "past_due"})
	inOrder := fold(t, DefaultOptions(), h.events)
	assert.Equal(t, inOrder, fold(t, DefaultOptions(), reversed(h.events)), "the same records in either order")
	assert.Equal(t, "acct_A", record[domain.SubscriptionRecord](t, inOrder, SubscriptionKey("stripe", "sub_c")).Account)

	platform := fold(t, DefaultOptions(), []*domain.Envelope{h.events[2]})
	assert.Empty(t, record[domain.SubscriptionRecord](t, platform, SubscriptionKey("stripe", "sub_c")).Account, "a platform event makes a platform record")

	// A wallet keeps the account of the top-ups that credit it.
	w := newHistory(t)
	w.clerkProfile("user.created", "user_w", "")
	w.tick(time.Minute)
	w.topUp(1, "", "user_w", 100).Account = "acct_W"
	w.tick(time.Minute)
	w.topUp(2, "", "user_w", 50).Account = "acct_V"
	for _, order := range [][]*domain.Envelope{w.events, reversed(w.events)} {
		wallet := record[domain.WalletRecord](t, fold(t, DefaultOptions(), order), WalletKey("user_w"))
		assert.Equal(t, int64(150), wallet.Balance-40, "both top-ups credited beside the signup bonus")
		assert.Equal(t, "acct_V", wallet.Account, "the least of its top-ups' accounts")
	}
}
