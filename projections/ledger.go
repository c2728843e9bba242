package projections

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

// MaxLedgerDeliveries bounds the deliveries an event's ledger entry lists;
// the counts cover all of them.
const MaxLedgerDeliveries = 100

// Ledger answers what became of one provider event: its journal entry,
// every delivery of it, and its status in each projection.
type Ledger struct {
	js          jetstream.JetStream
	projections []reducers.Projection
}

// NewLedger returns a Ledger reading through js, reporting the status of
// events in projections.
func NewLedger(js jetstream.JetStream, projections []reducers.Projection) *Ledger {
	return &Ledger{js: js, projections: projections}
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
	Status      string       `json:"status"`
	DeadLetters []DeadLetter `json:"dead_letters,omitempty"`
}

// JournalEntry is an event as the journal holds it, without its body.
type JournalEntry struct {
	Sequence     uint64              `json:"sequence"`
	Provider     domain.Provider     `json:"provider"`
	Endpoint     string              `json:"endpoint"`
	EventID      string              `json:"event_id"`
	EventType    string              `json:"event_type"`
	Created      time.Time           `json:"created"`
	Received     time.Time           `json:"received"`
	RequestID    string              `json:"request_id"`
	Livemode     *bool               `json:"livemode,omitempty"`
	Verification domain.Verification `json:"verification"`
	ObjectKind   string              `json:"object_kind,omitempty"`
	ObjectID     string              `json:"object_id,omitempty"`
}

// DeliverySummary counts an event's deliveries.
type DeliverySummary struct {
	Count       int               `json:"count"`
	Duplicates  int               `json:"duplicates"`
	LastOutcome domain.Outcome    `json:"last_outcome,omitempty"`
	Deliveries  []domain.Delivery `json:"deliveries"`
}

// EventEntry is the ledger's answer for one event. Journal is nil when the
// event was delivered but never journaled (every delivery rejected or
// unavailable).
type EventEntry struct {
	Namespace  string          `json:"provider"`
	EventID    string          `json:"event_id"`
	Journal    *JournalEntry   `json:"journal"`
	Deliveries DeliverySummary `json:"deliveries"`
	// Projections is the event's status per projection; empty when it was
	// never journaled.
	Projections map[string]ProjectionStatus `json:"projections"`
}

// Event returns the ledger entry of event id in namespace (the provider,
// or the endpoint for generic schemes). An event neither journaled nor
// delivered is BILLFOLD-NOT-FOUND.
func (l *Ledger) Event(ctx context.Context, namespace, id string) (EventEntry, error) {
	e := EventEntry{Namespace: namespace, EventID: id, Deliveries: DeliverySummary{Deliveries: []domain.Delivery{}},
		Projections: map[string]ProjectionStatus{}}
	journal, err := l.journalEntry(ctx, namespace, id)
	if err != nil {
		return e, err
	}
	e.Journal = journal
	if journal != nil {
		if e.Projections, err = l.statuses(ctx, journal); err != nil {
			return e, err
		}
	}
	if e.Deliveries, err = l.deliveries(ctx, domain.DeliverySubject(namespace, id)); err != nil {
		return e, err
	}
	if e.Journal == nil && e.Deliveries.Count == 0 {
		return e, domain.Errorf(domain.CodeNotFound, "no event %s from %s", id, namespace)
	}
	return e, nil
}

func (l *Ledger) journalEntry(ctx context.Context, namespace, id string) (*JournalEntry, error) {
	s, err := l.js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "journal stream")
	}
	m, err := s.GetLastMsgForSubject(ctx, domain.JournalSubject(namespace, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "journal read")
	}
	env, err := domain.DecodeEnvelope(m.Header, m.Data, m.Sequence)
	if err != nil {
		return nil, err
	}
	return &JournalEntry{
		Sequence: env.Sequence, Provider: env.Provider, Endpoint: env.Endpoint,
		EventID: env.EventID, EventType: env.EventType, Created: env.Created, Received: env.Received,
		RequestID: env.RequestID, Livemode: env.Livemode, Verification: env.Verification,
		ObjectKind: env.ObjectKind, ObjectID: env.ObjectID,
	}, nil
}

// statuses says, per projection, what became of a journaled event. An event
// is processed once its projector acknowledged it: at or below the
// consumer's acknowledgement floor.
func (l *Ledger) statuses(ctx context.Context, j *JournalEntry) (map[string]ProjectionStatus, error) {
	out := map[string]ProjectionStatus{}
	for _, p := range l.projections {
		name := p.Name()
		if !p.Handles(j.Provider, j.EventType) {
			out[name] = ProjectionStatus{Status: StatusSkipped}
			continue
		}
		var dls []DeadLetter
		err := eachMessage(ctx, l.js, domain.DeadLetterStream, domain.DeadLetterSubject(name, domain.Namespace(j.Provider, j.Endpoint), j.EventID), func(data []byte) {
			var dl DeadLetter
			if json.Unmarshal(data, &dl) == nil {
				dls = append(dls, dl)
			}
		})
		if err != nil {
			return nil, err
		}
		st := ProjectionStatus{Status: StatusPending, DeadLetters: dls}
		if c, err := l.js.Consumer(ctx, domain.JournalStream, domain.ProjectorDurable(name)); err == nil {
			if info, err := c.Info(ctx); err == nil && info.AckFloor.Stream >= j.Sequence {
				st.Status = StatusProcessed
			}
		}
		if len(dls) > 0 && dls[len(dls)-1].JournalSequence == j.Sequence {
			st.Status = StatusFailed
		}
		out[name] = st
	}
	return out, nil
}

// deliveries reads every delivery log entry on subject, keeping the last
// MaxLedgerDeliveries.
func (l *Ledger) deliveries(ctx context.Context, subject string) (DeliverySummary, error) {
	sum := DeliverySummary{Deliveries: []domain.Delivery{}}
	err := eachMessage(ctx, l.js, domain.DeliveryStream, subject, func(data []byte) {
		var d domain.Delivery
		if json.Unmarshal(data, &d) != nil {
			return
		}
		sum.Count++
		if d.Outcome == domain.OutcomeDuplicate {
			sum.Duplicates++
		}
		sum.LastOutcome = d.Outcome
		sum.Deliveries = append(sum.Deliveries, d)
		if len(sum.Deliveries) > MaxLedgerDeliveries {
			sum.Deliveries = sum.Deliveries[1:]
		}
	})
	return sum, err
}

// eachMessage calls fn with the data of every message on subject in
// stream, oldest first, through an ordered consumer.
func eachMessage(ctx context.Context, js jetstream.JetStream, stream, subject string, fn func(data []byte)) error {
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, InactiveThreshold: 5 * time.Second})
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
	}
	for pending := info.NumPending; pending > 0; {
		batch, err := c.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
		}
		n := uint64(0)
		for m := range batch.Messages() {
			n++
			fn(m.Data())
		}
		if err := batch.Error(); err != nil {
			return domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
		}
		if n == 0 {
			break
		}
		pending -= min(n, pending)
	}
	return nil
}

// ServeEvent is the handler of GET /v1/events/{provider}/{event_id}.
func (l *Ledger) ServeEvent(w http.ResponseWriter, r *http.Request) {
	e, err := l.Event(r.Context(), r.PathValue("provider"), r.PathValue("event_id"))
	if err != nil {
		WriteError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, e)
}
