package reducers

import (
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/stripewire"
)

// refundLedger is what a payment's refunds add up to, as mergeable state:
// refunds keyed by their provider id (each a last-writer-wins register, so
// a refund that later fails stops counting), and the largest cumulative
// amount_refunded any charge snapshot reported (apart for unsigned input).
type refundLedger struct {
	Refunds                map[string]stampedRefund `json:"refunds,omitempty"`
	ChargeRefunded         int64                    `json:"charge_refunded,omitempty"`
	UnsignedChargeRefunded int64                    `json:"unsigned_charge_refunded,omitempty"`
}

type stampedRefund struct {
	Stamp  Stamp  `json:"stamp"`
	Amount int64  `json:"amount"`
	Status string `json:"status,omitempty"`
}

// add records one refund.
func (l *refundLedger) add(id string, r stampedRefund) {
	if l.Refunds == nil {
		l.Refunds = map[string]stampedRefund{}
	}
	if old, ok := l.Refunds[id]; !ok || r.Stamp.After(old.Stamp) {
		l.Refunds[id] = r
	}
}

// total is the amount refunded: the larger of the refunds that have not
// failed and the charges' own cumulative figure; signedOnly leaves out
// what only unsigned input reported (signed input about the payment wins).
func (l refundLedger) total(signedOnly bool) int64 {
	var sum int64
	for _, r := range l.Refunds {
		if r.Status != "failed" && r.Status != "canceled" && (!signedOnly || r.Stamp.Unverified == "") {
			sum += r.Amount
		}
	}
	if signedOnly {
		return max(sum, l.ChargeRefunded)
	}
	return max(sum, l.ChargeRefunded, l.UnsignedChargeRefunded)
}

// stripePayment is what billfold reads of the Stripe objects that make up
// a one-off payment: checkout sessions, payment intents, charges and
// refunds.
type stripePayment struct{ *stripewire.Object }

func decodeStripePayment(ev *domain.Envelope) (stripePayment, error) {
	e, err := stripeFacts(ev)
	if err != nil {
		return stripePayment{}, err
	}
	p := stripePayment{&e.Object}
	if p.ID == "" {
		return p, domain.Errorf(domain.CodeReducerDecode, "Stripe %s %s: object has no id", ev.EventType, ev.EventID)
	}
	return p, nil
}

// paymentID is the payment intent the object belongs to, which is what
// keys orders and top-ups: every object of a payment carries it, so any of
// them can arrive first.
func (p stripePayment) paymentID() string {
	if p.Kind == "payment_intent" {
		return p.ID
	}
	return string(p.PaymentIntent)
}

// sessionID is the checkout session's id, for session objects.
func (p stripePayment) sessionID() string {
	if p.Kind == "checkout.session" {
		return p.ID
	}
	return ""
}

// chargeID is the charge the object is or belongs to.
func (p stripePayment) chargeID() string {
	if p.Kind == "charge" {
		return p.ID
	}
	return string(p.Charge)
}

// orderID is the key of the payment's order: the payment intent, else the
// session, else the charge (a legacy charge without a payment intent).
func (p stripePayment) orderID() string {
	for _, id := range []string{p.paymentID(), p.sessionID(), p.chargeID()} {
		if id != "" {
			return id
		}
	}
	return p.ID
}

// addRefunds records the refunds a refund or charge object reports.
func (p stripePayment) addRefunds(l *refundLedger, stamp Stamp) {
	switch p.Kind {
	case "refund":
		l.add(p.ID, stampedRefund{Stamp: stamp, Amount: p.Amount, Status: p.Status})
	case "charge":
		if stamp.Unverified != "" {
			l.UnsignedChargeRefunded = max(l.UnsignedChargeRefunded, p.AmountRefunded)
		} else {
			l.ChargeRefunded = max(l.ChargeRefunded, p.AmountRefunded)
		}
		if p.Refunds != nil {
			for _, r := range p.Refunds.Data {
				l.add(r.ID, stampedRefund{Stamp: stamp, Amount: r.Amount, Status: r.Status})
			}
		}
	}
}

// isStripeRefundEvent reports whether t reports refunds.
func isStripeRefundEvent(t string) bool {
	switch t {
	case "charge.refunded", "refund.created", "refund.updated", "refund.failed", "charge.refund.updated":
		return true
	}
	return false
}
