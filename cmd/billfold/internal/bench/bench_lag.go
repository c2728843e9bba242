package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/kvstore"
)

// benchLag delivers at a steady --rate for --duration and measures, for
// each delivery, the time from its 200 to the first write of its event in
// the projection that shows it first (customers for customer and user
// events, subscriptions for subscription and invoice events, orders for
// checkouts). Writes are seen on the projection buckets' streams, as a KV
// watch sees them, by the Billfold-Event-Id header every record write
// carries. The limit is the same machine's KV put-to-watch latency.
func benchLag(ctx context.Context, b *benchRun) ([]benchRow, error) {
	o := b.o
	n := max(int(o.rate*o.duration.Seconds()), 1)
	work := workload(b.runID+"l", n, o.customers, time.Now())
	index := make(map[string]int, n)
	for i, d := range work {
		index[primaryProjection(d.eventType)+"/"+d.id] = i
	}

	var mu sync.Mutex
	seen := make([]time.Time, n)
	remaining := n
	all := make(chan struct{})
	for _, p := range []string{domain.ProjectionCustomers, domain.ProjectionSubscriptions, domain.ProjectionOrders} {
		stop, err := watchWrites(ctx, b.js, domain.ProjectionBucket(p, 1), func(eventID string, at time.Time) {
			i, ok := index[p+"/"+eventID]
			if !ok {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[i].IsZero() {
				seen[i] = at
				if remaining--; remaining == 0 {
					close(all)
				}
			}
		})
		if err != nil {
			return nil, err
		}
		defer stop()
	}

	acked := make([]time.Time, n)
	sent := measure("live lag", n, b.o.concurrency, o.rate, b.stderr, func(i int) error {
		resp, err := b.client.Do(work[i].request(b.public, time.Now()))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		acked[i] = time.Now()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("delivery %s: %s", work[i].id, resp.Status)
		}
		return nil
	})
	if sent.failed > 0 {
		return nil, fmt.Errorf("%d of %d deliveries were not accepted: %v", sent.failed, n, sent.err)
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mu.Lock()
	var lag latencies
	missing := 0
	for i := range work {
		if seen[i].IsZero() {
			missing++
			continue
		}
		// A write can be seen before the sender has read its 200: the
		// projection was readable at the answer, a lag of zero.
		lag = append(lag, max(seen[i].Sub(acked[i]), 0))
	}
	mu.Unlock()

	floor, err := kvPutToWatch(ctx, b, min(n, max(int(o.rate*5), 1)))
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d deliveries at %.0f/s offered, %.0f/s achieved", n, o.rate, sent.rate)
	if missing > 0 {
		note += fmt.Sprintf("; %d never seen in their projection within 30 s, left out", missing)
	}
	const limitOf = "KV put to watch on the same machine, same rate"
	return []benchRow{
		benchRow{Figure: "200 to readable p50", Unit: "ms", Value: lag.p(50)}.withLimit(floor.p(50), limitOf),
		benchRow{Figure: "200 to readable p99", Unit: "ms", Value: lag.p(99), Note: note}.withLimit(floor.p(99), limitOf).
			withTarget(fmt.Sprintf("< 50 ms at 1,000/s (run at %.0f/s)", o.rate), lag.p(99) < 50 && len(lag) > 0 && missing == 0),
		{Figure: "200 to readable max", Unit: "ms", Value: lag.p(100)},
	}, nil
}

// watchWrites calls seen with the cause event id of every write to bucket
// from now on, as it is delivered: an ordered consumer of the bucket's
// stream, headers only, which is what a KV watch is, with the headers.
func watchWrites(ctx context.Context, js jetstream.JetStream, bucket string, seen func(eventID string, at time.Time)) (stop func(), err error) {
	s, err := js.Stream(ctx, domain.BucketStream(bucket))
	if err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy, HeadersOnly: true})
	if err != nil {
		return nil, err
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		seen(m.Headers().Get(kvstore.HeaderEventID), time.Now())
	})
	if err != nil {
		return nil, err
	}
	return cc.Stop, nil
}

// kvPutToWatch puts n values of a record's size into a scratch KV bucket at
// the lag phase's rate and times each from the put to a watcher seeing it:
// the floor under any "written, then observed" path on this machine.
func kvPutToWatch(ctx context.Context, b *benchRun, n int) (latencies, error) {
	name := "BILLFOLD_BENCH_KV_" + b.runID
	kv, err := b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, Storage: jetstream.FileStorage, History: kvstore.RecordHistory})
	if err != nil {
		return nil, err
	}
	defer func() { _ = b.js.DeleteKeyValue(context.WithoutCancel(ctx), name) }()
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	value := make([]byte, 2048)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	var mu sync.Mutex
	started := make(map[string]time.Time, n)
	var lat latencies
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			lat = append(lat, now.Sub(started[e.Key()]))
			got := len(lat)
			mu.Unlock()
			if got == n {
				return
			}
		}
	}()
	m := measure("KV put to watch floor", n, b.o.concurrency, b.o.rate, b.stderr, func(i int) error {
		key := fmt.Sprintf("k%08d", i)
		mu.Lock()
		started[key] = time.Now()
		mu.Unlock()
		_, err := kv.Put(ctx, key, value)
		return err
	})
	if m.failed > 0 {
		return nil, fmt.Errorf("KV floor: %d puts failed: %v", m.failed, m.err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("KV floor: the watcher saw only some of %d puts in 30 s", n)
	}
	return lat, nil
}
