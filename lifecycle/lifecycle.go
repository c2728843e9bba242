// Package lifecycle is billfold's subscription state machine: it maps a
// provider's subscription status and flags to one lifecycle state, and says
// which states entitle the customer to access.
//
// It owns the precedence rules documented in docs/lifecycle.md and nothing
// else. It is pure: no I/O, no clock (a caller passes whatever the payload
// says), no knowledge of how events arrive. It imports only domain, and
// must never import reducers, ingest or projections.
package lifecycle

import (
	"strings"

	"github.com/billfold/billfold/domain"
)

// StripeSubscription is what the state of a Stripe subscription depends on.
type StripeSubscription struct {
	// Status is the subscription's status as Stripe sends it.
	Status string
	// Deleted is set by a customer.subscription.deleted event.
	Deleted bool
	// Ended is set when ended_at is.
	Ended bool
	// PauseCollection is set when pause_collection is non-empty.
	PauseCollection bool
	// CancelAtPeriodEnd and CancelAt (cancel_at set) schedule an end.
	CancelAtPeriodEnd bool
	CancelAt          bool
}

// Stripe maps a Stripe subscription to its lifecycle state. The first
// matching rule wins:
//
//  1. ended: status canceled or incomplete_expired, ended_at set, or deleted
//  2. incomplete: status incomplete
//  3. paused: status paused, or pause_collection set
//  4. past_due: status past_due or unpaid
//  5. canceling: cancel_at_period_end, or cancel_at set
//  6. trialing: status trialing
//  7. active: status active
//
// An unknown status (a newer API version) is reported as incomplete, the
// state that grants no access, rather than guessed.
func Stripe(s StripeSubscription) domain.LifecycleState {
	switch {
	case s.Status == "canceled" || s.Status == "incomplete_expired" || s.Ended || s.Deleted:
		return domain.StateEnded
	case s.Status == "incomplete":
		return domain.StateIncomplete
	case s.Status == "paused" || s.PauseCollection:
		return domain.StatePaused
	case s.Status == "past_due" || s.Status == "unpaid":
		return domain.StatePastDue
	case s.CancelAtPeriodEnd || s.CancelAt:
		return domain.StateCanceling
	case s.Status == "trialing":
		return domain.StateTrialing
	case s.Status == "active":
		return domain.StateActive
	}
	return domain.StateIncomplete
}

// BraintreeSubscription is what the state of a Braintree subscription
// depends on.
type BraintreeSubscription struct {
	// Status is the subject's status ("Active", "Past Due", "Pending",
	// "Canceled", "Expired"); empty when the notification carries none.
	Status string
	// Kind is the notification kind, used when Status is empty.
	Kind string
	// InTrial is set while the subscription is in its trial period: it has
	// a trial, no charge has been made yet and no billing cycle has come.
	InTrial bool
}

// Braintree maps a Braintree subscription to its lifecycle state: Active is
// active (trialing while in its trial), Past Due is past_due, Pending is
// incomplete, Canceled and Expired are ended. Without a status, the
// notification kind moves the state as its name says. ok is false when
// neither says anything billfold can map.
func Braintree(s BraintreeSubscription) (state domain.LifecycleState, ok bool) {
	switch strings.ToLower(s.Status) {
	case "active":
		if s.InTrial {
			return domain.StateTrialing, true
		}
		return domain.StateActive, true
	case "past due":
		return domain.StatePastDue, true
	case "pending":
		return domain.StateIncomplete, true
	case "canceled", "expired":
		return domain.StateEnded, true
	}
	switch s.Kind {
	case "subscription_went_active", "subscription_charged_successfully", "subscription_trial_ended",
		"subscription_billing_skipped": // a cycle the balance paid
		return domain.StateActive, true
	case "subscription_went_past_due", "subscription_charged_unsuccessfully":
		return domain.StatePastDue, true
	case "subscription_canceled", "subscription_expired":
		return domain.StateEnded, true
	}
	return "", false
}

// Entitled reports whether a subscription in state s grants access:
// trialing, active and canceling do; past_due does when pastDueEntitled
// (the default, because access usually continues while payment is
// retried); incomplete, paused and ended do not.
func Entitled(s domain.LifecycleState, pastDueEntitled bool) bool {
	switch s {
	case domain.StateTrialing, domain.StateActive, domain.StateCanceling:
		return true
	case domain.StatePastDue:
		return pastDueEntitled
	}
	return false
}
