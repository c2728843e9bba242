package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// messageCounts are what every stream has stored and every consumer
// delivered, by stream, at one moment: the difference between two is the
// JetStream traffic of what happened between them.
type messageCounts map[string]struct{ stored, delivered uint64 }

// countMessages reads the counts of every stream and its consumers.
func countMessages(ctx context.Context, js jetstream.JetStream) (messageCounts, error) {
	out := messageCounts{}
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, err
		}
		c := out[name]
		c.stored = info.State.LastSeq
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			c.delivered += ci.Delivered.Consumer
		}
		if err := consumers.Err(); err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, names.Err()
}

// since is the traffic from before to c, per event of n: the messages
// stored (each a publish answered by a PubAck) and delivered to consumers
// (each acknowledged, but for the watches' ordered consumers), and a note
// naming the streams with the most.
func (c messageCounts) since(before messageCounts, n float64) (perEvent float64, note string) {
	type share struct {
		name              string
		stored, delivered uint64
	}
	var shares []share
	var stored, delivered uint64
	for name, now := range c {
		s := share{name, now.stored - min(before[name].stored, now.stored), now.delivered - min(before[name].delivered, now.delivered)}
		if s.stored+s.delivered == 0 {
			continue
		}
		stored, delivered = stored+s.stored, delivered+s.delivered
		shares = append(shares, s)
	}
	slices.SortFunc(shares, func(a, b share) int { return int(b.stored+b.delivered) - int(a.stored+a.delivered) })
	var parts []string
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %.1f stored + %.1f delivered", s.name, float64(s.stored)/n, float64(s.delivered)/n))
	}
	return float64(stored+delivered) / n, fmt.Sprintf("per event: %.1f stored (each with its PubAck) and %.1f delivered to consumers (each acknowledged but for ordered watches): %s",
		float64(stored)/n, float64(delivered)/n, strings.Join(parts, "; "))
}
