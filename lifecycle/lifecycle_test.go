package lifecycle_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/lifecycle"
)

// The precedence table of docs/lifecycle.md, rule by rule, with the
// conflicts each rule must win.
func TestStripePrecedence(t *testing.T) {
	type sub = lifecycle.StripeSubscription
	cases := []struct {
		name string
		in   sub
		want domain.LifecycleState
	}{
		{"canceled", sub{Status: "canceled"}, domain.StateEnded},
		{"incomplete_expired", sub{Status: "incomplete_expired"}, domain.StateEnded},
		{"ended_at set while status still active", sub{Status: "active", Ended: true}, domain.StateEnded},
		{"deleted event beats everything", sub{Status: "past_due", Deleted: true, CancelAtPeriodEnd: true}, domain.StateEnded},
		{"incomplete", sub{Status: "incomplete"}, domain.StateIncomplete},
		{"incomplete beats pause and cancel", sub{Status: "incomplete", PauseCollection: true, CancelAt: true}, domain.StateIncomplete},
		{"paused status", sub{Status: "paused"}, domain.StatePaused},
		{"pause_collection on an active subscription", sub{Status: "active", PauseCollection: true}, domain.StatePaused},
		{"paused beats past_due", sub{Status: "past_due", PauseCollection: true}, domain.StatePaused},
		{"past_due", sub{Status: "past_due"}, domain.StatePastDue},
		{"unpaid", sub{Status: "unpaid"}, domain.StatePastDue},
		{"past_due beats cancel_at_period_end", sub{Status: "past_due", CancelAtPeriodEnd: true}, domain.StatePastDue},
		{"cancel_at_period_end", sub{Status: "active", CancelAtPeriodEnd: true}, domain.StateCanceling},
		{"cancel_at", sub{Status: "active", CancelAt: true}, domain.StateCanceling},
		{"canceling beats trialing", sub{Status: "trialing", CancelAtPeriodEnd: true}, domain.StateCanceling},
		{"trialing", sub{Status: "trialing"}, domain.StateTrialing},
		{"active", sub{Status: "active"}, domain.StateActive},
		{"unknown status grants nothing", sub{Status: "something_new"}, domain.StateIncomplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, lifecycle.Stripe(c.in))
		})
	}
}

func TestBraintreeMapping(t *testing.T) {
	type sub = lifecycle.BraintreeSubscription
	cases := []struct {
		in   sub
		want domain.LifecycleState
		ok   bool
	}{
		{sub{Status: "Active"}, domain.StateActive, true},
		{sub{Status: "Active", InTrial: true}, domain.StateTrialing, true},
		{sub{Status: "Past Due"}, domain.StatePastDue, true},
		{sub{Status: "Pending"}, domain.StateIncomplete, true},
		{sub{Status: "Canceled"}, domain.StateEnded, true},
		{sub{Status: "Expired"}, domain.StateEnded, true},
		{sub{Status: "Canceled", Kind: "subscription_went_active"}, domain.StateEnded, true},
		{sub{Kind: "subscription_went_active"}, domain.StateActive, true},
		{sub{Kind: "subscription_went_past_due"}, domain.StatePastDue, true},
		{sub{Kind: "subscription_charged_unsuccessfully"}, domain.StatePastDue, true},
		{sub{Kind: "subscription_canceled"}, domain.StateEnded, true},
		{sub{Kind: "subscription_expired"}, domain.StateEnded, true},
		{sub{Kind: "subscription_billing_skipped"}, domain.StateActive, true},
		{sub{Kind: "subscription_dispute_opened"}, "", false},
	}
	for _, c := range cases {
		got, ok := lifecycle.Braintree(c.in)
		assert.Equal(t, c.want, got, "%+v", c.in)
		assert.Equal(t, c.ok, ok, "%+v", c.in)
	}
}

func TestEntitlement(t *testing.T) {
	want := map[domain.LifecycleState]bool{
		domain.StateIncomplete: false, domain.StateTrialing: true, domain.StateActive: true,
		domain.StateCanceling: true, domain.StatePaused: false, domain.StatePastDue: true, domain.StateEnded: false,
	}
	for _, s := range domain.LifecycleStates {
		assert.Equal(t, want[s], lifecycle.Entitled(s, true), s)
	}
	assert.False(t, lifecycle.Entitled(domain.StatePastDue, false), "the switch turns past_due access off")
}
