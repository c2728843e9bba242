package ledger

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/httpapi"
)

// MaxLedgerDeliveries bounds the deliveries an event's ledger entry lists;
// the counts cover all of them.
const MaxLedgerDeliveries = 100

// Ledger answers what became of one provider event: its journal entry,
// every delivery of it, and its status in each projection.
type Ledger struct {
	js         jetstream.JetStream
	engine     *projections.Engine
	deliveries *DeliveryLog
	redact     endpointRedaction
}

// New returns a Ledger reporting the status of events in engine's
// projections.
func New(engine *projections.Engine) *Ledger {
	return &Ledger{js: engine.JetStream(), engine: engine, deliveries: NewDeliveryLog(engine.JetStream())}
}

// Projection statuses of an event in the ledger.
const (
	StatusProcessed = "processed" // folded into the projection
	StatusFailed    = "failed"    // in the dead letters
	StatusSkipped   = "skipped"   // the projection has no reducer for its type
	StatusPending   = "pending"   // not folded yet
)

// ProjectionStatus is an event's status in one projection.
type ProjectionStatus struct {
	Status string `json:"status"`
	// DeadLetter is the event's dead letter in the projection, with its
	// requeues, if it ever failed there.
	DeadLetter *deadletter.Letter `json:"dead_letter,omitempty"`
	// ProcessedAt is when the projection stored the first record write
	// the event's fold made (processedat.go); absent when the fold
	// changed no record or the write is no longer in the record's history.
	ProcessedAt *time.Time `json:"processed_at,omitempty"`
}

// EventEntry is the ledger's answer for one event. Journal is nil when the
// event was delivered but never journaled (every delivery rejected or
// unavailable).
type EventEntry struct {
	Namespace  string                    `json:"provider"`
	EventID    string                    `json:"event_id"`
	Journal    *projections.JournalEntry `json:"journal"`
	Deliveries DeliverySummary           `json:"deliveries"`
	// Projections is the event's status per projection; empty when it was
	// never journaled.
	Projections map[string]ProjectionStatus `json:"projections"`
}

// Event returns the ledger entry of event id in namespace (the provider,
// or the endpoint for generic schemes). An event neither journaled nor
// delivered is BILLFOLD-NOT-FOUND.
// An unsigned endpoint is shown, and may be asked for, by its label only
// (RedactEndpoints).
func (l *Ledger) Event(ctx context.Context, namespace, id string) (EventEntry, error) {
	e, err := l.event(ctx, l.redact.resolve(namespace), id)
	return l.redact.entry(e), err
}

func (l *Ledger) event(ctx context.Context, namespace, id string) (EventEntry, error) {
	e := EventEntry{Namespace: namespace, EventID: id, Deliveries: DeliverySummary{Deliveries: []domain.Delivery{}},
		Projections: map[string]ProjectionStatus{}}
	env, err := projections.LookupJournalEvent(ctx, l.js, namespace, id)
	if err != nil {
		return e, err
	}
	if env != nil {
		journal := projections.NewJournalEntry(env)
		e.Journal = &journal
		if e.Projections, err = l.statuses(ctx, env); err != nil {
			return e, err
		}
	}
	if e.Deliveries, err = l.deliveries.OfEvent(ctx, namespace, id); err != nil {
		return e, err
	}
	if e.Journal == nil && e.Deliveries.Count == 0 {
		return e, domain.Errorf(domain.CodeNotFound, "no event %s from %s", id, namespace)
	}
	return e, nil
}

// JournalEvent reads an event from the journal, its namespace as the
// ledger shows it (an unsigned endpoint by its label); nil when it was
// never journaled. Its Body is the verified payload only: signature
// headers and secrets are never journaled.
func (l *Ledger) JournalEvent(ctx context.Context, namespace, id string) (*domain.Envelope, error) {
	return projections.LookupJournalEvent(ctx, l.js, l.redact.resolve(namespace), id)
}

