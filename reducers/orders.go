package reducers

import (
	"maps"

	"github.com/billfold/billfold/domain"
)

// orderMerge is the merge state of an order: one snapshot per kind of
// provider object that described it (last-writer-wins each), the payment
// outcomes seen (a set: once paid, a late "pending" does not undo it), and
// the refunds.
type orderMerge struct {
	Folded    Folded                      `json:"folded"`
	Snapshots map[string]orderSnapshot    `json:"snapshots,omitempty"`
	Outcomes  map[domain.OrderStatus]bool `json:"outcomes,omitempty"`
	// UnsignedOutcomes are the outcomes only unsigned input reported; they
	// count only while no signed event describes the order (signedOnly).
	UnsignedOutcomes map[domain.OrderStatus]bool `json:"unsigned_outcomes,omitempty"`
	Refunds          refundLedger                `json:"refunds"`
}

type orderSnapshot struct {
	Stamp      Stamp             `json:"stamp"`
	Amount     int64             `json:"amount,omitempty"`
	Currency   string            `json:"currency,omitempty"`
	CustomerID string            `json:"customer_id,omitempty"`
	SessionID  string            `json:"session_id,omitempty"`
	PaymentID  string            `json:"payment_id,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// snapshotPrecedence is the order in which object snapshots describe an
// order, weakest first: a checkout session's amount, customer and metadata
// are what the buyer saw, so they win over the payment intent's and the
// charge's.
var snapshotPrecedence = []string{"charge", "refund", "payment_intent", "payment", "checkout.session"}

type storedOrder = Stored[domain.OrderRecord, orderMerge]

// Orders is the orders projection: Stripe checkout sessions, payment
// intents, charges and refunds, and PactaPay payments. It also keeps the
// alias records that find an order by its session or charge id.
type Orders struct{ o Options }

// Name implements Projection.
func (Orders) Name() string { return domain.ProjectionOrders }

// stripeOrderOutcomes is the outcome each Stripe event type reports; the
// completed session's outcome depends on its payment_status.
var stripeOrderOutcomes = map[string]domain.OrderStatus{
	"checkout.session.completed":               "",
	"checkout.session.async_payment_succeeded": domain.OrderPaid,
	"checkout.session.async_payment_failed":    domain.OrderFailed,
	"checkout.session.expired":                 domain.OrderExpired,
	"payment_intent.succeeded":                 domain.OrderPaid,
	"payment_intent.payment_failed":            domain.OrderFailed,
}

var pactaPayOutcomes = map[string]domain.OrderStatus{
	"payment.completed": domain.OrderPaid,
	"payment.failed":    domain.OrderFailed,
	"payment.refunded":  "",
}

// Handles implements Projection.
func (Orders) Handles(p domain.Provider, t string) bool {
	switch p {
	case domain.Stripe:
		_, ok := stripeOrderOutcomes[t]
		return ok || isStripeRefundEvent(t)
	case domain.PactaPay:
		_, ok := pactaPayOutcomes[t]
		return ok
	}
	return false
}

// Apply implements Projection.
func (o Orders) Apply(ev *domain.Envelope, records Lookup) (Changes, error) {
	if err := failSwitch(o.o, ev); err != nil {
		return nil, err
	}
	if ev.Provider == domain.PactaPay {
		return o.applyPactaPay(ev, records)
	}
	p, err := decodeStripePayment(ev)
	if err != nil {
		return nil, err
	}
	if p.Kind == "checkout.session" && p.Mode != "" && p.Mode != "payment" {
		return nil, nil // subscription and setup sessions are not orders
	}
	stamp := stampOf(ev, 0)
	outcome := stripeOrderOutcomes[ev.EventType]
	if ev.EventType == "checkout.session.completed" {
		outcome = domain.OrderPending
		if p.PaymentStatus == "paid" || p.PaymentStatus == "no_payment_required" {
			outcome = domain.OrderPaid
		}
	}
	snap := orderSnapshot{Stamp: stamp, CustomerID: string(p.Customer), Currency: p.Currency,
		SessionID: p.sessionID(), PaymentID: p.paymentID(), Metadata: p.Metadata, Amount: p.Amount}
	if p.Kind == "checkout.session" {
		snap.Amount = p.AmountTotal
	}
	if p.Kind == "refund" {
		snap.Amount = 0 // a refund's amount is the refund's, not the order's
	}
	id := p.orderID()
	changes, err := o.update(ev, records, domain.Stripe, id, func(m *orderMerge) {
		m.offer(p.Kind, snap)
		if outcome != "" {
			m.outcome(ev, outcome)
		}
		p.addRefunds(&m.Refunds, stamp)
	})
	if err != nil {
		return nil, err
	}
	for _, alias := range []struct{ kind, id string }{{"session", p.sessionID()}, {"charge", p.chargeID()}} {
		if alias.id != "" && alias.id != id {
			c, err := o.alias(ev, records, alias.kind, alias.id, id)
			if err != nil {
				return nil, err
			}
			changes = merge(changes, c)
		}
	}
	return changes, nil
}

func (o Orders) applyPactaPay(ev *domain.Envelope, records Lookup) (Changes, error) {
	p, err := pactaFacts(ev)
	if err != nil {
		return nil, err
	}
	stamp := stampOf(ev, 0)
	return o.update(ev, records, domain.PactaPay, p.PaymentID, func(m *orderMerge) {
		if ev.EventType == "payment.refunded" {
			// A refund event's amount is what was refunded, unless it
			// says so separately; the event id keys the refund.
			refunded := p.AmountRefunded
			if refunded == 0 {
				refunded = p.Amount
			}
			m.Refunds.add(ev.EventID, stampedRefund{Stamp: stamp, Amount: refunded})
			m.offer("refund", orderSnapshot{Stamp: stamp, Currency: p.Currency, CustomerID: p.Customer, PaymentID: p.PaymentID, Metadata: p.Metadata})
			return
		}
		m.outcome(ev, pactaPayOutcomes[ev.EventType])
		m.offer("payment", orderSnapshot{Stamp: stamp, Amount: p.Amount, Currency: p.Currency, CustomerID: p.Customer, PaymentID: p.PaymentID, Metadata: p.Metadata})
	})
}

// outcome adds a payment outcome ev reported, to the unsigned set when no
// signature vouches for ev.
func (m *orderMerge) outcome(ev *domain.Envelope, o domain.OrderStatus) {
	if untrusted(ev) == "" {
		m.Outcomes[o] = true
		return
	}
	if m.UnsignedOutcomes == nil {
		m.UnsignedOutcomes = map[domain.OrderStatus]bool{}
	}
	m.UnsignedOutcomes[o] = true
}

func (m *orderMerge) offer(object string, s orderSnapshot) {
	if m.Snapshots == nil {
		m.Snapshots = map[string]orderSnapshot{}
	}
	if old, ok := m.Snapshots[object]; !ok || s.Stamp.After(old.Stamp) {
		m.Snapshots[object] = s
	}
}

func (o Orders) update(ev *domain.Envelope, records Lookup, p domain.Provider, id string, change func(*orderMerge)) (Changes, error) {
	key := recordKey(domain.KindOrder, ev.Namespace(), id)
	return update(records, key, ev, func(s *storedOrder) (*Folded, *domain.RecordMeta) { return &s.Merge.Folded, &s.Record.RecordMeta },
		func(s *storedOrder) error {
			if s.Merge.Outcomes == nil {
				s.Merge.Outcomes = map[domain.OrderStatus]bool{}
			}
			change(&s.Merge)
			o.derive(&s.Record, &s.Merge, p, id)
			return nil
		})
}

// derive computes the order from its merge state. Status precedence:
// refunded or partially_refunded once anything is refunded, else paid,
// failed, expired, pending: a payment that succeeded after a failed
// attempt is paid, whatever order the events arrive in.
func (o Orders) derive(r *domain.OrderRecord, m *orderMerge, p domain.Provider, id string) {
	*r = domain.OrderRecord{RecordMeta: r.RecordMeta} // derived from the merge state alone
	r.Provider, r.ID = p, id
	var md map[string]string
	for _, kind := range snapshotPrecedence {
		s, ok := m.Snapshots[kind]
		if !ok {
			continue
		}
		if s.Amount != 0 {
			r.Amount = s.Amount
		}
		setIf(&r.Currency, s.Currency)
		setIf(&r.CustomerID, s.CustomerID)
		setIf(&r.SessionID, s.SessionID)
		setIf(&r.PaymentID, s.PaymentID)
		if len(s.Metadata) > 0 {
			md = mergeMaps(md, s.Metadata)
		}
	}
	r.Metadata = md
	r.Links = addLinks(nil, links(md, o.o.LinkKeys)...)
	signed := m.Folded.signed()
	outcomes := m.Outcomes
	if !signed {
		outcomes = mergeSets(m.Outcomes, m.UnsignedOutcomes)
	}
	r.AmountRefunded = m.Refunds.total(signed)
	switch {
	case r.AmountRefunded > 0 && (r.Amount == 0 || r.AmountRefunded >= r.Amount):
		r.Status = domain.OrderRefunded
	case r.AmountRefunded > 0:
		r.Status = domain.OrderPartiallyRefunded
	case outcomes[domain.OrderPaid]:
		r.Status = domain.OrderPaid
	case outcomes[domain.OrderFailed]:
		r.Status = domain.OrderFailed
	case outcomes[domain.OrderExpired]:
		r.Status = domain.OrderExpired
	default:
		r.Status = domain.OrderPending
	}
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// OrderAlias is an alias record: the order a session or charge id belongs
// to.
type OrderAlias struct {
	Kind    string `json:"kind"` // session or charge
	ID      string `json:"id"`
	OrderID string `json:"order_id"`
	domain.RecordMeta
}

type aliasMerge struct {
	Folded Folded `json:"folded"`
}

// OrderAliasKey is the store key of the alias record for a session or
// charge id.
func OrderAliasKey(namespace, kind, id string) string {
	return recordKey(domain.KindAlias, namespace, kind+":"+id)
}

func (o Orders) alias(ev *domain.Envelope, records Lookup, kind, id, orderID string) (Changes, error) {
	return update(records, OrderAliasKey(ev.Namespace(), kind, id), ev,
		func(s *Stored[OrderAlias, aliasMerge]) (*Folded, *domain.RecordMeta) {
			return &s.Merge.Folded, &s.Record.RecordMeta
		},
		func(s *Stored[OrderAlias, aliasMerge]) error {
			s.Record.Kind, s.Record.ID, s.Record.OrderID = kind, id, orderID
			return nil
		})
}
