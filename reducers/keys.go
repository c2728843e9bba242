package reducers

import "github.com/billfold/billfold/domain"

// KeyHinter is implemented by projections that can name, from an event
// alone, records their Apply will read, so that a projector reads the
// records of a whole batch in one request instead of one round trip each.
// A hint is only a read-ahead: a missing or wrong one costs a read, never
// a wrong record.
type KeyHinter interface {
	Keys(ev *domain.Envelope) []string
}

// Keys implements KeyHinter.
func (c Customers) Keys(ev *domain.Envelope) []string {
	switch ev.Provider {
	case domain.Clerk:
		if u, err := clerkFacts(ev); err == nil {
			return []string{CustomerKey(ev.Namespace(), u.ID)}
		}
	case domain.Stripe:
		if e, err := stripeFacts(ev); err == nil {
			id := e.Object.ID
			if e.Object.Kind == "checkout.session" {
				id = string(e.Object.Customer)
			}
			return nonEmptyKey(id, CustomerKey(ev.Namespace(), id))
		}
	}
	return nil
}

// Keys implements KeyHinter.
func (Subscriptions) Keys(ev *domain.Envelope) []string {
	if ev.Provider != domain.Stripe {
		return nil
	}
	e, err := stripeFacts(ev)
	if err != nil {
		return nil
	}
	id := e.Object.ID
	if e.Object.Kind == "invoice" {
		id = e.Object.InvoiceSubscription()
	}
	return nonEmptyKey(id, SubscriptionKey(ev.Namespace(), id))
}

// Keys implements KeyHinter.
func (Orders) Keys(ev *domain.Envelope) []string {
	if ev.Provider != domain.Stripe {
		return nil
	}
	p, err := decodeStripePayment(ev)
	if err != nil {
		return nil
	}
	return []string{OrderKey(ev.Namespace(), p.orderID())}
}

// Keys implements KeyHinter.
func (w Wallets) Keys(ev *domain.Envelope) []string {
	if !w.creditsFrom(ev) {
		return nil // Apply reads nothing for input that may not move credits
	}
	switch ev.Provider {
	case domain.Clerk:
		if u, err := clerkFacts(ev); err == nil {
			return []string{WalletKey(u.ID)}
		}
	case domain.Stripe:
		p, err := decodeStripePayment(ev)
		if err != nil {
			return nil
		}
		if isStripeCustomerEvent(ev.EventType) {
			return []string{identityKey(p.ID)}
		}
		if p.Kind == "checkout.session" && (p.Metadata["credits"] == "" || ev.EventType == "checkout.session.completed" && p.PaymentStatus != "paid") {
			return nil // not a paid top-up: Apply reads nothing
		}
		id := p.paymentID()
		if id == "" {
			id = p.sessionID()
		}
		keys := nonEmptyKey(id, recordKey(domain.KindTopUp, ev.Namespace(), id))
		if user := p.Metadata[w.o.UserIDKey]; user != "" {
			keys = append(keys, WalletKey(user))
		}
		return keys
	}
	return nil
}

func nonEmptyKey(id, key string) []string {
	if id == "" {
		return nil
	}
	return []string{key}
}
