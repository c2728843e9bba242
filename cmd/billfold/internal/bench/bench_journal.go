package bench

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/stripe"
	"github.com/billfold/billfold/ingest/svix"
	"github.com/billfold/billfold/projections/admin"
	"github.com/billfold/billfold/projections/jsio"
)

// journalChunk is how many deliveries the journal phase builds and
// appends at a time, so a journal of millions never sits in memory.
const journalChunk = 10_000

// benchJournal fills the journal with --events deliveries of the
// onboarding mix, read by intake's own parsers and appended as intake
// appends them, but with asynchronous publishes and the projections
// paused: the journal the rebuild phase then folds, at any size (a
// 1,000,000-event rebuild), without waiting for the live fold. The
// projections stay paused.
func benchJournal(ctx context.Context, b *benchRun) ([]benchRow, error) {
	if err := b.adminDo(ctx, http.MethodPost, "/v1/projections/pause", admin.PauseRequest{}, &map[string]any{}); err != nil {
		return nil, fmt.Errorf("journal: pause the projections: %w", err)
	}
	b.paused = true
	n := b.o.events
	customers := n/len(onboardingJourney) + 1
	t0 := time.Now()
	bar := cli.NewBar(n, "journal", b.stderr)
	start := time.Now()
	bytes := 0
	for from := 0; from < n; from += journalChunk {
		work := journeyRange(onboardingJourney, b.runID+"j", from, min(from+journalChunk, n), customers, t0)
		msgs := make([]*nats.Msg, 0, len(work))
		for _, d := range work {
			env, err := d.envelope(t0)
			if err != nil {
				return nil, fmt.Errorf("journal: %s %s: %w", d.provider, d.id, err)
			}
			msg := &nats.Msg{Subject: env.JournalSubject(), Header: nats.Header{}, Data: env.Body}
			env.EncodeHeader(msg.Header)
			msg.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{"0"}
			msgs = append(msgs, msg)
			bytes += len(d.body)
		}
		for batch := range slices.Chunk(msgs, 1024) { // nats.go stalls past 4,000 outstanding
			for _, err := range jsio.PublishAsync(ctx, b.js, batch, nil, nil) {
				if err != nil {
					return nil, fmt.Errorf("journal: append: %w", err)
				}
			}
		}
		_ = bar.Add(len(work))
	}
	_ = bar.Finish()
	took := time.Since(start)
	debug.FreeOSMemory() // the rebuild phase measures the process's peak memory
	return []benchRow{{Figure: "events appended to the journal per second", Unit: "/s", Value: float64(n) / took.Seconds(),
		Note: fmt.Sprintf("%d events of the onboarding mix, %.1f KB a body on average, asynchronous publishes, the projections paused",
			n, float64(bytes)/float64(max(n, 1))/1000)}}, nil
}

// envelope is d as intake journals it: read by its provider's parser,
// signed at now.
func (d delivery) envelope(now time.Time) (*domain.Envelope, error) {
	var (
		env domain.Envelope
		err error
	)
	switch d.provider {
	case domain.Clerk:
		h := http.Header{}
		for k, v := range d.sign(now) {
			h.Set(k, v)
		}
		env, err = svix.ClerkParser{}.Parse(h, d.body)
	default:
		env, err = stripe.Parser{}.Parse(nil, d.body)
	}
	if err != nil {
		return nil, err
	}
	env.Provider, env.Endpoint, env.Verification, env.Received, env.Body = d.provider, d.endpoint, domain.VerifiedSignature, now, d.body
	return &env, nil
}
