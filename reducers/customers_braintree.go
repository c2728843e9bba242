package reducers

import (
	"strings"

	"github.com/billfold/billfold/domain"
)

// LinkEmail is the link kind of a customer's email address, lower case:
// how a Braintree customer is tied to the Clerk user with the same primary
// email (the query side gives every Clerk user that link to its own
// address).
const LinkEmail = "email"

// applyBraintree folds a Braintree subscription notification into the
// records of the customers its transactions name: the customer details
// the newest transaction of each carries (email, name) and the custom
// fields (Braintree's metadata), which give the links as Stripe metadata
// does, by the configured link keys (user_id, ...), plus the email.
func (c Customers) applyBraintree(ev *domain.Envelope, records Lookup) (Changes, error) {
	n, err := braintreeFacts(ev)
	if err != nil {
		return nil, err
	}
	if n.Subscription == nil {
		return nil, nil
	}
	var changes Changes
	seen := map[string]bool{}
	// Braintree lists a subscription's transactions newest first: the
	// first one of a customer says how the customer stands now.
	for _, tx := range n.Subscription.Transactions {
		if tx.CustomerID == "" || seen[tx.CustomerID] {
			continue
		}
		seen[tx.CustomerID] = true
		snap := customerSnapshot{
			Stamp: stampOf(ev, braintreeRank(n.Kind, len(n.Subscription.Transactions))),
			Email: tx.CustomerEmail, Name: joinName(tx.CustomerFirstName, tx.CustomerLastName), Metadata: tx.CustomFields,
		}
		ch, err := c.update(ev, records, tx.CustomerID, func(m *customerMerge) { m.offer(snap) })
		if err != nil {
			return nil, err
		}
		changes = merge(changes, ch)
	}
	return changes, nil
}

// emailLink is the link of an email address, nil for none.
func emailLink(email string) []domain.Link {
	if email == "" {
		return nil
	}
	return []domain.Link{{Kind: LinkEmail, Value: strings.ToLower(email)}}
}
