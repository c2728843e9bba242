package domain

// LifecycleState is billfold's own subscription state, derived from the
// provider's status and flags by package lifecycle. docs/lifecycle.md is the
// glossary of what each state means for access and dunning.
type LifecycleState string

// The lifecycle states.
const (
	StateIncomplete LifecycleState = "incomplete"
	StateTrialing   LifecycleState = "trialing"
	StateActive     LifecycleState = "active"
	StateCanceling  LifecycleState = "canceling"
	StatePaused     LifecycleState = "paused"
	StatePastDue    LifecycleState = "past_due"
	StateEnded      LifecycleState = "ended"
)

// LifecycleStates lists every state in a stable order (the order of the
// glossary), for counts and validation.
var LifecycleStates = []LifecycleState{
	StateIncomplete, StateTrialing, StateActive, StateCanceling, StatePaused, StatePastDue, StateEnded,
}

// Valid reports whether s is one of the lifecycle states.
func (s LifecycleState) Valid() bool {
	for _, v := range LifecycleStates {
		if s == v {
			return true
		}
	}
	return false
}
