package feed

import (
	"time"

	"github.com/billfold/billfold/domain"
)

// SubscriptionVersion is what the lifecycle feed needs of one committed
// version of a subscription record.
type SubscriptionVersion struct {
	Provider     string                `json:"provider"`
	ID           string                `json:"id"`
	CustomerID   string                `json:"customer_id"`
	State        domain.LifecycleState `json:"state"`
	Version      int                   `json:"version"`
	Verification domain.Verification   `json:"verification"`
	Transitions  []domain.Transition   `json:"transitions"`
	UpdatedAt    time.Time             `json:"updated_at"`
}

// LifecycleStep is the lifecycle feed's contract, as a pure function: the
// transition that committing next publishes, given prev, the subscription's
// previous committed version as the feed last published it (nil when next
// is its first appearance), and the event that made next.
//
// A first appearance publishes from "" to next's state, whatever event
// created it. After that a version publishes only when it changes the
// current state, from prev's state to next's: a late event that rewrites
// an earlier part of the history but not the current state publishes
// nothing. So the messages of one subscription chain (each from is the
// previous to) and a consumer that applies them in order ends in the
// record's state.
//
// At is the provider time of the causing event when its snapshot made the
// move into next's state, else the provider time of the latest transition
// into that state (a late event that only completed the history), or,
// when no transition led there (a subscription first seen through an
// invoice is incomplete without one), the record's provider time.
func LifecycleStep(prev *SubscriptionVersion, next *SubscriptionVersion, eventID string) (LifecycleChange, bool) {
	var from domain.LifecycleState
	if prev != nil {
		if prev.State == next.State {
			return LifecycleChange{}, false
		}
		from = prev.State
	}
	return LifecycleChange{From: from, To: next.State, At: transitionTime(next, eventID), Provider: next.Provider,
		Subscription: next.ID, Customer: next.CustomerID, EventID: eventID, Version: next.Version,
		Verification: next.Verification}, true
}

// transitionTime is when next entered its state, by the provider's clock.
func transitionTime(next *SubscriptionVersion, eventID string) time.Time {
	var latest time.Time
	for _, tr := range next.Transitions {
		if tr.To != next.State {
			continue
		}
		if tr.EventID == eventID {
			return tr.At
		}
		latest = tr.At
	}
	if latest.IsZero() {
		return next.UpdatedAt
	}
	return latest
}
