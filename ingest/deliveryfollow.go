package ingest

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// DeliveryLogDurable is the durable consumer on the journal that derives
// the delivery log entries of accepted deliveries.
const DeliveryLogDurable = "billfold-deliverylog"

// followAckWait is how long a journal event stays with one follower before
// it is redelivered: after a SIGKILL, the longest the killed process's
// batch waits for another process. It is far shorter than the delivery
// log's duplicate window, so a redelivered event's entry is deduplicated by
// its Nats-Msg-Id; a follower that is retrying keeps its batch with
// InProgress.
const followAckWait = 5 * time.Second

// deliveryFollower derives accepted entries from the journal: it publishes
// one entry per journal event (asynchronously, in batches) and acknowledges
// each event of the batch once every entry of the batch is stored. A crash
// before the acknowledgements redelivers the batch (each event is
// acknowledged on its own: an ack-all from another process, acknowledging a
// later event, would pass over the unwritten ones); the entries carry
// Nats-Msg-Id "accepted:<journal subject>", so a rewrite within the duplicate
// window is a no-op, and the ledger drops any later copy on read.
type deliveryFollower struct {
	js    jetstream.JetStream
	log   *slog.Logger
	owner *DeliveryLog
	batch int
	cc    jetstream.ConsumeContext
	msgs  chan jetstream.Msg
	done  chan struct{}
}

func newDeliveryFollower(ctx context.Context, js jetstream.JetStream, owner *DeliveryLog, batch int) (*deliveryFollower, error) {
	// A new consumer starts with the events journaled from now on: older
	// events had their entries written by the request path of releases
	// before this one.
	c, err := js.CreateOrUpdateConsumer(ctx, domain.JournalStream, jetstream.ConsumerConfig{
		Durable:       DeliveryLogDurable,
		Description:   "billfold delivery log: the entry of every accepted delivery",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       followAckWait,
		MaxAckPending: 4 * batch,
	})
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log consumer on the journal")
	}
	f := &deliveryFollower{js: js, log: owner.log, owner: owner, batch: batch,
		msgs: make(chan jetstream.Msg, 2*batch), done: make(chan struct{})}
	f.cc, err = c.Consume(func(m jetstream.Msg) { f.msgs <- m }, jetstream.PullMaxMessages(2*batch))
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log consumer on the journal")
	}
	go f.run()
	return f, nil
}

// stop stops taking journal events once those received are written, at the
// latest when ctx is done.
func (f *deliveryFollower) stop(ctx context.Context) {
	f.cc.Drain()
	select {
	case <-f.cc.Closed():
	case <-ctx.Done():
		// What is not acknowledged stays in the journal consumer: the
		// next process writes it.
		f.cc.Stop()
		return
	}
	close(f.msgs)
	select {
	case <-f.done:
	case <-ctx.Done():
	}
}

// run writes the entries of the journal events received, a batch at a time.
func (f *deliveryFollower) run() {
	defer close(f.done)
	batch := make([]jetstream.Msg, 0, f.batch)
	for m := range f.msgs {
		batch = fillBatch(batch[:0], m, f.msgs, f.batch)
		f.write(batch)
	}
}

// write publishes the entries of batch and acknowledges its events when all
// are stored. Entries that are not stored are published again until they
// are.
func (f *deliveryFollower) write(batch []jetstream.Msg) {
	msgs := make([]*nats.Msg, 0, len(batch))
	for _, m := range batch {
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		env, err := domain.DecodeEnvelope(m.Headers(), nil, meta.Sequence.Stream)
		if err != nil {
			// Not an intake append (it could not be folded either); the
			// projectors dead-letter it, there is no delivery to log.
			continue
		}
		d := domain.DeliveryFromJournal(&env, meta.Timestamp)
		msgs = append(msgs, deliveryMsg(&d, "accepted:"+m.Subject()))
	}
	wait := 100 * time.Millisecond
	for len(msgs) > 0 {
		var failed []*nats.Msg
		var last error
		for i, err := range publishAll(f.js, msgs) {
			if err != nil {
				failed, last = append(failed, msgs[i]), err
			}
		}
		if msgs = failed; len(msgs) > 0 {
			f.log.Warn("accepted deliveries' entries not written yet; retrying", "entries", len(msgs), "error", last)
			for _, m := range batch {
				_ = m.InProgress()
			}
			time.Sleep(wait)
			wait = min(2*wait, 5*time.Second)
		}
	}
	for _, m := range batch {
		if err := m.Ack(); err != nil {
			f.log.Debug("delivery log consumer ack", "error", err)
		}
	}
}
