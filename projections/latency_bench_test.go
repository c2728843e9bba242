package projections_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// BenchmarkLiveLatency measures how long after its journal append (the
// moment billfold answers 200) an event's effect is readable in its
// projection, at a steady 1,000 events/s with all four projections
// running. Run it as:
//
//	go test -run='^$' -bench=LiveLatency -benchtime=5000x ./projections/
//
// and read p50-ms and p99-ms (the target is a p99 under 50 ms).
func BenchmarkLiveLatency(b *testing.B) {
	nc, js := natstest.Connect(b, natstest.Server(b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(b, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	engine, err := projections.NewEngine(ctx, js, reducers.All(reducers.DefaultOptions()),
		projections.EngineOptions{Replicas: 1, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	var wg sync.WaitGroup
	wg.Go(func() { engine.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	kv, err := js.KeyValue(ctx, domain.ProjectionBucket(domain.ProjectionCustomers, 1))
	require.NoError(b, err)
	watcher, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	require.NoError(b, err)
	var mu sync.Mutex
	seen := map[string]time.Time{}
	wg.Go(func() {
		for e := range watcher.Updates() {
			if e != nil {
				mu.Lock()
				seen[e.Key()] = time.Now()
				mu.Unlock()
			}
		}
	})
	defer func() { _ = watcher.Stop() }()

	journal := ingest.NewJournal(nc, js)
	acked := make(map[string]time.Time, b.N)
	tick := time.NewTicker(time.Millisecond) // 1,000 events/s
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		cus := fmt.Sprintf("cus_lat_%d", i)
		s := samples.Stripe{EventID: fmt.Sprintf("evt_lat_%d", i), Type: "customer.created", Created: time.Now(), CustomerID: cus}
		_, err := journal.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type,
			Created: s.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event()})
		require.NoError(b, err)
		acked[reducers.CustomerKey("stripe", cus)] = time.Now()
	}
	require.Eventually(b, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= b.N }, 60*time.Second, 10*time.Millisecond)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	lat := make([]float64, 0, b.N)
	for k, at := range acked {
		lat = append(lat, float64(seen[k].Sub(at).Microseconds())/1000)
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
}
