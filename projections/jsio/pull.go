package jsio

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pullHeartbeat is how often the server confirms an idle pull request.
// Under a burst the server can drop a pull request (the relays' one-message
// pulls lost theirs after a bulk write, with 0 waiting pulls left on the
// consumer and messages pending); the client only notices when two
// heartbeats are missed, so the heartbeat bounds such a stall. With the
// library's default (half the 30 s expiry) a relay stood still for 30 s
// at a time.
const pullHeartbeat = time.Second

// ConsumeBatches pulls messages from c, up to batch ahead, and hands over,
// at once, up to batch messages that have already arrived, until ctx ends
// (nil) or the pull or handle fails (that error). A batch never waits for
// messages still to come, so a quiet stream is folded event by event. A
// pull the server lost (no heartbeat) is re-issued at once.
func ConsumeBatches(ctx context.Context, c jetstream.Consumer, batch int, handle func([]jetstream.Msg) error, opts ...jetstream.PullMessagesOpt) error {
	for {
		err := consumeOnce(ctx, c, batch, handle, opts)
		if !errors.Is(err, jetstream.ErrNoHeartbeat) || ctx.Err() != nil {
			return err
		}
	}
}

// drainWait is how long a batch waits for a message the client may
// already hold: long enough to take what is buffered.
const drainWait = 100 * time.Microsecond

func consumeOnce(ctx context.Context, c jetstream.Consumer, batch int, handle func([]jetstream.Msg) error, opts []jetstream.PullMessagesOpt) error {
	it, err := c.Messages(append([]jetstream.PullMessagesOpt{jetstream.PullMaxMessages(batch), jetstream.PullHeartbeat(pullHeartbeat)}, opts...)...)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	msgs := make([]jetstream.Msg, 0, batch)
	for {
		msg, err := it.Next()
		for err == nil {
			msgs = append(msgs, msg)
			if len(msgs) >= batch {
				break
			}
			msg, err = it.Next(jetstream.NextMaxWait(drainWait))
		}
		if len(msgs) > 0 {
			if err := handle(msgs); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
		switch {
		case err == nil, errors.Is(err, nats.ErrTimeout):
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil
		default:
			return err
		}
	}
}

// Sleep waits d, or until ctx is done: the pause before a failed read,
// watch or pull is tried again.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Backoff is the wait before try attempt+1 of a failed read, write or
// publish: first doubled at each attempt up to limit, jittered by up to
// half of it so that processes retrying together spread out.
func Backoff(attempt int, first, limit time.Duration) time.Duration {
	d := first << min(attempt-1, 20)
	if d > limit || d <= 0 {
		d = limit
	}
	return d/2 + rand.N(d/2+1)
}
