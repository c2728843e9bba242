package reducers

import "github.com/billfold/billfold/domain"

// braintreeSubscriptionKinds are the Braintree notification kinds the
// subscriptions projection folds.
var braintreeSubscriptionKinds = map[string]bool{
	"subscription_went_active": true, "subscription_charged_successfully": true,
	"subscription_charged_unsuccessfully": true, "subscription_went_past_due": true,
	"subscription_trial_ended": true, "subscription_canceled": true,
	"subscription_expired": true, "subscription_billing_skipped": true,
}

func (s Subscriptions) applyBraintree(ev *domain.Envelope, records Lookup) (Changes, error) {
	return nil, domain.Errorf(domain.CodeReducerFailed, "not yet")
}
