package projections

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// burstAckTimeout bounds the wait for one write's PubAck in a burst; a
// write without an answer by then is retried like a failed one.
const burstAckTimeout = 10 * time.Second

// burst is a projector's record writes in flight: the changes of a pull
// batch's events, published compare-and-set without waiting for each
// PubAck (JetStream's asynchronous publish), then awaited together.
//
// It gives the same records as writing one event at a time because no
// event ever reads a record another write of the burst has not yet
// stored: reading or writing a key with a write in flight flushes the burst
// first (burstTx.Get). Every fold therefore starts from a stored revision,
// and its compare-and-set against that revision is what keeps several
// processes from losing or doubling an update. An event whose write lost
// or failed is folded again from the store, one at a time (Projector.apply);
// the reducers make what it already stored a no-op.
type burst struct {
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

func newBurst(ctx context.Context, s *Store) *burst {
	return &burst{ctx: ctx, store: s, keys: map[string]bool{}, failed: map[int]error{}}
}

// tx is event i's view of the store through the burst.
func (b *burst) tx(i int) *burstTx {
	return &burstTx{b: b, event: i, read: map[string]uint64{}}
}

// flush publishes every write in flight and waits for all of their acks.
// A write that is not stored forgets its cached record and marks its event
// failed.
func (b *burst) flush() {
	if len(b.writes) == 0 {
		return
	}
	futures := make([]jetstream.PubAckFuture, len(b.writes))
	for i, w := range b.writes {
		paf, err := b.store.js.PublishMsgAsync(b.store.writeMsg(w.key, w.value, w.cause), jetstream.WithExpectLastSequencePerSubject(w.revision))
		if err != nil {
			b.fail(w, err)
			continue
		}
		futures[i] = paf
	}
	timeout := time.NewTimer(burstAckTimeout)
	defer timeout.Stop()
	for i, paf := range futures {
		if paf == nil {
			continue
		}
		w := b.writes[i]
		select {
		case ack := <-paf.Ok():
			b.store.remember(w.key, cached{value: w.value, revision: ack.Sequence})
		case err := <-paf.Err():
			b.fail(w, err)
		case <-timeout.C:
			b.fail(w, errors.New("no PubAck within "+burstAckTimeout.String()))
			timeout.Reset(0) // the rest are no better off
		case <-b.ctx.Done():
			b.fail(w, b.ctx.Err())
		}
	}
	b.writes = b.writes[:0]
	clear(b.keys)
}

func (b *burst) fail(w burstWrite, err error) {
	b.store.forget(w.key)
	if wrongLastSequence(err) {
		err = errConflict
	}
	b.failed[w.event] = err
}

// burstTx is one event's fold through a burst: a reducers.Lookup that
// remembers the revisions it read, and stages the event's changes.
type burstTx struct {
	b     *burst
	event int
	read  map[string]uint64
}

// Get implements reducers.Lookup. A record with a write in flight is read
// once that write is stored (or has failed).
func (t *burstTx) Get(key string) ([]byte, error) {
	if t.b.keys[key] {
		t.b.flush()
	}
	v, rev, err := t.b.store.Get(t.b.ctx, key)
	if err != nil {
		return nil, err
	}
	t.read[key] = rev
	return v, nil
}

// stage adds the event's changes to the burst, each against the revision
// it was read at.
func (t *burstTx) stage(changes map[string][]byte, cause Cause) error {
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
