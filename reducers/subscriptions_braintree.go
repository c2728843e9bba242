package reducers

import (
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify"
	"github.com/billfold/billfold/lifecycle"
)

// braintreeSubscriptionKinds are the Braintree notification kinds the
// subscriptions projection folds, with their rank among notifications of
// one second: activation first, the end last.
var braintreeSubscriptionKinds = map[string]int{
	"subscription_went_active":            1,
	"subscription_trial_ended":            1,
	"subscription_charged_successfully":   2,
	"subscription_charged_unsuccessfully": 2,
	"subscription_went_past_due":          2,
	"subscription_billing_skipped":        2,
	"subscription_canceled":               3,
	"subscription_expired":                3,
}

// applyBraintree folds a Braintree subscription notification into the
// same record shape as Stripe's: a snapshot of the subject, and for charge
// kinds the payment outcome.
func (s Subscriptions) applyBraintree(ev *domain.Envelope, records Lookup) (Changes, error) {
	n, err := btnotify.Decode(ev.Body)
	if err != nil {
		return nil, domain.Wrap(domain.CodeReducerDecode, err, "Braintree "+ev.EventID)
	}
	sub := n.Subscription
	if sub == nil || sub.ID == "" {
		return nil, domain.Errorf(domain.CodeReducerDecode, "Braintree %s %s: no subscription subject", ev.EventType, ev.EventID)
	}
	state, _ := lifecycle.Braintree(lifecycle.BraintreeSubscription{
		Status: sub.Status, Kind: n.Kind,
		InTrial: sub.TrialPeriod && len(sub.Transactions) == 0 && n.Kind != "subscription_trial_ended",
	})
	snap := subSnapshot{State: state, Status: sub.Status, PlanID: sub.PlanID, CurrentPeriodEnd: braintreeDate(sub.BillingPeriodEndDate)}
	for _, tx := range sub.Transactions {
		if tx.CustomerID != "" {
			snap.CustomerID = tx.CustomerID
			break
		}
	}
	stamp := stampOf(ev, braintreeSubscriptionKinds[n.Kind])
	f := Fact{Stamp: stamp, Data: mustJSON(snap)}
	var pay *stampedPayment
	switch n.Kind {
	case "subscription_charged_successfully", "subscription_charged_unsuccessfully":
		outcome := "succeeded"
		if n.Kind == "subscription_charged_unsuccessfully" {
			outcome = "failed"
		}
		pay = &stampedPayment{Stamp: stamp, Payment: domain.PaymentOutcome{Outcome: outcome, At: stamp.At, EventID: ev.EventID}}
	}
	return s.update(ev, records, sub.ID, func(m *subscriptionMerge) {
		m.addFact(f)
		if pay != nil {
			m.offerPayment(*pay)
		}
	})
}

// braintreeDate reads a Braintree date (YYYY-MM-DD) as Unix seconds, zero
// when absent or unreadable.
func braintreeDate(s string) int64 {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0
	}
	return t.Unix()
}
