package projections

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
)

// MemoryRecords is a reducers.Lookup over a map.
type MemoryRecords map[string][]byte

// Get implements reducers.Lookup.
func (m MemoryRecords) Get(key string) ([]byte, error) { return m[key], nil }

// JournalHead is the journal's last sequence.
func JournalHead(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	return jsio.LastSequence(ctx, js, domain.JournalStream, domain.CodeJournalUnavailable)
}

// LookupJournalEvent reads the journal entry of event id in namespace (the
// provider, or the endpoint for generic schemes) with a direct get; nil
// when it was never journaled.
func LookupJournalEvent(ctx context.Context, js jetstream.JetStream, namespace, id string) (*domain.Envelope, error) {
	s, err := js.Stream(ctx, domain.JournalStream)
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
	return decodeJournalMsg(m)
}

// journalEvent reads the journal event at seq.
func (e *Engine) journalEvent(ctx context.Context, seq uint64) (*domain.Envelope, error) {
	s, err := e.js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "journal")
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, domain.Errorf(domain.CodeNotFound, "no journal event at sequence %d", seq)
	}
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "journal read")
	}
	return decodeJournalMsg(m)
}

// decodeJournalMsg is the envelope a journal message holds.
func decodeJournalMsg(m *jetstream.RawStreamMsg) (*domain.Envelope, error) {
	env, err := domain.DecodeEnvelope(m.Header, m.Data, m.Sequence)
	if err != nil {
		return nil, err
	}
	return &env, nil
}

// EachJournalEvent calls fn with every journal event in sequence order, up
// to the journal's last sequence when the call starts.
func EachJournalEvent(ctx context.Context, js jetstream.JetStream, fn func(*domain.Envelope) error) error {
	return EachJournalEventUpTo(ctx, js, 0, fn)
}

// EachJournalEventUpTo calls fn with every journal event in sequence order, up
// to last (0: the journal's last sequence when the call starts).
func EachJournalEventUpTo(ctx context.Context, js jetstream.JetStream, last uint64, fn func(*domain.Envelope) error) error {
	stream, err := js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal")
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal")
	}
	if last == 0 || last > info.State.LastSeq {
		last = info.State.LastSeq
	}
	if info.State.Msgs == 0 || last < info.State.FirstSeq {
		return nil
	}
	c, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: jsio.ConsumerInactiveThreshold})
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal consumer")
	}
	defer jsio.DeleteOrdered(js, domain.JournalStream, c)
	// Batched pulls: one round trip per message would cap a fold at the
	// round-trip rate.
	it, err := c.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal consumer")
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return domain.Wrap(domain.CodeJournalUnavailable, err, "read journal")
		}
		meta, err := msg.Metadata()
		if err != nil {
			return domain.Wrap(domain.CodeJournalUnavailable, err, "journal message metadata")
		}
		env, err := domain.DecodeEnvelope(msg.Headers(), msg.Data(), meta.Sequence.Stream)
		if err != nil {
			return err
		}
		env.Facts = new(domain.Facts) // every projection's fold of it decodes its payload once
		if err := fn(&env); err != nil {
			return err
		}
		if meta.Sequence.Stream >= last {
			return nil
		}
	}
}

// JournalEntry is an event as the journal holds it, without its body.
type JournalEntry struct {
	Sequence  uint64          `json:"sequence"`
	Provider  domain.Provider `json:"provider"`
	Endpoint  string          `json:"endpoint"`
	EventID   string          `json:"event_id"`
	EventType string          `json:"event_type"`
	Created   time.Time       `json:"created"`
	Received  time.Time       `json:"received"`
	RequestID string          `json:"request_id"`
	// ProviderRequestID is the provider's request or message id (Stripe
	// request.id, Svix message id), when it gave one.
	ProviderRequestID string `json:"provider_request_id,omitempty"`
	// Account is the Stripe Connect account of a connected account's
	// event; absent for the platform's own.
	Account      string              `json:"account,omitempty"`
	Livemode     *bool               `json:"livemode,omitempty"`
	Verification domain.Verification `json:"verification"`
	ObjectKind   string              `json:"object_kind,omitempty"`
	ObjectID     string              `json:"object_id,omitempty"`
}

// NewJournalEntry is the ledger's view of a journaled event.
func NewJournalEntry(env *domain.Envelope) JournalEntry {
	return JournalEntry{
		Sequence: env.Sequence, Provider: env.Provider, Endpoint: env.Endpoint,
		EventID: env.EventID, EventType: env.EventType, Created: env.Created, Received: env.Received,
		RequestID: env.RequestID, ProviderRequestID: env.ProviderRequestID, Account: env.Account,
		Livemode: env.Livemode, Verification: env.Verification,
		ObjectKind: env.ObjectKind, ObjectID: env.ObjectID,
	}
}

// A FoldPosition is what the journal's consumers say of one projection
// generation's fold.
type FoldPosition struct {
	// Folded is the journal sequence up to which every event is folded:
	// the highest acknowledgement floor of a consumer that folds the
	// generation (its own, domain.ProjectorDurable, or a joint one naming
	// it, domain.FoldDurable).
	Folded uint64
	// Own says the generation's own consumer exists.
	Own bool
	// Consumers are the consumers that fold it (both kinds only while an
	// engine changes between the two), the one with the highest floor
	// first.
	Consumers []*jetstream.ConsumerInfo
}

// FoldPositions reads the fold position of each projection's generation in
// generations (projection → generation number) from the journal's
// consumers, in one listing. A generation no consumer folds has a zero
// position.
func FoldPositions(ctx context.Context, js jetstream.JetStream, generations map[string]int) (map[string]FoldPosition, error) {
	stream, err := js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "journal stream")
	}
	out := make(map[string]FoldPosition, len(generations))
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		for projection, generation := range generations {
			own := info.Name == domain.ProjectorDurable(projection, generation)
			if !own && !domain.FoldsGeneration(info.Name, projection, generation) {
				continue
			}
			p := out[projection]
			p.Own = p.Own || own
			if info.AckFloor.Stream >= p.Folded {
				p.Folded, p.Consumers = info.AckFloor.Stream, append([]*jetstream.ConsumerInfo{info}, p.Consumers...)
			} else {
				p.Consumers = append(p.Consumers, info)
			}
			out[projection] = p
		}
	}
	if err := list.Err(); err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "journal consumers")
	}
	return out, nil
}
