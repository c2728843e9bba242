package reducers

import (
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/lifecycle"
)

// braintreeSubscriptionKinds are the Braintree notification kinds the
// subscriptions projection folds, with their stage in a billing cycle:
// activation, then the cycle's outcome, then the end.
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

// braintreeCycleKinds say that a billing cycle has come: the trial, if
// any, is over.
var braintreeCycleKinds = map[string]bool{
	"subscription_trial_ended":            true,
	"subscription_charged_successfully":   true,
	"subscription_charged_unsuccessfully": true,
	"subscription_billing_skipped":        true,
}

// braintreeEndRank puts the end of a subscription after everything else
// of its second.
const braintreeEndRank = 1 << 30

// braintreeRank orders a subscription's notifications of one second by
// what they mean. Braintree lists every transaction of the subscription in
// each notification, so a notification listing more transactions was sent
// later (a charge that succeeded after a failure in the same second lists
// the failed one too); between notifications listing as many, the stage of
// the cycle decides: activation, then the cycle's outcome. The end comes
// last whatever it lists.
func braintreeRank(kind string, transactions int) int {
	stage := braintreeSubscriptionKinds[kind]
	if stage == 3 {
		return braintreeEndRank
	}
	return min(transactions, braintreeEndRank/4-1)*4 + stage
}

// applyBraintree folds a Braintree subscription notification into the
// same record shape as Stripe's: a snapshot of the subject, and for charge
// kinds the payment outcome.
func (s Subscriptions) applyBraintree(ev *domain.Envelope, records Lookup) (Changes, error) {
	n, err := braintreeFacts(ev)
	if err != nil {
		return nil, err
	}
	sub := n.Subscription
	if sub == nil || sub.ID == "" {
		return nil, domain.Errorf(domain.CodeReducerDecode, "Braintree %s %s: no subscription subject", ev.EventType, ev.EventID)
	}
	firstBilling := braintreeDate(sub.FirstBillingDate)
	cycleCame := braintreeCycleKinds[n.Kind] || firstBilling != 0 && n.Timestamp.Unix() >= firstBilling
	state, _ := lifecycle.Braintree(lifecycle.BraintreeSubscription{
		Status: sub.Status, Kind: n.Kind,
		InTrial: sub.TrialPeriod && len(sub.Transactions) == 0 && !cycleCame,
	})
	snap := subSnapshot{
		State: state, Status: sub.Status, PlanID: sub.PlanID, Partial: true,
		CurrentPeriodEnd: braintreeDate(sub.BillingPeriodEndDate),
		NextBillingDate:  braintreeDate(sub.NextBillingDate),
	}
	if sub.TrialPeriod {
		snap.TrialEnd = firstBilling // the trial ends when the first cycle is billed
	}
	for _, tx := range sub.Transactions {
		if tx.CustomerID != "" {
			snap.CustomerID = tx.CustomerID
			break
		}
	}
	stamp := stampOf(ev, braintreeRank(n.Kind, len(sub.Transactions)))
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

// braintreeDate reads a Braintree date (YYYY-MM-DD) as Unix seconds at
// midnight UTC, zero when absent or unreadable.
func braintreeDate(s string) int64 {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0
	}
	return t.Unix()
}
