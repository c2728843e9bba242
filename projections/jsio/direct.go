package jsio

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
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
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{subjects, len(subjects)})
	if err != nil {
		return err
	}
	// The answer is at most one message per key and an end marker, so
	// the subscription's buffer holds exactly that: a synchronous
	// subscription's default buffer (64k message slots, 512 KiB) per page
	// read was 200 MB of the heap at a million subscriptions under load.
	answers := make(chan *nats.Msg, len(subjects)+2)
	inbox := nc.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, req); err != nil {
		return err
	}
	for {
		var msg *nats.Msg
		select {
		case msg = <-answers:
		case <-ctx.Done():
			return ctx.Err()
		}
		switch status := msg.Header.Get("Status"); {
		case status == "204": // end of batch
			return nil
		case status == "404" && msg.Header.Get("Description") == "No Results": // none of the subjects has one
			return nil
		case status != "":
			return fmt.Errorf("direct get: %s %s", status, msg.Header.Get("Description"))
		}
		subject := msg.Header.Get(jetstream.SubjectHeader)
		if !asked[subject] {
			return fmt.Errorf("direct get: answer for %q", subject)
		}
		found(subject, msg)
	}
}
