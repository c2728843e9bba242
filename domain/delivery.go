package domain

import (
	"slices"
	"time"
)

// Outcome is what billfold did with one HTTP delivery.
type Outcome string

// Delivery outcomes, as they appear in the delivery log, logs and the
// billfold_deliveries_total metric.
const (
	OutcomeAccepted      Outcome = "accepted"      // verified, new, journaled (200)
	OutcomeDuplicate     Outcome = "duplicate"     // verified, already journaled (200)
	OutcomeIgnored       Outcome = "ignored"       // verified, livemode differs from the endpoint's (200)
	OutcomeRejected      Outcome = "rejected"      // verification failed (400)
	OutcomeMalformed     Outcome = "malformed"     // verified but not a journalable event (400)
	OutcomeTooLarge      Outcome = "too_large"     // body over the limit (413)
	OutcomeUnavailable   Outcome = "unavailable"   // journal did not acknowledge (503)
	OutcomeMisconfigured Outcome = "misconfigured" // endpoint has no secret (500)
	OutcomeRateLimited   Outcome = "rate_limited"  // source over its rate limit (429)
)

// Outcomes lists every delivery outcome.
var Outcomes = []Outcome{OutcomeAccepted, OutcomeDuplicate, OutcomeIgnored, OutcomeRejected, OutcomeMalformed,
	OutcomeTooLarge, OutcomeUnavailable, OutcomeMisconfigured, OutcomeRateLimited}

// Valid reports whether o is one of Outcomes.
func (o Outcome) Valid() bool { return slices.Contains(Outcomes, o) }

// Delivery is one entry of the delivery log: one HTTP request to a webhook
// endpoint, whatever became of it. Fields that were not known for a
// delivery (an event id on a rejected one) are empty.
type Delivery struct {
	Endpoint  string     `json:"endpoint"`
	Provider  Provider   `json:"provider"`
	EventID   string     `json:"event_id,omitempty"`
	EventType string     `json:"event_type,omitempty"`
	Created   *time.Time `json:"created,omitempty"`
	RequestID string     `json:"request_id"`
	// ProviderRequestID is the provider's id of the request or message
	// (Envelope.ProviderRequestID), once the delivery verified.
	ProviderRequestID string       `json:"provider_request_id,omitempty"`
	SourceAddr        string       `json:"source_addr"`
	Verification      Verification `json:"verification"`
	ReasonCode        Code         `json:"reason_code,omitempty"`
	Reason            string       `json:"reason,omitempty"`
	Outcome           Outcome      `json:"outcome"`
	Status            int          `json:"status"`
	// Attempt counts the deliveries of this event id so far, this one
	// included, by receipt time; zero when the event id is unknown. It is
	// not stored: entries are written without reading the ones before
	// them, and the ledger numbers them when it reads an event's entries
	// (NumberAttempts).
	Attempt         int       `json:"attempt,omitempty"`
	JournalSequence uint64    `json:"journal_sequence,omitempty"`
	Received        time.Time `json:"received"`
	Completed       time.Time `json:"completed"`
}

// Namespace is the delivery's dedupe namespace (see EventNamespace).
func (d *Delivery) Namespace() string { return EventNamespace(d.Provider, d.Endpoint, d.Verification) }

// Subject is the delivery log subject for the delivery.
func (d *Delivery) Subject() string {
	if d.EventID == "" {
		return UnverifiedDeliverySubject(d.Endpoint)
	}
	return DeliverySubject(d.Namespace(), d.EventID)
}

// DeliveryFromJournal is the delivery log entry of the delivery that
// journaled env: the entry of every accepted delivery is derived from the
// journal, so that no acknowledged delivery can lose it. stored is when the
// journal stored the event, which is when the delivery was answered.
func DeliveryFromJournal(env *Envelope, stored time.Time) Delivery {
	created := env.Created
	return Delivery{
		Endpoint: env.Endpoint, Provider: env.Provider, EventID: env.EventID, EventType: env.EventType,
		Created: &created, RequestID: env.RequestID, ProviderRequestID: env.ProviderRequestID, SourceAddr: env.SourceAddr,
		Verification: env.Verification, ReasonCode: env.ReasonCode, Reason: env.Reason,
		Outcome: OutcomeAccepted, Status: 200, JournalSequence: env.Sequence,
		Received: env.Received, Completed: stored,
	}
}

// NumberAttempts orders one event's delivery log entries by receipt time
// and numbers their attempts from 1. Entries are written by several
// writers (the accepted one derived from the journal, the others directly),
// so the log's own order is not the order of receipt. An accepted entry
// written twice (a derivation replayed after a crash, past the delivery
// log's duplicate window) is kept once.
func NumberAttempts(ds []Delivery) []Delivery {
	out := ds[:0]
	seen := map[uint64]bool{}
	for _, d := range ds {
		if d.Outcome == OutcomeAccepted && d.JournalSequence != 0 {
			if seen[d.JournalSequence] {
				continue
			}
			seen[d.JournalSequence] = true
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b Delivery) int { return a.Received.Compare(b.Received) })
	for i := range out {
		out[i].Attempt = i + 1
	}
	return out
}
