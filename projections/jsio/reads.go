package jsio

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// Reads made for one request must not leave a server resource behind:
// nats-server caps the consumers of a stream (MaxConsumers below), and a
// consumer per lookup left to expire once made every later read, change
// feed and rebuild fail with "maximum consumers limit reached". So a
// lookup by subject uses direct gets (no consumer at all), and a range
// read that needs a consumer deletes it as soon as it is done. Each stream
// sets its cap explicitly (domain.MaxStreamConsumers).

// ConsumerInactiveThreshold is how long an ordered consumer a request
// created survives on the server if billfold dies before deleting it.
const ConsumerInactiveThreshold = 5 * time.Second

// EachOnSubject calls fn with the messages on subject (a literal subject
// or a filter) in stream, oldest first, starting at sequence from (0: the
// first), at most limit of them, with direct gets: one request per
// message and no consumer. It returns how many it read and the sequence of
// the last one.
func EachOnSubject(ctx context.Context, js jetstream.JetStream, stream, subject string, from uint64, limit int, fn func(*jetstream.RawStreamMsg)) (int, uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, 0, domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
	}
	seq, last, n := max(from, 1), uint64(0), 0
	for n < limit {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return n, last, domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
		}
		fn(m)
		n, last, seq = n+1, m.Sequence, m.Sequence+1
	}
	return n, last, nil
}

// CountOnSubject is how many messages stream holds on subject, from the
// stream's own per-subject index (no consumer, no read of the messages).
func CountOnSubject(ctx context.Context, js jetstream.JetStream, stream, subject string) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, domain.Wrap(domain.CodeJournalUnavailable, err, "read "+stream)
	}
	return int(info.State.Subjects[subject]), nil
}

// OrderedRead reads what an ordered consumer with cfg has pending in
// stream when it starts, calls fn with each message, and deletes the
// consumer when done, whatever the outcome.
func OrderedRead(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, code domain.Code, fn func(jetstream.Msg)) error {
	cfg.InactiveThreshold = ConsumerInactiveThreshold
	c, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return domain.Wrap(code, err, "read "+stream)
	}
	defer DeleteOrdered(js, stream, c)
	return Drain(ctx, c, stream, fn)
}

// DeleteOrdered deletes the server consumer an ordered consumer uses now,
// on a context of its own: the request's may already be done.
func DeleteOrdered(js jetstream.JetStream, stream string, c jetstream.Consumer) {
	info := c.CachedInfo()
	if info == nil || info.Name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = js.DeleteConsumer(ctx, stream, info.Name) // else InactiveThreshold removes it
}

// EachLastPerSubject calls fn with the data of the last message of every
// subject matching filter in stream.
func EachLastPerSubject(ctx context.Context, js jetstream.JetStream, stream, filter string, fn func([]byte)) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	return OrderedRead(ctx, js, stream, cfg, domain.CodeStoreUnavailable, func(m jetstream.Msg) { fn(m.Data()) })
}

// Drain calls fn with every message an ordered consumer has pending when
// it is called. It reads with one continuous pull: an ordered consumer
// recreates itself at every Fetch, and on a cluster the pull after a
// recreation can fail with "no responders".
func Drain(ctx context.Context, c jetstream.Consumer, stream string, fn func(jetstream.Msg)) error {
	info, err := c.Info(ctx)
	if err != nil {
		return domain.Wrap(domain.CodeStoreUnavailable, err, "read "+stream)
	}
	if info.NumPending == 0 {
		return nil
	}
	it, err := c.Messages(jetstream.PullMaxMessages(int(min(info.NumPending, 1024))))
	if err != nil {
		return domain.Wrap(domain.CodeStoreUnavailable, err, "read "+stream)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for range info.NumPending {
		// Bounded, so a count that changed under us cannot hang a read.
		m, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return domain.Wrap(domain.CodeStoreUnavailable, err, "read "+stream)
		}
		fn(m)
	}
	return nil
}

// LastSequence is stream's last sequence now, in one request (the stream
// lookup answers with its state); a failure is code.
func LastSequence(ctx context.Context, js jetstream.JetStream, stream string, code domain.Code) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, domain.Wrap(code, err, "read "+stream)
	}
	return s.CachedInfo().State.LastSeq, nil
}
