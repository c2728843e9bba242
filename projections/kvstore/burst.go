package kvstore

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/projections/jsio"
)

// Burst is a projector's record writes in flight: the changes of a pull
// batch's events, published compare-and-set without waiting for each
// PubAck (JetStream's asynchronous publish), then awaited together.
//
// It gives the same records as writing one event at a time because no
// event ever reads a record another write of the Burst has not yet
// stored: reading or writing a key with a write in flight flushes the Burst
// first (BurstTx.Get). Every fold therefore starts from a stored revision,
// and its compare-and-set against that revision is what keeps several
// processes from losing or doubling an update. An event whose write lost
// or failed is folded again from the store, one at a time (the
// projector's handler);
// the reducers make what it already stored a no-op.
type Burst struct {
	ctx    context.Context
	store  *Store
	writes []burstWrite
	keys   map[string]bool
	// failed are the events (by index in the batch) a write of which was
	// not stored, with the last error.
	failed map[int]error
}

type burstWrite struct {
	key      string
	value    []byte
	revision uint64
	cause    Cause
	event    int
}

// NewBurst starts a burst of writes into s.
func NewBurst(ctx context.Context, s *Store) *Burst {
	return &Burst{ctx: ctx, store: s, keys: map[string]bool{}, failed: map[int]error{}}
}

// Fail marks event i of the batch failed with err (a fold the store
// failed): the projector folds it again after the burst.
func (b *Burst) Fail(i int, err error) { b.failed[i] = err }

// Failure is the error a write of event i failed with, nil when every
// write of it was stored.
func (b *Burst) Failure(i int) error { return b.failed[i] }

// Tx is event i's view of the store through the burst.
func (b *Burst) Tx(i int) *BurstTx {
	return &BurstTx{b: b, event: i, read: map[string]uint64{}}
}

// Flush publishes every write in flight and waits for all of their acks.
// A write that is not stored forgets its cached record and marks its event
// failed.
func (b *Burst) Flush() {
	if len(b.writes) == 0 {
		return
	}
	msgs := make([]*nats.Msg, len(b.writes))
	for i, w := range b.writes {
		msgs[i] = b.store.WriteMsg(w.key, w.value, w.cause, w.revision)
	}
	errs := jsio.PublishAsync(b.ctx, b.store.js, msgs,
		func(i int) []jetstream.PublishOpt {
			return []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(b.writes[i].revision)}
		},
		func(i int, ack *jetstream.PubAck) {
			w := b.writes[i]
			b.store.remember(w.key, cached{value: w.value, revision: ack.Sequence})
		})
	for i, err := range errs {
		if err != nil {
			b.fail(b.writes[i], err)
		}
	}
	b.writes = b.writes[:0]
	clear(b.keys)
}

func (b *Burst) fail(w burstWrite, err error) {
	b.store.forget(w.key)
	if jsio.WrongLastSequence(err) {
		err = ErrConflict
	}
	b.failed[w.event] = err
}

// BurstTx is one event's fold through a burst: a reducers.Lookup that
// remembers the revisions it read, and stages the event's changes.
type BurstTx struct {
	b     *Burst
	event int
	read  map[string]uint64
}

// Get implements reducers.Lookup. A record with a write in flight is read
// once that write is stored (or has failed).
func (t *BurstTx) Get(key string) ([]byte, error) {
	if t.b.keys[key] {
		t.b.Flush()
	}
	v, rev, err := t.b.store.Get(t.b.ctx, key)
	if err != nil {
		return nil, err
	}
	t.read[key] = rev
	return v, nil
}

// Stage adds the event's changes to the burst, each against the revision
// it was read at.
func (t *BurstTx) Stage(changes map[string][]byte, cause Cause) error {
	for key := range changes {
		if _, ok := t.read[key]; !ok {
			// Written without being read: read it now, so the write is
			// checked against concurrent writers.
			if _, err := t.Get(key); err != nil {
				return err
			}
		}
	}
	for key, value := range changes {
		t.b.writes = append(t.b.writes, burstWrite{key: key, value: value, revision: t.read[key], cause: cause, event: t.event})
		t.b.keys[key] = true
	}
	return nil
}
