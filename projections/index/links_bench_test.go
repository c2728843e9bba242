package index

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/billfold/billfold/domain"
)

// BenchmarkLinksSize measures the customers-by-link and orders index at
// the scale of a million subscriptions (500,000 customers with two
// subscriptions and one user link each, and 500,000 orders): the heap it
// holds (index-MB), one full garbage collection with it live (gc-ms), the
// work every GC cycle of a serving process repeats, and a customer's
// linked identities and orders (the index part of GET
// /v1/customers/{provider}/{id}/orders) per op. Run it as
//
//	go test -run='^$' -bench=LinksSize -benchtime=1000x ./projections/index/
func BenchmarkLinksSize(b *testing.B) {
	const customers, orders = 500_000, 500_000
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	x := NewLinks()
	load := time.Now()
	for i := range customers {
		who := Customer{"stripe", fmt.Sprintf("cus_bench%09d", i)}
		x.PutCustomer(domain.AggregateID(who.Provider, "customer", who.ID), who,
			[]domain.Link{{Kind: "user_id", Value: fmt.Sprintf("user_%09d", i)}})
	}
	for i := range orders {
		id := fmt.Sprintf("cs_bench%09d", i)
		x.PutOrder(domain.AggregateID("stripe", "order", id), Position{Provider: "stripe", ID: id},
			Customer{"stripe", fmt.Sprintf("cus_bench%09d", i%customers)}, nil)
	}
	loadTook := time.Since(load)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	gc0 := time.Now()
	runtime.GC()
	gc := time.Since(gc0)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ids, known := x.Identities(Customer{"stripe", fmt.Sprintf("cus_bench%09d", i%customers)}, 1000)
		if !known || len(x.OrdersOf(ids)) == 0 {
			b.Fatal("a known customer without its order")
		}
	}
	b.StopTimer()
	b.ReportMetric(loadTook.Seconds(), "load-s")
	b.ReportMetric(float64(m1.HeapAlloc-min(m0.HeapAlloc, m1.HeapAlloc))/(1<<20), "index-MB")
	b.ReportMetric(float64(gc.Microseconds())/1e3, "gc-ms")
	b.ReportMetric(float64(x.Bytes())/(1<<20), "accounted-MB")
	runtime.KeepAlive(x)
}
