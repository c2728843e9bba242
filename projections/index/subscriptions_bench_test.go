package index

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/billfold/billfold/domain"
)

// BenchmarkListFirstPage measures a filtered first page (100 records)
// over an index of 1,000,000 subscriptions: the index part of GET
// /v1/subscriptions. It reports how long the million inserts took
// (load-s, a restarted process's index load without the reads, in bulk
// as Query does), the heap
// the index holds (index-MB) and how long one full garbage collection
// takes with it live (gc-ms), the work every GC cycle of a serving process
// repeats.
func BenchmarkListFirstPage(b *testing.B) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	x := NewSubscriptions()
	rng := rand.New(rand.NewPCG(3, 4))
	providers := []string{"stripe", "braintree"}
	const n = 1_000_000
	load := time.Now()
	x.StartLoad()
	for i := range n {
		p := providers[rng.IntN(2)]
		id := fmt.Sprintf("sub_%08d", rng.IntN(1<<31))
		x.Put(Subscription{Key: domain.AggregateID(p, "subscription", id), Provider: p, ID: id, Customer: fmt.Sprintf("cus_%d", i%300_000),
			State: domain.LifecycleStates[rng.IntN(len(domain.LifecycleStates))]})
	}
	x.FinishLoad()
	loadTook := time.Since(load)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	gc0 := time.Now()
	runtime.GC()
	gc := time.Since(gc0)
	filters := []Filter{
		{State: domain.StatePastDue, Provider: "stripe"},
		{State: domain.StateActive},
		{State: domain.StateEnded, Provider: "braintree"},
		{Provider: "braintree"},
		{Customer: "cus_1234", State: domain.StateActive},
	}
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		page, _ := x.List(filters[i%len(filters)], 100, nil)
		durations = append(durations, time.Since(start))
		if len(page) == 0 && filters[i%len(filters)].Customer == "" {
			b.Fatal("empty page")
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	p99 := durations[min(len(durations)-1, len(durations)*99/100)]
	b.ReportMetric(float64(p99.Nanoseconds())/1e6, "p99-ms")
	b.ReportMetric(loadTook.Seconds(), "load-s")
	b.ReportMetric(float64(m1.HeapAlloc-min(m0.HeapAlloc, m1.HeapAlloc))/(1<<20), "index-MB")
	b.ReportMetric(float64(gc.Microseconds())/1e3, "gc-ms")
	b.ReportMetric(float64(x.Bytes())/(1<<20), "accounted-MB")
	runtime.KeepAlive(x)
}
