package reducers

import (
	"time"

	"github.com/billfold/billfold/domain"
)

// customerMerge is the merge state of a customer record: the provider
// snapshot with the latest stamp, a sticky deletion, and the links learned
// from other objects (checkout sessions), a set.
type customerMerge struct {
	Folded   Folded            `json:"folded"`
	Snapshot *customerSnapshot `json:"snapshot,omitempty"`
	Deleted  bool              `json:"deleted,omitempty"`
	Links    []domain.Link     `json:"links,omitempty"`
}

type customerSnapshot struct {
	Stamp     Stamp             `json:"stamp"`
	Email     string            `json:"email,omitempty"`
	Name      string            `json:"name,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	CreatedAt int64             `json:"created_at,omitempty"`
}

type storedCustomer = Stored[domain.CustomerRecord, customerMerge]

// Customers is the customers projection: Stripe customers, Clerk users,
// Braintree customers (from their subscriptions' transactions), and the
// links between them from metadata, custom fields and email.
type Customers struct{ o Options }

// Name implements Projection.
func (Customers) Name() string { return domain.ProjectionCustomers }

// customerRanks order a customer's events of one second: a creation before
// an update before a deletion.
var customerRanks = map[string]int{
	"customer.created": 0, "customer.updated": 1, "customer.deleted": 2,
	"user.created": 0, "user.updated": 1, "user.deleted": 2,
}

// Handles implements Projection.
func (Customers) Handles(p domain.Provider, t string) bool {
	switch p {
	case domain.Stripe:
		_, ok := customerRanks[t]
		return ok || t == "checkout.session.completed" || t == "checkout.session.async_payment_succeeded"
	case domain.Clerk:
		_, ok := customerRanks[t]
		return ok
	case domain.Braintree:
		_, ok := braintreeSubscriptionKinds[t] // their transactions name the customer
		return ok
	}
	return false
}

// Apply implements Projection.
func (c Customers) Apply(ev *domain.Envelope, records Lookup) (Changes, error) {
	if err := failSwitch(c.o, ev); err != nil {
		return nil, err
	}
	switch ev.Provider {
	case domain.Clerk:
		return c.applyClerk(ev, records)
	case domain.Braintree:
		return c.applyBraintree(ev, records)
	}
	e, err := stripeFacts(ev)
	if err != nil {
		return nil, err
	}
	if ev.EventType == "checkout.session.completed" || ev.EventType == "checkout.session.async_payment_succeeded" {
		s := &e.Object
		if s.Customer == "" {
			return nil, nil
		}
		return c.update(ev, records, string(s.Customer), func(m *customerMerge) {
			m.Links = addLinks(m.Links, links(s.Metadata, c.o.LinkKeys)...)
		})
	}
	cus := &e.Object
	if cus.ID == "" {
		return nil, domain.Errorf(domain.CodeReducerDecode, "Stripe %s %s: customer has no id", ev.EventType, ev.EventID)
	}
	snap := customerSnapshot{Stamp: stampOf(ev, customerRanks[ev.EventType]), Email: cus.Email, Name: cus.Name, Metadata: cus.Metadata, CreatedAt: cus.Created}
	return c.update(ev, records, cus.ID, func(m *customerMerge) {
		m.offer(snap)
		m.Deleted = m.Deleted || cus.Deleted || ev.EventType == "customer.deleted"
	})
}

func (c Customers) applyClerk(ev *domain.Envelope, records Lookup) (Changes, error) {
	u, err := clerkFacts(ev)
	if err != nil {
		return nil, err
	}
	deleted := u.Deleted || ev.EventType == "user.deleted"
	snap := customerSnapshot{Stamp: stampOf(ev, customerRanks[ev.EventType]), Email: u.PrimaryEmail(), CreatedAt: u.CreatedAt / 1000}
	snap.Name = joinName(u.FirstName, u.LastName)
	return c.update(ev, records, u.ID, func(m *customerMerge) {
		if !deleted { // a deletion carries no profile; it must not blank the last one
			m.offer(snap)
		}
		m.Deleted = m.Deleted || deleted
	})
}

func joinName(first, last string) string {
	switch {
	case first == "":
		return last
	case last == "":
		return first
	}
	return first + " " + last
}

// offer keeps the snapshot with the latest stamp.
func (m *customerMerge) offer(s customerSnapshot) {
	if m.Snapshot == nil || s.Stamp.After(m.Snapshot.Stamp) {
		m.Snapshot = &s
	}
}

func (c Customers) update(ev *domain.Envelope, records Lookup, id string, change func(*customerMerge)) (Changes, error) {
	key := recordKey(domain.KindCustomer, ev.Namespace(), id)
	return update(records, key, ev, func(s *storedCustomer) (*Folded, *domain.RecordMeta) { return &s.Merge.Folded, &s.Record.RecordMeta },
		func(s *storedCustomer) error {
			change(&s.Merge)
			c.derive(&s.Record, &s.Merge, ev.Provider, id)
			return nil
		})
}

// derive computes the record from its merge state.
func (c Customers) derive(r *domain.CustomerRecord, m *customerMerge, p domain.Provider, id string) {
	*r = domain.CustomerRecord{RecordMeta: r.RecordMeta} // derived from the merge state alone
	r.Provider, r.ID, r.Deleted = p, id, m.Deleted
	r.Links = m.Links
	if s := m.Snapshot; s != nil {
		r.Email, r.Name, r.Metadata = s.Email, s.Name, s.Metadata
		r.Links = addLinks(append([]domain.Link(nil), m.Links...), links(s.Metadata, c.o.LinkKeys)...)
		if p == domain.Braintree {
			r.Links = addLinks(r.Links, emailLink(s.Email)...)
		}
		if s.CreatedAt > 0 {
			t := time.Unix(s.CreatedAt, 0).UTC()
			r.CreatedAt = &t
		}
	}
}
