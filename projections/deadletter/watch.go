package deadletter

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
)

// LastSequence is the dead-letter stream's last sequence now: every dead
// letter written before a call is at or below it.
func (d Letters) LastSequence(ctx context.Context) (uint64, error) {
	return jsio.LastSequence(ctx, d.JS, domain.DeadLetterStream, domain.CodeStoreUnavailable)
}

// Latest reads the current state of the dead letters on subjects in one
// batched direct get; a subject without one, or whose state does not
// decode, is left out.
func (d Letters) Latest(ctx context.Context, subjects []string) (map[string]*Letter, error) {
	out := make(map[string]*Letter, len(subjects))
	err := jsio.LastMessages(ctx, d.JS.Conn(), domain.DeadLetterStream, subjects, func(subject string, msg *nats.Msg) {
		if dl, err := Decode(msg.Data); err == nil {
			out[subject] = dl
		}
	})
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "dead letters")
	}
	return out, nil
}

// Watch reads the current state of every dead letter (the last message of
// each subject), then every new message, and calls fn with each: its
// subject, stream sequence, the state (or why it does not decode) and
// whether the current states are all read (then and after, caughtUp is
// true; with an empty stream, fn is first called with a nil state and the
// stream's last sequence). It returns when ctx ends or the read fails; its
// consumer is deleted then.
func (d Letters) Watch(ctx context.Context, fn func(subject string, seq uint64, dl *Letter, err error, caughtUp bool)) error {
	stream, err := d.JS.Stream(ctx, domain.DeadLetterStream)
	if err != nil {
		return domain.Wrap(domain.CodeStoreUnavailable, err, "dead letters")
	}
	state := stream.CachedInfo().State
	c, err := d.JS.OrderedConsumer(ctx, domain.DeadLetterStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{domain.DeadLetterSubjectPrefix + ">"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		InactiveThreshold: jsio.ConsumerInactiveThreshold,
	})
	if err != nil {
		return domain.Wrap(domain.CodeStoreUnavailable, err, "dead letters")
	}
	defer jsio.DeleteOrdered(d.JS, domain.DeadLetterStream, c)
	it, err := c.Messages()
	if err != nil {
		return domain.Wrap(domain.CodeStoreUnavailable, err, "dead letters")
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	caughtUp := state.Msgs == 0
	if caughtUp {
		fn("", state.LastSeq, nil, nil, true) // nothing to load; what comes next is newer
	}
	for {
		m, err := it.Next()
		if err != nil {
			return err // stopped, or the reader failed
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		dl, derr := Decode(m.Data())
		seq := meta.Sequence.Stream
		if !caughtUp && meta.NumPending == 0 {
			caughtUp, seq = true, max(state.LastSeq, seq)
		}
		fn(m.Subject(), seq, dl, derr, caughtUp)
	}
}
