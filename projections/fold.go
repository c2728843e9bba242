package projections

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

// memoryRecords is a reducers.Lookup over a map.
type memoryRecords map[string][]byte

func (m memoryRecords) Get(key string) ([]byte, error) { return m[key], nil }

// foldedRecord is a record in a fold's memory, with the event that last
// changed it.
type foldedRecord struct {
	value []byte
	cause Cause
}

// foldedRecords is one projection's records in memory.
type foldedRecords map[string]foldedRecord

func (m foldedRecords) Get(key string) ([]byte, error) { return m[key].value, nil }

// memoryFold folds journal events into memory: the records of each
// projection, bounded by the number of records, not of events.
type memoryFold struct {
	projs   []reducers.Projection
	records map[string]foldedRecords
	// refused is called with each event a projection refuses permanently.
	refused func(projection string, env *domain.Envelope, err error)
}

func newMemoryFold(projs []reducers.Projection) *memoryFold {
	f := &memoryFold{projs: projs, records: map[string]foldedRecords{}, refused: func(string, *domain.Envelope, error) {}}
	for _, p := range projs {
		f.records[p.Name()] = foldedRecords{}
	}
	return f
}

// apply folds one event into every projection that handles it.
func (f *memoryFold) apply(env *domain.Envelope) error {
	cause := Cause{EventID: env.EventID, EventType: env.EventType, Sequence: env.Sequence}
	for _, p := range f.projs {
		if !p.Handles(env.Provider, env.EventType) {
			continue
		}
		records := f.records[p.Name()]
		changes, err := p.Apply(env, records)
		if domain.Permanent(err) {
			f.refused(p.Name(), env, err)
			continue
		}
		if err != nil {
			return err
		}
		for key, value := range changes {
			records[key] = foldedRecord{value: value, cause: cause}
		}
	}
	return nil
}

// FoldJournal folds the whole journal, up to its last sequence when the
// call starts, into memory with projs: the clean fold every live or rebuilt
// projection must equal (invariant 4). It returns each projection's records
// by key, and the events each projection refused permanently, by event id.
func FoldJournal(ctx context.Context, js jetstream.JetStream, projs []reducers.Projection) (records map[string]map[string][]byte, refused map[string]map[string]error, err error) {
	f := newMemoryFold(projs)
	refused = map[string]map[string]error{}
	for _, p := range projs {
		refused[p.Name()] = map[string]error{}
	}
	f.refused = func(projection string, env *domain.Envelope, err error) { refused[projection][env.EventID] = err }
	err = EachJournalEvent(ctx, js, f.apply)
	records = map[string]map[string][]byte{}
	for name, recs := range f.records {
		records[name] = map[string][]byte{}
		for key, r := range recs {
			records[name][key] = r.value
		}
	}
	return records, refused, err
}

// EachJournalEvent calls fn with every journal event in sequence order, up
// to the journal's last sequence when the call starts.
func EachJournalEvent(ctx context.Context, js jetstream.JetStream, fn func(*domain.Envelope) error) error {
	return eachJournalEvent(ctx, js, 0, fn)
}

// eachJournalEvent calls fn with every journal event in sequence order, up
// to last (0: the journal's last sequence when the call starts).
func eachJournalEvent(ctx context.Context, js jetstream.JetStream, last uint64, fn func(*domain.Envelope) error) error {
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
	c, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return domain.Wrap(domain.CodeJournalUnavailable, err, "journal consumer")
	}
	// One continuous pull (consume), not a Next per event: an ordered
	// consumer's Next deletes and recreates its consumer at every call, and
	// on a cluster the pull that follows can reach a server that has not
	// yet heard of the new consumer ("no responders"), failing a fold or a
	// verify at random.
	var handleErr error // an event's own error, returned as it is
	err = consume(ctx, c, 256, func(msg jetstream.Msg) error {
		handleErr = foldMessage(msg, last, fn)
		return handleErr
	})
	switch {
	case errors.Is(handleErr, errFoldDone):
		return nil
	case handleErr != nil:
		return handleErr
	case err != nil:
		return domain.Wrap(domain.CodeJournalUnavailable, err, "read journal")
	}
	return ctx.Err() // consume ends without an error only when ctx does
}

// foldMessage decodes one journal message and calls fn with it;
// errFoldDone once it was the message at last.
func foldMessage(msg jetstream.Msg, last uint64, fn func(*domain.Envelope) error) error {
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
		return errFoldDone
	}
	return nil
}

// errFoldDone ends a fold's consume at the last sequence it reads.
var errFoldDone = errors.New("fold reached its last sequence")
