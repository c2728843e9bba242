package jsio

import (
	"context"
	"errors"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AckTimeout bounds the wait for one write's PubAck in a burst; a
// write without an answer by then is retried like a failed one.
const AckTimeout = 10 * time.Second

// PublishAsync publishes msgs without waiting for each PubAck (JetStream's
// asynchronous publish), then waits for all of them, at most
// AckTimeout together. opts, when not nil, are each message's publish
// options; stored, when not nil, is called with each stored message's ack.
// It returns, per message, nil when it was stored, or why not.
func PublishAsync(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, opts func(i int) []jetstream.PublishOpt, stored func(i int, ack *jetstream.PubAck)) []error {
	errs := make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		var o []jetstream.PublishOpt
		if opts != nil {
			o = opts(i)
		}
		futures[i], errs[i] = js.PublishMsgAsync(m, o...)
	}
	timeout := time.NewTimer(AckTimeout)
	defer timeout.Stop()
	for i, paf := range futures {
		if errs[i] != nil {
			continue
		}
		select {
		case ack := <-paf.Ok():
			if stored != nil {
				stored(i, ack)
			}
		case errs[i] = <-paf.Err():
		case <-timeout.C:
			errs[i] = errors.New("no PubAck within " + AckTimeout.String())
			timeout.Reset(0) // the rest are no better off
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return errs
}

// WrongLastSequence is the API error of a lost compare-and-set; replicated
// streams report it with a code of their own.
func WrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// PutIfRevision writes value under key if the key is still at revision (0:
// absent), the compare-and-set every bookkeeping record of the
// read side (generation pointers, rebuilds, pauses) is written with. A lost race is BILLFOLD-CONFLICT; what names the record in errors.
func PutIfRevision(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, revision uint64, what string) (uint64, error) {
	var rev uint64
	var err error
	if revision == 0 {
		rev, err = kv.Create(ctx, key, value)
	} else {
		rev, err = kv.Update(ctx, key, value, revision)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || WrongLastSequence(err) {
		return 0, domain.Wrap(domain.CodeConflict, err, what+" changed meanwhile")
	}
	if err != nil {
		return 0, domain.Wrap(domain.CodeStoreUnavailable, err, what)
	}
	return rev, nil
}
