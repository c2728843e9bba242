package projections_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/reducers"
)

// lifecycleHistory draws one subscription's events in provider order: a
// creation, then updates through random statuses and cancel flags, invoice
// failures and maybe a deletion, the clock often standing still.
func lifecycleHistory(t *rapid.T) []*domain.Envelope {
	at := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	var out []*domain.Envelope
	add := func(typ, status string, obj map[string]any) {
		s := samples.Stripe{EventID: fmt.Sprintf("evt_chain_%02d", len(out)), Type: typ, Created: at,
			CustomerID: "cus_chain", SubscriptionID: "sub_chain", Status: status, Object: obj}
		out = append(out, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: typ,
			Created: at, Verification: domain.VerifiedSignature, Body: s.Event()})
	}
	statuses := []string{"trialing", "active", "past_due", "unpaid", "incomplete", "canceled"}
	add("customer.subscription.created", rapid.SampledFrom([]string{"trialing", "active", "incomplete"}).Draw(t, "first"), nil)
	for range rapid.IntRange(0, 8).Draw(t, "steps") {
		at = at.Add(rapid.SampledFrom([]time.Duration{0, time.Hour, 24 * time.Hour}).Draw(t, "tick"))
		switch rapid.IntRange(0, 3).Draw(t, "step") {
		case 0, 1:
			add("customer.subscription.updated", rapid.SampledFrom(statuses).Draw(t, "status"),
				map[string]any{"cancel_at_period_end": rapid.Bool().Draw(t, "cape")})
		case 2:
			add("invoice.payment_failed", "open", nil)
		case 3:
			add("customer.subscription.deleted", "canceled", nil)
		}
	}
	return out
}

// fold applies events in order to a fresh store and returns every
// committed version of the subscription, with the event that made it.
func fold(t require.TestingT, events []*domain.Envelope) (versions []feed.SubscriptionVersion, causes []string) {
	subs := reducers.Subscriptions{}
	for _, p := range reducers.All(reducers.DefaultOptions()) {
		if p.Name() == domain.ProjectionSubscriptions {
			subs, _ = p.(reducers.Subscriptions)
		}
	}
	store := projections.MemoryRecords{}
	key := reducers.SubscriptionKey("stripe", "sub_chain")
	for _, ev := range events {
		changes, err := subs.Apply(ev, store)
		require.NoError(t, err)
		for k, v := range changes {
			store[k] = v
		}
		if v, ok := changes[key]; ok {
			rec, err := reducers.RecordOf(v)
			require.NoError(t, err)
			var sv feed.SubscriptionVersion
			require.NoError(t, json.Unmarshal(rec, &sv))
			versions, causes = append(versions, sv), append(causes, ev.EventID)
		}
	}
	return versions, causes
}

// The lifecycle feed's law (issue 17): for every order in which a
// subscription's events arrive, the transitions published from its
// committed versions chain (the first from "", each from the previous to),
// and a consumer applying them in order ends in the state of the record
// that folding the events in the provider's order gives.
func TestLifecycleFeedChainsForEveryArrivalOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		history := lifecycleHistory(t)
		model, _ := fold(t, history) // provider order: the record's state
		want := model[len(model)-1].State

		arrival := rapid.Permutation(history).Draw(t, "arrival")
		versions, causes := fold(t, arrival)
		published := publish(versions, causes)

		require.NotEmpty(t, published, "a subscription's first appearance is published")
		var consumer domain.LifecycleState
		for i, tr := range published {
			require.Equal(t, consumer, tr.From, "message %d moves from the state the previous one moved to", i)
			require.NotEqual(t, tr.From, tr.To, "message %d is a move", i)
			if i > 0 {
				require.Greater(t, tr.Version, published[i-1].Version, "versions rise")
			}
			consumer = tr.To
		}
		require.Equal(t, want, consumer, "the consumer ends in the record's state")
		require.Equal(t, want, versions[len(versions)-1].State)
	})
}

// The scenario of issue 17: past_due update, then the creation as
// trialing, then active with cancel_at_period_end, then active, by arrival;
// by Stripe's clock trialing → past_due → active → canceling. The feed says
// "" → past_due, then past_due → canceling, and nothing for the late events
// that only fill in the history.
func TestLifecycleStepOnALateHistory(t *testing.T) {
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id, typ, status string, at time.Time, cape bool) *domain.Envelope {
		s := samples.Stripe{EventID: id, Type: typ, Created: at, CustomerID: "cus_chain", SubscriptionID: "sub_chain", Status: status,
			Object: map[string]any{"cancel_at_period_end": cape}}
		return &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: id, EventType: typ, Created: at,
			Verification: domain.VerifiedSignature, Body: s.Event()}
	}
	arrival := []*domain.Envelope{
		ev("evt_late_pd", "customer.subscription.updated", "past_due", base.Add(24*time.Hour), false),
		ev("evt_late_new", "customer.subscription.created", "trialing", base, false),
		ev("evt_late_cape", "customer.subscription.updated", "active", base.Add(72*time.Hour), true),
		ev("evt_late_act", "customer.subscription.updated", "active", base.Add(48*time.Hour), false),
	}
	versions, causes := fold(t, arrival)
	got := publish(versions, causes)
	require.Len(t, got, 2, "%+v", got)
	assert.Equal(t, feed.LifecycleChange{From: "", To: domain.StatePastDue, At: base.Add(24 * time.Hour), Provider: "stripe",
		Subscription: "sub_chain", Customer: "cus_chain", EventID: "evt_late_pd", Version: 1, Verification: got[0].Verification}, got[0])
	assert.Equal(t, feed.LifecycleChange{From: domain.StatePastDue, To: domain.StateCanceling, At: base.Add(72 * time.Hour), Provider: "stripe",
		Subscription: "sub_chain", Customer: "cus_chain", EventID: "evt_late_cape", Version: 3, Verification: got[1].Verification}, got[1])
	assert.Equal(t, domain.StateCanceling, versions[len(versions)-1].State)
}

// publish runs LifecycleStep over committed versions as the relay does:
// each version against the one before it.
func publish(versions []feed.SubscriptionVersion, causes []string) []feed.LifecycleChange {
	var out []feed.LifecycleChange
	var prev *feed.SubscriptionVersion
	for i := range versions {
		if tr, ok := feed.LifecycleStep(prev, &versions[i], causes[i]); ok {
			out = append(out, tr)
		}
		prev = &versions[i]
	}
	return out
}
