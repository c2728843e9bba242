package projections

import (
	"context"
	"maps"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

// memoryRecords is a reducers.Lookup over a map.
type memoryRecords map[string][]byte

func (m memoryRecords) Get(key string) ([]byte, error) { return m[key], nil }

// FoldJournal folds the whole journal, up to its last sequence when the
// call starts, into memory with projs: the clean fold every live or rebuilt
// projection must equal (invariant 4). It returns each projection's records
// by key, and the events each projection refused permanently, by event id.
func FoldJournal(ctx context.Context, js jetstream.JetStream, projs []reducers.Projection) (records map[string]map[string][]byte, refused map[string]map[string]error, err error) {
	records, refused = map[string]map[string][]byte{}, map[string]map[string]error{}
	for _, p := range projs {
		records[p.Name()], refused[p.Name()] = memoryRecords{}, map[string]error{}
	}
	err = EachJournalEvent(ctx, js, func(env *domain.Envelope) error {
		for _, p := range projs {
			if !p.Handles(env.Provider, env.EventType) {
				continue
			}
			changes, err := p.Apply(env, memoryRecords(records[p.Name()]))
			if domain.Permanent(err) {
				refused[p.Name()][env.EventID] = err
				continue
			}
			if err != nil {
				return err
			}
			maps.Copy(records[p.Name()], changes)
		}
		return nil
	})
	return records, refused, err
}

// EachJournalEvent calls fn with every journal event in sequence order, up
// to the journal's last sequence when the call starts.
func EachJournalEvent(ctx context.Context, js jetstream.JetStream, fn func(*domain.Envelope) error) error {
	stream, err := js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal")
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal")
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal consumer")
	}
	for {
		msg, err := c.Next(jetstream.FetchContext(ctx))
		if err != nil {
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
		if err := fn(&env); err != nil {
			return err
		}
		if meta.Sequence.Stream >= last {
			return nil
		}
	}
}
