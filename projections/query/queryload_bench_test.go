package query

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// BenchmarkIndexLoad measures what a restart waits for before it answers
// lists: a new Query over stores that already hold b.N subscriptions
// (real reducer values, ~1.7 KB each, two per customer), from Run until
// Ready. Run it as
//
//	go test -run='^$' -bench=IndexLoad -benchtime=200000x ./projections/
//
// and read s-per-1M (the target is a restart with 1,000,000 records
// ready in under 30 s) and the load's heap (heap-MB, after a GC).
func BenchmarkIndexLoad(b *testing.B) {
	nc, js := natstest.Connect(b, natstest.Server(b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(b, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{}))
	projs := reducers.All(reducers.DefaultOptions())
	engine, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{})
	require.NoError(b, err)

	// One real stored subscription, its ids then replaced per record by
	// ids of the same length.
	const subID, cusID = "sub_bench000000000", "cus_bench000000000"
	var subs reducers.Projection
	for _, p := range projs {
		if p.Name() == domain.ProjectionSubscriptions {
			subs = p
		}
	}
	env := &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: "evt_bench", EventType: "customer.subscription.created",
		Created: time.Unix(1767225600, 0), Verification: domain.VerifiedSignature,
		Body: samples.Stripe{EventID: "evt_bench", Type: "customer.subscription.created", Status: "active", CustomerID: cusID, SubscriptionID: subID}.Event()}
	changes, err := subs.Apply(env, memLookup{})
	require.NoError(b, err)
	template := changes[reducers.SubscriptionKey("stripe", subID)]
	require.NotEmpty(b, template)

	bucket := engine.Store(domain.ProjectionSubscriptions).Bucket()
	for i := range b.N {
		sub, cus := fmt.Sprintf("sub_bench%09d", i), fmt.Sprintf("cus_bench%09d", i/2)
		v := bytes.ReplaceAll(bytes.ReplaceAll(template, []byte(subID), []byte(sub)), []byte(cusID), []byte(cus))
		_, err := js.PublishMsgAsync(&nats.Msg{Subject: "$KV." + bucket + "." + reducers.SubscriptionKey("stripe", sub), Data: v})
		require.NoError(b, err)
		if i%2000 == 1999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	_ = nc.Flush()

	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	q := New(engine, projs, "")
	qctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { q.Run(qctx); close(done) }()
	select {
	case <-q.Ready():
	case <-time.After(time.Duration(b.N/1000+30) * time.Second):
		b.Fatal("the index did not load in 10 minutes")
	}
	took := time.Since(start)
	b.StopTimer()
	require.Equal(b, b.N, q.view.Load().subs.Len())
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(took.Seconds()*1e6/float64(b.N), "s-per-1M")
	b.ReportMetric(float64(ms.HeapAlloc)/1e6, "heap-MB")
	b.ReportMetric(float64(len(template)), "value-B")
	stop()
	<-done
}

// memLookup is a reducers.Lookup over a map.
type memLookup map[string][]byte

func (m memLookup) Get(key string) ([]byte, error) { return m[key], nil }
