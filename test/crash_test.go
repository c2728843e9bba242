package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// Exactly-once effect under crashes: billfold is SIGKILLed again and again
// at random points while its projectors fold the journal; once it has
// caught up, every record of every projection equals a clean fold of the
// journal. A write whose ack was lost, or a crash between the writes of
// one event, must neither apply an event twice nor lose one.
func TestProjectorsSurviveKills(t *testing.T) {
	url := externalNATS(t)
	nc, js := natstest.ConnectURL(t, url)
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))

	// A journal of many customers' lives, in one-second steps so that
	// same-second tie-breaks are exercised too.
	journal := ingest.NewJournal(nc, js)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	types := samples.StripeTypes()
	const customers = 150
	for c := range customers {
		for i, typ := range types {
			s := samples.Stripe{
				EventID: fmt.Sprintf("evt_%d_%d", c, i), Type: typ, Created: base.Add(time.Duration(i/3) * time.Second),
				CustomerID: fmt.Sprintf("cus_%d", c), SubscriptionID: fmt.Sprintf("sub_%d", c),
			}
			_, err := journal.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: typ,
				Created: s.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event()})
			require.NoError(t, err)
		}
	}
	total := uint64(customers * len(types))

	srv := startServer(t, t.TempDir(), nil, "--nats-url", url)
	kills := 0
	for kills < 8 && projectorLag(ctx, js) > 0 {
		time.Sleep(time.Duration(20+rand.IntN(200)) * time.Millisecond)
		srv.restart()
		kills++
	}
	waitProjected(t, js, srv)
	t.Logf("killed billfold %d times while folding %d events", kills, total)
	require.GreaterOrEqual(t, kills, 2, "the test must kill billfold mid-stream; fold more events")

	want, _, err := projections.FoldJournal(ctx, js, reducers.All(reducers.DefaultOptions()))
	require.NoError(t, err)
	for _, p := range domain.Projections {
		kv, err := js.KeyValue(ctx, domain.ProjectionBucket(p, 1))
		require.NoError(t, err)
		keys, err := kv.ListKeys(ctx)
		require.NoError(t, err)
		n := 0
		for k := range keys.Keys() {
			n++
			e, err := kv.Get(ctx, k)
			require.NoError(t, err)
			require.JSONEq(t, string(want[p][k]), string(e.Value()), "%s %s", p, k)
		}
		require.Equal(t, len(want[p]), n, "%s: same records", p)
	}
}