// statuses says, per projection, what became of a journaled event. An event
// is processed once the current generation's projector acknowledged it (at
// or below the consumer's acknowledgement floor) and it has no open dead
// letter; when its fold wrote a record, processed_at says when.
func (l *Ledger) statuses(ctx context.Context, j *domain.Envelope) (map[string]ProjectionStatus, error) {
	out := map[string]ProjectionStatus{}
	for _, name := range l.engine.Projections() {
		if !l.engine.Projection(name).Handles(j.Provider, j.EventType) {
			out[name] = ProjectionStatus{Status: StatusSkipped}
			continue
		}
		dl, _, err := l.engine.DeadLetterStore().Get(ctx, domain.DeadLetterSubject(name, domain.EventNamespace(j.Provider, j.Endpoint, j.Verification), j.EventID))
		if err != nil {
			return nil, err
		}
		st := ProjectionStatus{Status: StatusPending, DeadLetter: dl}
		if floor, err := l.engine.Acked(ctx, name); err == nil && floor >= j.Sequence {
			st.Status = StatusProcessed
			st.ProcessedAt = l.processedAt(ctx, name, j)
		}
		if dl != nil && dl.Status == deadletter.Open {
			st.Status = StatusFailed
		}
		out[name] = st
	}
	return out, nil
}

// ServeEvent is the handler of GET /v1/events/{provider}/{event_id}.
func (l *Ledger) ServeEvent(w http.ResponseWriter, r *http.Request) {
	e, err := l.Event(r.Context(), r.PathValue("provider"), r.PathValue("event_id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, e)
}

// EventFilter selects events for the ledger's list.
type EventFilter struct {
	// Status is "failed" (an open dead letter in some projection) or a
	// delivery outcome (accepted, duplicate, rejected, ...); empty: every
	// delivery.
	Status string
	// Provider is a provider or endpoint namespace; empty: all.
	Provider string
	Since    time.Time
	Limit    int
}

// EventSummary is one line of the ledger's list.
type EventSummary struct {
	Provider  string      `json:"provider"`
	EventID   string      `json:"event_id,omitempty"`
	EventType string      `json:"event_type,omitempty"`
	Status    string      `json:"status"`
	Code      domain.Code `json:"code,omitempty"`
	// Projection is where a failed event failed.
	Projection string    `json:"projection,omitempty"`
	At         time.Time `json:"at"`
	Attempt    int       `json:"attempt,omitempty"`
	// ProviderRequestID is the provider's request or message id, when the
	// delivery verified and the provider gave one.
	ProviderRequestID string `json:"provider_request_id,omitempty"`
	// RetryState is a failed event's: retrying or exhausted.
	RetryState string `json:"retry_state,omitempty"`
}

// List returns the events f selects, newest first, at most f.Limit (100
// when zero): failed events from the dead letters, other outcomes from the
// delivery log (which keeps deliveries for its retention only).
func (l *Ledger) List(ctx context.Context, f EventFilter) ([]EventSummary, error) {
	if f.Limit <= 0 {
		f.Limit = httpapi.DefaultListLimit
	}
	if f.Limit > httpapi.MaxListLimit {
		return nil, domain.Errorf(domain.CodeBadRequest, "limit %d: want 1 to %d", f.Limit, httpapi.MaxListLimit)
	}
	f.Provider = l.redact.resolve(f.Provider)
	out := []EventSummary{}
	if f.Status == StatusFailed {
		dls, err := l.engine.DeadLetters(ctx, deadletter.Filter{Provider: f.Provider, Since: f.Since})
		if err != nil {
			return nil, err
		}
		for _, dl := range dls {
			out = append(out, EventSummary{Provider: dl.Namespace, EventID: dl.EventID, EventType: dl.EventType, Status: StatusFailed,
				Code: dl.Code, Projection: dl.Projection, At: dl.FailedAt, Attempt: dl.Attempts,
				ProviderRequestID: dl.ProviderRequestID, RetryState: dl.RetryState})
		}
	} else {
		if f.Status != "" && !domain.Outcome(f.Status).Valid() {
			return nil, domain.Errorf(domain.CodeBadRequest, "status %q: want failed or a delivery outcome", f.Status)
		}
		err := l.deliveries.Since(ctx, f.Since, func(d *domain.Delivery) {
			if (f.Status == "" || string(d.Outcome) == f.Status) && (f.Provider == "" || d.Namespace() == f.Provider || string(d.Provider) == f.Provider) {
				out = append(out, EventSummary{Provider: d.Namespace(), EventID: d.EventID, EventType: d.EventType, Status: string(d.Outcome),
					Code: d.ReasonCode, At: d.Received, Attempt: d.Attempt, ProviderRequestID: d.ProviderRequestID})
			}
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Reverse(out)
	for i := range out {
		out[i].Provider = l.redact.show(out[i].Provider)
	}
	return out[:min(len(out), f.Limit)], nil
}
