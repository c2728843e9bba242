package reducers

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/stripewire"
	"github.com/billfold/billfold/lifecycle"
)

// maxSubscriptionFacts is how many snapshots a subscription keeps to derive
// its transitions from; older ones are summarised by Floor.
const maxSubscriptionFacts = 100

// subscriptionMerge is the merge state of a subscription: its snapshots
// (a last-writer-wins history ordered by orderFacts), the latest invoice
// and payment outcome (last-writer-wins registers), and a summary of the
// snapshots that fell out of the history.
type subscriptionMerge struct {
	Folded  Folded          `json:"folded"`
	Facts   []Fact          `json:"facts,omitempty"`
	Invoice *stampedInvoice `json:"invoice,omitempty"`
	Payment *stampedPayment `json:"payment,omitempty"`
	// Floor is the latest snapshot dropped from Facts, the state the
	// oldest kept snapshot moved from; FloorEnded is set when any dropped
	// snapshot had ended the subscription.
	Floor      *Fact `json:"floor,omitempty"`
	FloorEnded bool  `json:"floor_ended,omitempty"`
}

type stampedInvoice struct {
	Stamp   Stamp                 `json:"stamp"`
	Invoice domain.InvoiceSummary `json:"invoice"`
	// Customer is the invoice's customer: the subscription's, until a
	// snapshot of the subscription itself says so (an invoice event can
	// be the first one billfold sees of a subscription).
	Customer string `json:"customer,omitempty"`
}

type stampedPayment struct {
	Stamp   Stamp                 `json:"stamp"`
	Payment domain.PaymentOutcome `json:"payment"`
}

// subSnapshot is billfold's reading of one provider snapshot of a
// subscription (Fact.Data). Times are Unix seconds, zero when unset.
type subSnapshot struct {
	State             domain.LifecycleState `json:"state"`
	Status            string                `json:"status,omitempty"`
	CustomerID        string                `json:"customer_id,omitempty"`
	PlanID            string                `json:"plan_id,omitempty"`
	PriceID           string                `json:"price_id,omitempty"`
	Quantity          int64                 `json:"quantity,omitempty"`
	CancelAtPeriodEnd bool                  `json:"cancel_at_period_end,omitempty"`
	CancelAt          int64                 `json:"cancel_at,omitempty"`
	CurrentPeriodEnd  int64                 `json:"current_period_end,omitempty"`
	TrialEnd          int64                 `json:"trial_end,omitempty"`
	EndedAt           int64                 `json:"ended_at,omitempty"`
	NextBillingDate   int64                 `json:"next_billing_date,omitempty"`
	// Partial marks a snapshot that may lack what its notification did not
	// carry (Braintree): its zero times keep their earlier values.
	Partial bool `json:"partial,omitempty"`
}

type storedSubscription = Stored[domain.SubscriptionRecord, subscriptionMerge]

// Subscriptions is the subscriptions projection: Stripe subscriptions and
// invoices, Braintree subscription notifications, with lifecycle state.
type Subscriptions struct{ o Options }

// Name implements Projection.
func (Subscriptions) Name() string { return domain.ProjectionSubscriptions }

// subscriptionRanks order a subscription's events of one second when
// previous_attributes do not: a creation first, the informational
// trial_will_end before the changes it announces, a deletion last.
var subscriptionRanks = map[string]int{
	"customer.subscription.trial_will_end": 0,
	"customer.subscription.created":        1,
	"customer.subscription.updated":        2,
	"customer.subscription.paused":         2,
	"customer.subscription.resumed":        2,
	"customer.subscription.deleted":        3,
}

// invoiceRanks order an invoice's events of one second: a failure before
// a success, and invoice.paid (which Stripe sends with
// invoice.payment_succeeded) last.
var invoiceRanks = map[string]int{
	"invoice.payment_failed":    0,
	"invoice.payment_succeeded": 1,
	"invoice.paid":              2,
}

// Handles implements Projection.
func (Subscriptions) Handles(p domain.Provider, t string) bool {
	switch p {
	case domain.Stripe:
		_, sub := subscriptionRanks[t]
		_, inv := invoiceRanks[t]
		return sub || inv
	case domain.Braintree:
		_, ok := braintreeSubscriptionKinds[t]
		return ok
	}
	return false
}

// Apply implements Projection.
func (s Subscriptions) Apply(ev *domain.Envelope, records Lookup) (Changes, error) {
	if err := failSwitch(s.o, ev); err != nil {
		return nil, err
	}
	if ev.Provider == domain.Braintree {
		return s.applyBraintree(ev, records)
	}
	e, err := stripeFacts(ev)
	if err != nil {
		return nil, err
	}
	if _, ok := invoiceRanks[ev.EventType]; ok {
		return s.applyInvoice(ev, records, e)
	}
	f, id, err := stripeSubscriptionFact(ev, e)
	if err != nil {
		return nil, err
	}
	return s.update(ev, records, id, func(m *subscriptionMerge) { m.addFact(f) })
}

