package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/test/natstest"
)

// The console's pages, its overview and billfold doctor read the newest
// delivery log entries through DeliveryLog.Newest: paging back from the
// newest reads every entry the log holds exactly once, newest first, over
// more than one batched direct get, skipping entries the log discarded;
// an entry that does not decode is counted as read but not shown; and no
// read leaves a consumer behind.
func TestDeliveryLogNewestPagesTheWholeLog(t *testing.T) {
	f := newLedgerFixture(t)
	ctx := context.Background()
	const n = 2*jsio.RangeBatch + 77
	publishDeliveries(t, f.js, n)
	_, err := f.js.Publish(ctx, domain.DeliverySubject("stripe", "evt_garbled"), []byte("not a delivery"))
	require.NoError(t, err)
	s, err := f.js.Stream(ctx, domain.DeliveryStream)
	require.NoError(t, err)
	// Entry i is at sequence i+1; the garbled one at n+1. Delete one in
	// the middle of a batch and the first of the second batch.
	deleted := map[int]bool{700: true, jsio.RangeBatch: true}
	for i := range deleted {
		require.NoError(t, s.DeleteMsg(ctx, uint64(i+1)))
	}
	var want []string // newest first
	for i := n - 1; i >= 0; i-- {
		if !deleted[i] {
			want = append(want, fmt.Sprintf("evt_%04d", i))
		}
	}
	before := consumerCounts(t, f.js)
	log := NewDeliveryLog(f.js)

	var got []string
	var older uint64
	pages := 0
	for {
		page, err := log.Newest(ctx, older, 1000)
		require.NoError(t, err)
		pages++
		for _, e := range page.Entries {
			assert.Equal(t, fmt.Sprintf("evt_%04d", e.Seq-1), e.EventID, "an entry's sequence is its place in the log")
			got = append(got, e.EventID)
		}
		if pages == 1 {
			assert.Equal(t, 1000, page.Read, "the garbled entry is read")
			assert.Len(t, page.Entries, 999, "but not shown")
		}
		if page.Older == 0 {
			break
		}
		require.Less(t, pages, 10, "paging ends")
		older = page.Older
	}
	assert.Equal(t, 3, pages, "1,000 sequences a page over 2,126")
	assert.Equal(t, want, got, "every entry once, newest first")

	all, err := log.Newest(ctx, 0, 5000)
	require.NoError(t, err)
	assert.Equal(t, n-len(deleted)+1, all.Read)
	assert.Zero(t, all.Older, "nothing older")
	assert.True(t, slices.IsSortedFunc(all.Entries, func(a, b DeliveryEntry) int { return int(b.Seq) - int(a.Seq) }))
	assert.Equal(t, len(want), len(all.Entries), "every entry in one read")

	assert.Equal(t, before, consumerCounts(t, f.js), "no read left a consumer behind")
}

// BenchmarkDeliveryLogNewest reads billfold doctor's 5,000 newest entries:
// with Newest's batched direct gets, and with one direct get per entry
// (the doctor's read before DeliveryLog) for comparison.
func BenchmarkDeliveryLogNewest(b *testing.B) {
	_, js := natstest.Connect(b, natstest.Server(b))
	require.NoError(b, ingest.EnsureStreams(context.Background(), js, ingest.StreamOptions{}))
	f := &ledgerFixture{js: js}
	const n = 5000
	publishDeliveries(b, f.js, n)
	ctx := context.Background()
	b.Run("batched", func(b *testing.B) {
		log := NewDeliveryLog(f.js)
		for b.Loop() {
			page, err := log.Newest(ctx, 0, n)
			if err != nil || page.Read != n {
				b.Fatal(page.Read, err)
			}
		}
	})
	b.Run("one-get-per-entry", func(b *testing.B) {
		for b.Loop() {
			read, _, err := jsio.EachOnSubject(ctx, f.js, domain.DeliveryStream, ">", 1, n, func(m *jetstream.RawStreamMsg) {
				var d domain.Delivery
				_ = json.Unmarshal(m.Data, &d)
			})
			if err != nil || read != n {
				b.Fatal(read, err)
			}
		}
	})
}

// publishDeliveries appends n accepted deliveries to the delivery log,
// evt_0000 to evt_<n-1> at sequences 1 to n of a new log, received a
// second apart.
func publishDeliveries(tb testing.TB, js jetstream.JetStream, n int) {
	tb.Helper()
	for i := range n {
		id := fmt.Sprintf("evt_%04d", i)
		d, err := json.Marshal(domain.Delivery{Provider: domain.Stripe, Endpoint: "stripe", EventID: id,
			Outcome: domain.OutcomeAccepted, Attempt: 1, Received: time.Unix(1700000000+int64(i), 0).UTC()})
		require.NoError(tb, err)
		_, err = js.PublishAsync(domain.DeliverySubject("stripe", id), d)
		require.NoError(tb, err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		tb.Fatal("publishes not acknowledged")
	}
}
