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
// changed it. A record read back from a spill is clean until an event
// changes it again.
type foldedRecord struct {
	value []byte
	cause kvstore.Cause
	dirty bool
}

// foldedRecords is one projection's records in memory.
type foldedRecords map[string]foldedRecord

// recordOverhead is what a record costs in memory beside its key and value
// bytes (the map entry, the slice and string headers, the cause): what
// the spill budget counts per record.
const recordOverhead = 160

// DefaultRebuildMemory is the memory a rebuild's fold may hold in records
// before it writes them to the new generations and lets them go
// (RebuildOptions.Memory).
const DefaultRebuildMemory = 256 << 20

// spill is where a projection's fold puts its records once it holds more
// than budget bytes of them: the new generation it is building.
type spill struct {
	budget int
	store  *kvstore.Store
	write  func(ctx context.Context, s *kvstore.Store, records foldedRecords, keys []string) error
}

// projectionRecords are one projection's records during a fold: those in
// memory, and, once it has spilled, the keys it wrote to the new
// generation. It is the reducers' Lookup: a spilled record is read back
// from the new generation when an event needs it.
type projectionRecords struct {
	ctx     context.Context
	mem     foldedRecords
	bytes   int
	spill   *spill
	spilled map[string]struct{}
}

func newProjectionRecords(ctx context.Context, sp *spill) *projectionRecords {
	return &projectionRecords{ctx: ctx, mem: foldedRecords{}, spill: sp, spilled: map[string]struct{}{}}
}

// Get implements reducers.Lookup.
func (r *projectionRecords) Get(key string) ([]byte, error) {
	if e, ok := r.mem[key]; ok {
		return e.value, nil
	}
	if _, ok := r.spilled[key]; !ok {
		return nil, nil
	}
	v, found, err := r.spill.store.Latest(r.ctx, key)
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "read back "+key+" from "+r.spill.store.Bucket())
	}
	if found {
		r.put(key, foldedRecord{value: v})
	}
	return v, nil
}

func (r *projectionRecords) put(key string, e foldedRecord) {
	old, ok := r.mem[key]
	if !ok {
		r.bytes += len(key) + recordOverhead
	}
	r.bytes += len(e.value) - len(old.value)
	r.mem[key] = e
}

// spillIfFull writes the records changed since they were last written to
// the new generation and lets every record in memory go, once they take
// more than the budget.
func (r *projectionRecords) spillIfFull() error {
	if r.spill == nil || r.bytes <= r.spill.budget {
		return nil
	}
	var keys []string
	for k, e := range r.mem {
		if e.dirty {
			keys = append(keys, k)
		}
	}
	if err := r.spill.write(r.ctx, r.spill.store, r.mem, keys); err != nil {
		return err
	}
	for _, k := range keys {
		r.spilled[k] = struct{}{}
	}
	clear(r.mem)
	r.bytes = 0
	return nil
}

// memoryFold folds journal events into memory: the records of each
// projection, bounded by the number of records, not of events, and, for
// a projection with a spill, by its budget.
type memoryFold struct {
	projs   []reducers.Projection
	records map[string]*projectionRecords
	// refused is called with each event a projection refuses permanently.
	refused func(projection string, env *domain.Envelope, err error)
}

// newMemoryFold folds projs; spills, by projection, bound the memory of
// those that have one (a rebuild's; verify compares all records at once).
func newMemoryFold(ctx context.Context, projs []reducers.Projection, spills map[string]*spill) *memoryFold {
	f := &memoryFold{projs: projs, records: map[string]*projectionRecords{}, refused: func(string, *domain.Envelope, error) {}}
	for _, p := range projs {
		f.records[p.Name()] = newProjectionRecords(ctx, spills[p.Name()])
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
		records.put(key, foldedRecord{value: value, cause: cause, dirty: true})
	}
	return records.spillIfFull()
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
	f := newMemoryFold(ctx, projs, nil)
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
		for key, r := range recs.mem {
			records[name][key] = r.value
		}
	}
	return records, refused, err
}
