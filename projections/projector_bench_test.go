package projections_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// BenchmarkProjectorLoop measures the live projector loop: b.N journaled
// Stripe subscription and invoice events (about 1.5 to 2.5 KB, over 1,000
// subscriptions) folded by one Projector running the subscriptions reducer
// into its KV store, on an embedded JetStream server. The clock runs from
// the projector's start to the acknowledgement of the last event, so it
// covers the pull, the envelope decode, the record read, the reducer, the
// compare-and-set write and the ack. Allocations include the in-process
// server's. Run it as:
//
//	go test -run='^$' -bench=ProjectorLoop -benchtime=5000x ./projections/
func BenchmarkProjectorLoop(b *testing.B) {
	f := newFixture(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	types := []string{"customer.subscription.created", "invoice.paid", "customer.subscription.updated", "invoice.payment_failed"}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range b.N {
		s := samples.Stripe{EventID: fmt.Sprintf("evt_loop_%08d", i), Type: types[(i/1000)%len(types)], Created: t0.Add(time.Duration(i) * time.Second),
			CustomerID: fmt.Sprintf("cus_loop_%04d", i%1000), SubscriptionID: fmt.Sprintf("sub_loop_%04d", i%1000)}
		_, err := f.journal.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type,
			Created: s.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event()})
		require.NoError(b, err)
	}
	var proj reducers.Projection
	for _, p := range reducers.All(reducers.DefaultOptions()) {
		if p.Name() == domain.ProjectionSubscriptions {
			proj = p
		}
	}
	store, err := kvstore.EnsureStore(ctx, f.js, proj.Name(), 1, 1)
	require.NoError(b, err)
	pr := projections.NewProjector(proj, f.js, store, nil, f.log, projections.RetryPolicy{})
	consumer, err := pr.EnsureConsumer(ctx)
	require.NoError(b, err)

	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	wg.Go(func() { _ = pr.Run(ctx) })
	for {
		info, err := consumer.Info(ctx)
		require.NoError(b, err)
		if info.AckFloor.Stream >= uint64(b.N) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
