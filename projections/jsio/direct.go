package jsio

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DirectBatch bounds the subjects of one batched direct get; the server
// answers at most 1024 messages to one.
const DirectBatch = 256

// LastMessages calls found with the last message of each of subjects in
// stream that has one, in one direct get request per DirectBatch subjects
// (JetStream's "multi_last").
func LastMessages(ctx context.Context, nc *nats.Conn, stream string, subjects []string, found func(subject string, msg *nats.Msg)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	asked := make(map[string]bool, len(subjects))
	for _, s := range subjects {
		asked[s] = true
	}
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(asked)), DirectBatch) {
		if err := lastMessagesOnce(ctx, nc, stream, chunk, asked, found); err != nil {
			return err
		}
	}
	return nil
}

func lastMessagesOnce(ctx context.Context, nc *nats.Conn, stream string, subjects []string, asked map[string]bool, found func(subject string, msg *nats.Msg)) error {
	req := struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{subjects, len(subjects)}
	// The answer is at most one message per key and an end marker.
	_, err := directBatch(ctx, nc, stream, req, len(subjects), func(msg *nats.Msg) error {
		subject := msg.Header.Get(jetstream.SubjectHeader)
		if !asked[subject] {
			return fmt.Errorf("direct get: answer for %q", subject)
		}
		found(subject, msg)
		return nil
	})
	return err
}

// RangeBatch bounds the messages one batched direct get of Range asks
// for, and so the answers buffered for one request.
const RangeBatch = 1024

// Range calls fn with each message of stream from sequence first to last,
// oldest first, with batched direct gets by sequence (one request per
// RangeBatch messages, no consumer, each answered within 5 s unless ctx
// says otherwise), skipping sequences the stream no longer holds. It
// returns how many messages it read.
func Range(ctx context.Context, nc *nats.Conn, stream string, first, last uint64, fn func(seq uint64, msg *nats.Msg)) (int, error) {
	read := 0
	for seq := max(first, 1); seq <= last; {
		n := int(min(last-seq+1, RangeBatch))
		req := struct {
			Seq   uint64 `json:"seq"`
			Batch int    `json:"batch"`
		}{seq, n}
		next := seq
		found, err := directBatch(ctx, nc, stream, req, n, func(msg *nats.Msg) error {
			s, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil || s < next {
				return fmt.Errorf("direct get: answer at sequence %q", msg.Header.Get(jetstream.SequenceHeader))
			}
			next = s + 1
			if s <= last { // past last when the stream skipped deleted ones
				read++
				fn(s, msg)
			}
			return nil
		})
		if err != nil || !found || next > last {
			return read, err
		}
		seq = next
	}
	return read, nil
}

// directBatch sends one batched direct get request to stream and calls fn
// with each message of the answer, at most size of them. It reports
// whether the answer held any message (false: the stream has none there).
func directBatch(ctx context.Context, nc *nats.Conn, stream string, req any, size int, fn func(*nats.Msg) error) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Without an answer (no stream, no responder) the wait ends here.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return false, err
	}
	// The subscription's buffer holds exactly the answer (the messages and
	// an end marker): a synchronous subscription's default buffer (64k
	// message slots, 512 KiB) per page read was 200 MB of the heap at a
	// million subscriptions under load.
	answers := make(chan *nats.Msg, size+2)
	inbox := nc.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return false, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return false, err
	}
	found := false
	for {
		var msg *nats.Msg
		select {
		case msg = <-answers:
		case <-ctx.Done():
			return found, ctx.Err()
		}
		switch status := msg.Header.Get("Status"); {
		case status == "204": // end of batch
			return found, nil
		case status == "404" && (msg.Header.Get("Description") == "No Results" || msg.Header.Get("Description") == "Message Not Found"):
			return found, nil // none of the subjects has one; no message at or after the sequence
		case status != "":
			return found, fmt.Errorf("direct get: %s %s", status, msg.Header.Get("Description"))
		}
		found = true
		if err := fn(msg); err != nil {
			return found, err
		}
	}
}
