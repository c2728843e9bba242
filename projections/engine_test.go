package projections_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// journalSamples journals every Stripe sample type for n customers, and
// one top-up whose metadata is invalid.
func journalSamples(t *testing.T, j *ingest.Journal, n int) {
	t.Helper()
	ctx := context.Background()
	appendStripe := func(s samples.Stripe) {
		_, err := j.Append(ctx, &domain.Envelope{
			Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type, Created: s.Created,
			Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event(),
		})
		require.NoError(t, err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for c := range n {
		for i, typ := range samples.StripeTypes() {
			appendStripe(samples.Stripe{
				EventID: fmt.Sprintf("evt_%d_%d", c, i), Type: typ, Created: base.Add(time.Duration(i) * time.Minute),
				CustomerID: fmt.Sprintf("cus_%d", c), SubscriptionID: fmt.Sprintf("sub_%d", c),
			})
		}
	}
	appendStripe(samples.Stripe{EventID: "evt_bad_topup", Type: "checkout.session.completed", Created: base, CustomerID: "cus_bad",
		Object: map[string]any{"metadata": map[string]any{"user_id": "user_1", "credits": "lots"}}})
}

// waitCaughtUp waits until every projector has acknowledged the journal,
// at most a minute: under -race the wallets projection folds the live
// load's top-ups of one user at about 50 events/s (each rewrites the whole
// wallet and the identity entries that list it).
func waitCaughtUp(t testing.TB, e *projections.Engine) {
	t.Helper()
	require.Eventually(t, func() bool {
		lag, err := e.Lag(context.Background())
		if err != nil {
			return false
		}
		for _, l := range lag {
			if l > 0 {
				return false
			}
		}
		return true
	}, time.Minute, 20*time.Millisecond)
}

// storeContents reads every record of a projection's store.
func storeContents(t *testing.T, js jetstream.JetStream, projection string) map[string][]byte {
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, domain.ProjectionBucket(projection, 1))
	require.NoError(t, err)
	out := map[string][]byte{}
	keys, err := kv.ListKeys(ctx)
	require.NoError(t, err)
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		require.NoError(t, err)
		out[k] = e.Value()
	}
	return out
}

// Invariant 4 and exactly-once effect: two engines projecting the same
// journal at once (two billfold processes) leave every store equal to a
// clean fold of the journal, and the refused event is a dead letter once.
func TestTwoEnginesEqualACleanFold(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	journalSamples(t, ingest.NewJournal(nc, js), 20)

	projs := reducers.All(reducers.DefaultOptions())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var engines []*projections.Engine
	var wg sync.WaitGroup
	for range 2 {
		e, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1, Log: log, Retry: projections.RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 10 * time.Millisecond}})
		require.NoError(t, err)
		engines = append(engines, e)
		wg.Go(func() { e.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitCaughtUp(t, engines[0])

	want, refused, err := projections.FoldJournal(ctx, js, projs)
	require.NoError(t, err)
	for _, p := range projs {
		got := storeContents(t, js, p.Name())
		assert.Equal(t, len(want[p.Name()]), len(got), p.Name())
		for k, v := range want[p.Name()] {
			assert.JSONEq(t, string(v), string(got[k]), "%s %s", p.Name(), k)
		}
	}
	require.Contains(t, refused[domain.ProjectionWallets], "evt_bad_topup")
	assert.Equal(t, domain.CodeReducerInvalid, domain.ErrorCode(refused[domain.ProjectionWallets]["evt_bad_topup"]))

	dl, err := js.Stream(ctx, domain.DeadLetterStream)
	require.NoError(t, err)
	dlInfo, err := dl.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), dlInfo.State.Msgs, "the refused event is dead-lettered once")

}
