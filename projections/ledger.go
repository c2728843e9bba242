package projections

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// MaxLedgerDeliveries bounds the deliveries an event's ledger entry lists;
// the counts cover all of them.
const MaxLedgerDeliveries = 100

// Ledger answers what became of one provider event: its journal entry and
// every delivery of it.
type Ledger struct {
	js jetstream.JetStream
}

// NewLedger returns a Ledger reading through js.
func NewLedger(js jetstream.JetStream) *Ledger { return &Ledger{js: js} }

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
}

// Event returns the ledger entry of event id in namespace (the provider,
// or the endpoint for generic schemes). An event neither journaled nor
// delivered is BILLFOLD-NOT-FOUND.
func (l *Ledger) Event(ctx context.Context, namespace, id string) (EventEntry, error) {
	e := EventEntry{Namespace: namespace, EventID: id, Deliveries: DeliverySummary{Deliveries: []domain.Delivery{}}}
	journal, err := l.journalEntry(ctx, namespace, id)
	if err != nil {
		return e, err
	}
	e.Journal = journal
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

// deliveries reads every delivery log entry on subject with an ordered
// consumer, keeping the last MaxLedgerDeliveries.
func (l *Ledger) deliveries(ctx context.Context, subject string) (DeliverySummary, error) {
	sum := DeliverySummary{Deliveries: []domain.Delivery{}}
	c, err := l.js.OrderedConsumer(ctx, domain.DeliveryStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, InactiveThreshold: 5 * time.Second})
	if err != nil {
		return sum, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log")
	}
	info, err := c.Info(ctx)
	if err != nil {
		return sum, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log")
	}
	for pending := info.NumPending; pending > 0; {
		batch, err := c.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return sum, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log")
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var d domain.Delivery
			if json.Unmarshal(m.Data(), &d) != nil {
				continue
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
		}
		if err := batch.Error(); err != nil {
			return sum, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log")
		}
		if n == 0 {
			break
		}
		pending -= uint64(n)
	}
	return sum, nil
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
