package rebuild_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// benchJournal journals events Stripe sample events over customers, with
// asynchronous publishes (the journal's dedupe is not what is measured).
func benchJournal(b *testing.B, f *replayFixture, events, customers int) {
	b.Helper()
	types := samples.StripeTypes()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var futures []jetstream.PubAckFuture
	for i := range events {
		c := i % customers
		s := samples.Stripe{EventID: fmt.Sprintf("evt_%d", i), Type: types[(i/customers)%len(types)], Created: base.Add(time.Duration(i) * time.Second),
			CustomerID: fmt.Sprintf("cus_%d", c), SubscriptionID: fmt.Sprintf("sub_%d", c),
			Object: map[string]any{"metadata": map[string]any{"user_id": fmt.Sprintf("user_%d", c), "credits": "100"}}}
		env := &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type, Created: s.Created,
			Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event()}
		msg := &nats.Msg{Subject: env.JournalSubject(), Header: nats.Header{}, Data: env.Body}
		env.EncodeHeader(msg.Header)
		fut, err := f.js.PublishMsgAsync(msg)
		require.NoError(b, err)
		futures = append(futures, fut)
	}
	for _, fut := range futures {
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			b.Fatal(err)
		}
	}
}

// BenchmarkRebuild measures a full rebuild of every projection: journal
// events folded per second (fold, write of the new generation, catch-up and
// switch), beside the ordered-read ceiling of the same journal.
//
//	go test ./projections -run '^$' -bench BenchmarkRebuild -benchtime 3x
func BenchmarkRebuild(b *testing.B) {
	const events, customers = 20_000, 2_000
	nc, js := natstest.Connect(b, natstest.Server(b))
	f := newReplayFixture(b, nc, js, reducers.DefaultOptions(), time.Hour)
	benchJournal(b, f, events, customers)
	projtest.WaitCaughtUp(b, f.engine)
	ctx := context.Background()

	start := time.Now()
	n := 0
	require.NoError(b, projections.EachJournalEvent(ctx, js, func(*domain.Envelope) error { n++; return nil }))
	ceiling := float64(n) / time.Since(start).Seconds()

	b.ResetTimer()
	var folded uint64
	for b.Loop() {
		rb, _, err := f.rebuilds.Start(ctx, rebuild.RebuildRequest{Force: true}, "bench")
		require.NoError(b, err)
		for !rb.Finished() {
			time.Sleep(10 * time.Millisecond)
			rb, err = f.rebuilds.Get(ctx, rb.ID)
			require.NoError(b, err)
		}
		require.Equal(b, rebuild.RebuildDone, rb.Status, rb.Error)
		folded += rb.Folded
	}
	rate := float64(folded) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(ceiling, "ordered-read-events/s")
	b.ReportMetric(rate/ceiling, "ratio")
}
