package feed

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
)

// Reader is an open read of the change feed: the one reader of
// BILLFOLD_CHANGES, behind the SSE endpoint's shared hubs and the Go
// client's Watch. It holds one ordered consumer, deleted by Close.
type Reader struct {
	js   jetstream.JetStream
	c    jetstream.Consumer
	it   jetstream.MessagesContext
	stop func() bool
}

// OpenReader reads the changes on subjects matching filter from the
// stream sequence from (0: only those published from now on) until ctx
// ends or Close.
func OpenReader(ctx context.Context, js jetstream.JetStream, filter string, from uint64) (*Reader, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverNewPolicy,
		InactiveThreshold: jsio.ConsumerInactiveThreshold}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	c, err := js.OrderedConsumer(ctx, domain.ChangesStream, cfg)
	if err != nil {
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "change feed reader")
	}
	it, err := c.Messages()
	if err != nil {
		jsio.DeleteOrdered(js, domain.ChangesStream, c)
		return nil, domain.Wrap(domain.CodeJournalUnavailable, err, "change feed reader")
	}
	return &Reader{js: js, c: c, it: it, stop: context.AfterFunc(ctx, it.Stop)}, nil
}

// Next waits for the next change: its stream sequence and its body. An
// error means the read is over (Close, the context, or the connection
// closed; NATS outages are the ordered consumer's own to ride out).
func (r *Reader) Next() (uint64, []byte, error) {
	for {
		m, err := r.it.Next()
		if err != nil {
			return 0, nil, err
		}
		if meta, err := m.Metadata(); err == nil {
			return meta.Sequence.Stream, m.Data(), nil
		}
	}
}

// Close ends the read and deletes its consumer.
func (r *Reader) Close() {
	r.stop()
	r.it.Stop()
	jsio.DeleteOrdered(r.js, domain.ChangesStream, r.c)
}
