package reducers_test

import (
	"maps"
	"testing"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/reducers"
)

// BenchmarkRecordOf reads the record part of a stored subscription
// with a year of monthly history (the merge state the reducer keeps beside
// it): what the query API does for every record it answers.
func BenchmarkRecordOf(b *testing.B) {
	var subs reducers.Projection
	for _, p := range reducers.All(reducers.DefaultOptions()) {
		if p.Name() == domain.ProjectionSubscriptions {
			subs = p
		}
	}
	m := records{}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 12 {
		for _, s := range []samples.Stripe{
			{Type: "customer.subscription.updated", Status: []string{"active", "past_due"}[i%2], Created: t0.AddDate(0, i, 0)},
			{Type: "invoice.paid", Created: t0.AddDate(0, i, 1)},
		} {
			s.EventID = "evt_" + s.Type + s.Created.Format("20060102")
			changes, err := subs.Apply(&domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type,
				Created: s.Created, Body: s.Event()}, m)
			if err != nil {
				b.Fatal(err)
			}
			maps.Copy(m, changes)
		}
	}
	value := m[reducers.SubscriptionKey("stripe", "sub_1Q8wXrSampleB2")]
	rec, err := reducers.RecordOf(value)
	if err != nil || rec == nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(rec)), "record-bytes")
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reducers.RecordOf(value); err != nil {
			b.Fatal(err)
		}
	}
}