// stripeTrackedFields are the subscription fields whose values and
// previous_attributes order same-second snapshots.
var stripeTrackedFields = []string{
	"status", "cancel_at_period_end", "cancel_at", "canceled_at", "pause_collection",
	"ended_at", "trial_end", "current_period_end", "quantity",
}

func stripeSubscriptionFact(ev *domain.Envelope, e *stripewire.Event) (Fact, string, error) {
	sub := &e.Object
	if sub.ID == "" {
		return Fact{}, "", domain.Errorf(domain.CodeReducerDecode, "Stripe %s %s: subscription has no id", ev.EventType, ev.EventID)
	}
	fields, err := e.Fields(stripeTrackedFields)
	if err != nil {
		return Fact{}, "", domain.Wrap(domain.CodeReducerDecode, err, "Stripe "+ev.EventType+" "+ev.EventID)
	}
	f := Fact{Stamp: stampOf(ev, subscriptionRanks[ev.EventType]), Fields: fields}
	for _, k := range stripeTrackedFields {
		if v, ok := e.Previous[k]; ok {
			if f.Prev == nil {
				f.Prev = map[string]json.RawMessage{}
			}
			f.Prev[k] = v
		}
	}
	snap := subSnapshot{
		Status: sub.Status, CustomerID: string(sub.Customer), Quantity: sub.Quantity,
		CancelAtPeriodEnd: sub.CancelAtPeriodEnd, CancelAt: sub.CancelAt, CurrentPeriodEnd: sub.CurrentPeriodEnd,
		TrialEnd: sub.TrialEnd, EndedAt: sub.EndedAt,
	}
	if sub.Plan != nil {
		snap.PlanID = sub.Plan.ID
	}
	// Since API version 2025-03-31 the period lives on the items.
	for i, it := range sub.Items.Data {
		snap.CurrentPeriodEnd = max(snap.CurrentPeriodEnd, it.CurrentPeriodEnd)
		if i > 0 {
			continue
		}
		if it.Price != nil {
			snap.PriceID = it.Price.ID
		}
		if it.Plan != nil && snap.PlanID == "" {
			snap.PlanID = it.Plan.ID
		}
		if snap.Quantity == 0 {
			snap.Quantity = it.Quantity
		}
	}
	snap.State = lifecycle.Stripe(lifecycle.StripeSubscription{
		Status:            sub.Status,
		Deleted:           ev.EventType == "customer.subscription.deleted",
		Ended:             sub.EndedAt != 0,
		PauseCollection:   notEmptyJSON(sub.PauseCollection),
		CancelAtPeriodEnd: sub.CancelAtPeriodEnd,
		CancelAt:          sub.CancelAt != 0,
	})
	f.Data = mustJSON(snap)
	return f, sub.ID, nil
}

// notEmptyJSON reports whether v is a value other than null, {} or [].
func notEmptyJSON(v json.RawMessage) bool {
	switch string(compact(v)) {
	case "null", "{}", "[]", `""`, "false":
		return false
	}
	return true
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("reducers: " + err.Error()) // plain data types only
	}
	return b
}

func (s Subscriptions) applyInvoice(ev *domain.Envelope, records Lookup, e *stripewire.Event) (Changes, error) {
	in := &e.Object
	subID := in.InvoiceSubscription()
	if subID == "" {
		return nil, nil // a one-off invoice: no subscription to update
	}
	stamp := stampOf(ev, invoiceRanks[ev.EventType])
	inv := stampedInvoice{Stamp: stamp, Invoice: domain.InvoiceSummary{
		ID: in.ID, Status: in.Status, AmountDue: in.AmountDue, AmountPaid: in.AmountPaid, Currency: in.Currency,
		At: stamp.At, EventID: ev.EventID,
	}, Customer: string(in.Customer)}
	outcome := "succeeded"
	if ev.EventType == "invoice.payment_failed" {
		outcome = "failed"
	}
	pay := stampedPayment{Stamp: stamp, Payment: domain.PaymentOutcome{Outcome: outcome, InvoiceID: in.ID, At: stamp.At, EventID: ev.EventID}}
	return s.update(ev, records, subID, func(m *subscriptionMerge) {
		m.offerInvoice(inv)
		m.offerPayment(pay)
	})
}

func (m *subscriptionMerge) offerInvoice(in stampedInvoice) {
	if m.Invoice == nil || in.Stamp.After(m.Invoice.Stamp) {
		m.Invoice = &in
	}
}

func (m *subscriptionMerge) offerPayment(p stampedPayment) {
	if m.Payment == nil || p.Stamp.After(m.Payment.Stamp) {
		m.Payment = &p
	}
}

