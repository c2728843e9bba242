package rebuild

import (
	"context"
	"sync"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// foldedRecord is a record in a fold's memory, with the event that last
// changed it.
type foldedRecord struct {
	value []byte
	cause kvstore.Cause
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

// applyTo folds one event into one projection, if it handles it.
func (f *memoryFold) applyTo(p reducers.Projection, env *domain.Envelope) error {
	if !p.Handles(env.Provider, env.EventType) {
		return nil
	}
	records := f.records[p.Name()]
	changes, err := p.Apply(env, records)
	if domain.Permanent(err) {
		f.refused(p.Name(), env, err)
		return nil
	}
	if err != nil {
		return err
	}
	cause := kvstore.Cause{EventID: env.EventID, EventType: env.EventType, Sequence: env.Sequence}
	for key, value := range changes {
		records[key] = foldedRecord{value: value, cause: cause}
	}
	return nil
}

// foldJournal folds the journal up to last (0: its last sequence when the
// call starts) with one goroutine per projection, so a rebuild or verify
// uses every core while each projection still folds the events in journal
// order. before, when set, is called with each event before it is folded
// (pacing, progress). f.refused may be called from several goroutines.
func (f *memoryFold) foldJournal(ctx context.Context, js jetstream.JetStream, last uint64, before func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	ins := make([]chan *domain.Envelope, len(f.projs))
	for i, p := range f.projs {
		ins[i] = make(chan *domain.Envelope, 1024)
		g.Go(func() error {
			for env := range ins[i] {
				if err := f.applyTo(p, env); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer func() {
			for _, in := range ins {
				close(in)
			}
		}()
		return projections.EachJournalEventUpTo(gctx, js, last, func(env *domain.Envelope) error {
			if before != nil {
				if err := before(gctx); err != nil {
					return err
				}
			}
			for _, in := range ins {
				select {
				case in <- env:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	})
	return g.Wait()
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
	var mu sync.Mutex
	f.refused = func(projection string, env *domain.Envelope, err error) {
		mu.Lock()
		refused[projection][env.EventID] = err
		mu.Unlock()
	}
	err = f.foldJournal(ctx, js, 0, nil)
	records = map[string]map[string][]byte{}
	for name, recs := range f.records {
		records[name] = map[string][]byte{}
		for key, r := range recs {
			records[name][key] = r.value
		}
	}
	return records, refused, err
}
