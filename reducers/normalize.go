package reducers

import (
	"errors"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify"
	"github.com/billfold/billfold/domain/clerkwire"
	"github.com/billfold/billfold/domain/pactapaywire"
	"github.com/billfold/billfold/domain/stripewire"
)

// facts is a journal event's payload decoded once, for every projection
// that folds it: the provider's wire format is read in one place per
// provider (stripewire for Stripe, clerkwire for Clerk, btnotify for
// Braintree, pactapaywire for PactaPay), and the four reducers share the
// result through the envelope (domain.Envelope.Normalized). Events of the
// generic schemes (hmac endpoints, Standard Webhooks) have no facts: no
// reducer folds them.
type facts struct {
	stripe    *stripewire.Event
	clerk     *clerkwire.User
	braintree *btnotify.Notification
	pactapay  *pactapaywire.Payment
}

// normalize decodes ev's payload for the reducers. It is the only
// normalizer handed to Envelope.Normalized, so every memo holds *facts.
func normalize(ev *domain.Envelope) (any, error) {
	switch ev.Provider {
	case domain.Stripe:
		e, err := stripewire.Decode(ev.Body)
		if err != nil {
			return nil, domain.Wrap(domain.CodeReducerDecode, err, "Stripe "+ev.EventType+" "+ev.EventID)
		}
		return &facts{stripe: e}, nil
	case domain.Clerk:
		u, err := clerkwire.Decode(ev.Body)
		if err != nil {
			return nil, domain.Wrap(domain.CodeReducerDecode, err, "Clerk "+ev.EventType+" "+ev.EventID)
		}
		return &facts{clerk: u}, nil
	case domain.Braintree:
		n, err := btnotify.Decode(ev.Body)
		if err != nil {
			return nil, domain.Wrap(domain.CodeReducerDecode, err, "Braintree "+ev.EventID)
		}
		return &facts{braintree: &n}, nil
	case domain.PactaPay:
		p, err := pactapaywire.Decode(ev.Body)
		if errors.Is(err, pactapaywire.ErrNoPayment) {
			return nil, domain.Errorf(domain.CodeReducerDecode, "PactaPay event %s has no payment_id", ev.EventID)
		}
		if err != nil {
			return nil, domain.Wrap(domain.CodeReducerDecode, err, "PactaPay event "+ev.EventID)
		}
		return &facts{pactapay: p}, nil
	}
	return &facts{}, nil
}

// stripeFacts is ev's Stripe event, decoded once.
func stripeFacts(ev *domain.Envelope) (*stripewire.Event, error) {
	return factOf(ev, func(f *facts) *stripewire.Event { return f.stripe }, "Stripe event")
}

// clerkFacts is ev's Clerk user, decoded once.
func clerkFacts(ev *domain.Envelope) (*clerkwire.User, error) {
	return factOf(ev, func(f *facts) *clerkwire.User { return f.clerk }, "Clerk user event")
}

// braintreeFacts is ev's Braintree notification, decoded once.
func braintreeFacts(ev *domain.Envelope) (*btnotify.Notification, error) {
	return factOf(ev, func(f *facts) *btnotify.Notification { return f.braintree }, "Braintree notification")
}

// pactaFacts is ev's PactaPay payment, decoded once.
func pactaFacts(ev *domain.Envelope) (*pactapaywire.Payment, error) {
	return factOf(ev, func(f *facts) *pactapaywire.Payment { return f.pactapay }, "PactaPay payment event")
}

// factOf is the member of ev's facts that pick returns; an event of
// another provider (pick returns nil) is refused as not a what.
func factOf[T any](ev *domain.Envelope, pick func(*facts) *T, what string) (*T, error) {
	v, err := ev.Normalized(normalize)
	if err != nil {
		return nil, err
	}
	if x := pick(v.(*facts)); x != nil {
		return x, nil
	}
	return nil, domain.Errorf(domain.CodeReducerDecode, "%s %s %s is not a %s", ev.Provider, ev.EventType, ev.EventID, what)
}