// addFact adds a snapshot, moving what falls out of the history into the
// floor.
func (m *subscriptionMerge) addFact(f Fact) {
	var dropped []Fact
	m.Facts, _, dropped = addFact(m.Facts, f, maxSubscriptionFacts)
	for _, d := range dropped {
		if snapOf(d).State == domain.StateEnded {
			m.FloorEnded = true
		}
		if m.Floor == nil || d.Stamp.After(m.Floor.Stamp) {
			m.Floor = &d
		}
	}
}

func snapOf(f Fact) subSnapshot {
	var s subSnapshot
	_ = json.Unmarshal(f.Data, &s) // written by this package
	return s
}

func (s Subscriptions) update(ev *domain.Envelope, records Lookup, id string, change func(*subscriptionMerge)) (Changes, error) {
	key := recordKey(domain.KindSubscription, ev.Namespace(), id)
	return update(records, key, ev, func(st *storedSubscription) (*Folded, *domain.RecordMeta) {
		return &st.Merge.Folded, &st.Record.RecordMeta
	},
		func(st *storedSubscription) error {
			change(&st.Merge)
			s.derive(&st.Record, &st.Merge, ev.Provider, id)
			return nil
		})
}

// derive computes the record from its merge state: fields from the latest
// snapshot, the state and transitions from the snapshots in the order they
// happened. Ended is final: a snapshot ordered after the end (a late
// update sharing the deletion's second) does not revive the subscription.
func (s Subscriptions) derive(r *domain.SubscriptionRecord, m *subscriptionMerge, p domain.Provider, id string) {
	*r = domain.SubscriptionRecord{RecordMeta: r.RecordMeta} // derived from the merge state alone
	r.Provider, r.ID = p, id
	r.State, r.Transitions = domain.StateIncomplete, []domain.Transition{}
	var prev domain.LifecycleState
	ended := m.FloorEnded
	var endedBy domain.Verification // the trust of the snapshot that ended it
	if m.Floor != nil {
		prev = snapOf(*m.Floor).State
	}
	if ended {
		prev = domain.StateEnded
	}
	var last subSnapshot
	for _, f := range orderFacts(m.Facts) {
		snap := snapOf(f)
		if snap.State == "" { // a notification that does not move the state
			snap.State = prev
		}
		if ended && compareTrust(f.Stamp.Unverified, endedBy) <= 0 {
			snap.State = domain.StateEnded // final, unless signed input overrules an unsigned end
		}
		if snap.State == domain.StateEnded && !ended {
			endedBy = f.Stamp.Unverified
		}
		ended = snap.State == domain.StateEnded
		if snap.State != prev && snap.State != "" {
			r.Transitions = append(r.Transitions, domain.Transition{From: prev, To: snap.State, At: f.Stamp.At, EventID: f.Stamp.EventID})
			prev = snap.State
		}
		last = mergeSnapshot(last, snap)
	}
	if len(r.Transitions) > domain.MaxTransitions {
		r.Transitions = slices.Clone(r.Transitions[len(r.Transitions)-domain.MaxTransitions:])
	}
	if prev != "" {
		r.State = prev
	}
	r.ProviderStatus, r.CustomerID, r.PlanID, r.PriceID, r.Quantity = last.Status, last.CustomerID, last.PlanID, last.PriceID, last.Quantity
	r.CancelAtPeriodEnd = last.CancelAtPeriodEnd
	r.CancelAt, r.CurrentPeriodEnd, r.TrialEnd, r.EndedAt = unixTime(last.CancelAt), unixTime(last.CurrentPeriodEnd), unixTime(last.TrialEnd), unixTime(last.EndedAt)
	r.NextBillingDate = unixTime(last.NextBillingDate)
	r.Entitled = lifecycle.Entitled(r.State, s.o.PastDueEntitled)
	r.LatestInvoice, r.LastPayment = nil, nil
	if m.Invoice != nil {
		inv := m.Invoice.Invoice
		r.LatestInvoice = &inv
		if r.CustomerID == "" {
			r.CustomerID = m.Invoice.Customer
		}
	}
	if m.Payment != nil {
		pay := m.Payment.Payment
		r.LastPayment = &pay
	}
}

// mergeSnapshot lays a later snapshot over an earlier one. Stripe snapshots
// are whole, so the later wins outright; a Braintree notification may lack
// fields its subject did not carry, which then keep their earlier values
// (strings always, times when the snapshot is Partial).
func mergeSnapshot(old, next subSnapshot) subSnapshot {
	keep := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	keep(&next.Status, old.Status)
	keep(&next.CustomerID, old.CustomerID)
	keep(&next.PlanID, old.PlanID)
	keep(&next.PriceID, old.PriceID)
	if next.Partial {
		for dst, v := range map[*int64]int64{&next.CurrentPeriodEnd: old.CurrentPeriodEnd, &next.TrialEnd: old.TrialEnd, &next.NextBillingDate: old.NextBillingDate} {
			if *dst == 0 {
				*dst = v
			}
		}
	}
	return next
}

func unixTime(sec int64) *time.Time {
	if sec == 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}
