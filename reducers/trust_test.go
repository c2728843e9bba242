package reducers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/billfold/billfold/domain"
)

// unsigned marks ev as received by an unsigned endpoint.
func unsigned(ev *domain.Envelope) *domain.Envelope {
	ev.Endpoint, ev.Verification = "in-unsigned", domain.VerifiedUnsigned
	return ev
}

// Issue 17: unsigned input about an object never overrides a signed event
// about it, whatever the provider times and the arrival order, even when
// it claims the signed event's id; the record says unsigned input
// contributed.
func TestSignedInputWinsOverUnsigned(t *testing.T) {
	h := newHistory(t)
	genuine := h.stripe("customer.created", map[string]any{"id": "cus_1", "object": "customer", "email": "ana@example.com"}, nil)
	h.stripe("customer.subscription.created", subscription("sub_1", "cus_1", "active", nil), nil)
	h.tick(time.Hour)
	forged := unsigned(h.stripe("customer.updated", map[string]any{"id": "cus_1", "object": "customer", "email": "attacker@example.net"}, nil))
	forged.EventID = genuine.EventID
	unsigned(h.stripe("customer.subscription.deleted", subscription("sub_1", "cus_1", "canceled", map[string]any{"ended_at": h.now.Unix()}), nil))

	signedOnly := fold(t, DefaultOptions(), []*domain.Envelope{h.events[0], h.events[1]})
	c := record[domain.CustomerRecord](t, signedOnly, CustomerKey("stripe", "cus_1"))
	assert.Equal(t, domain.VerifiedSignature, c.Verification)

	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		m := fold(t, DefaultOptions(), order)
		c := record[domain.CustomerRecord](t, m, CustomerKey("stripe", "cus_1"))
		assert.Equal(t, "ana@example.com", c.Email, "the signed profile wins over a later unsigned one")
		assert.Equal(t, 2, c.Version, "an unsigned event with a signed event's id is another event")
		assert.Equal(t, domain.VerifiedUnsigned, c.Verification)
		s := record[domain.SubscriptionRecord](t, m, SubscriptionKey("stripe", "sub_1"))
		assert.Equal(t, domain.StateActive, s.State, "an unsigned deletion does not end a signed subscription")
		assert.Equal(t, domain.VerifiedUnsigned, s.Verification)
	}
}

// Issue 17: an unsigned checkout top-up credits no wallet unless its
// endpoint is allowed to (Options.UnsignedCredits).
func TestWalletsNeverCreditFromUnsignedInput(t *testing.T) {
	h := newHistory(t)
	h.clerkUser("user.created", "user_1", "ana@example.com")
	h.tick(time.Minute)
	unsigned(h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 1000, map[string]any{"user_id": "user_1", "credits": "999999"}), nil))

	w := record[domain.WalletRecord](t, fold(t, DefaultOptions(), h.events), WalletKey("user_1"))
	assert.Equal(t, int64(40), w.Balance, "the signup bonus only")
	assert.Equal(t, domain.VerifiedSignature, w.Verification)

	o := DefaultOptions()
	o.UnsignedCredits = []string{"in-unsigned"}
	w = record[domain.WalletRecord](t, fold(t, o, h.events), WalletKey("user_1"))
	assert.Equal(t, int64(40+999999), w.Balance, "the endpoint is allowed to credit")
	assert.Equal(t, domain.VerifiedUnsigned, w.Verification)
}

// Where the earliest fact holds a register (a top-up's grant), signed input
// still wins over earlier unsigned input from an endpoint allowed to credit.
func TestSignedGrantWinsOverAnEarlierUnsignedOne(t *testing.T) {
	h := newHistory(t)
	unsigned(h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 1000, map[string]any{"user_id": "user_1", "credits": "999999"}), nil))
	h.tick(time.Minute)
	h.stripe("checkout.session.completed", session("cs_1", "pi_1", "paid", 1000, map[string]any{"user_id": "user_1", "credits": "100"}), nil)
	o := DefaultOptions()
	o.UnsignedCredits = []string{"in-unsigned"}
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		w := record[domain.WalletRecord](t, fold(t, o, order), WalletKey("user_1"))
		assert.Equal(t, int64(100), w.Balance)
	}
}

// The sets that only grow follow the same rule: once a signed event
// describes an order, payment outcomes and refunds that only unsigned input
// reported do not count; an order only unsigned input describes shows them.
func TestSignedInputWinsInAnOrdersSets(t *testing.T) {
	h := newHistory(t)
	h.stripe("checkout.session.completed", session("cs_1", "pi_1", "unpaid", 5000, nil), nil)
	h.tick(time.Hour)
	unsigned(h.stripe("checkout.session.async_payment_succeeded", session("cs_1", "pi_1", "paid", 5000, nil), nil))
	unsigned(h.stripe("refund.created", map[string]any{"id": "re_1", "object": "refund", "amount": 5000, "status": "succeeded", "payment_intent": "pi_1"}, nil))

	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		o := record[domain.OrderRecord](t, fold(t, DefaultOptions(), order), OrderKey("stripe", "pi_1"))
		assert.Equal(t, domain.OrderPending, o.Status, "unsigned input does not pay or refund a signed order")
		assert.Zero(t, o.AmountRefunded)
		assert.Equal(t, domain.VerifiedUnsigned, o.Verification)
	}
	o := record[domain.OrderRecord](t, fold(t, DefaultOptions(), h.events[1:]), OrderKey("stripe", "pi_1"))
	assert.Equal(t, domain.OrderRefunded, o.Status, "without signed input, the unsigned outcomes show, flagged")
	assert.Equal(t, domain.VerifiedUnsigned, o.Verification)
}
