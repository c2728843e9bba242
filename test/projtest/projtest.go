// Package projtest holds what the read side's tests (projections and its
// rooms) share: a journal of sample events, the wait for an engine's
// projectors to catch up with it, a store's contents read directly, and a
// quiet log. Only tests import it.
package projtest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
)

// AppendSamples journals every Stripe sample type for n customers, and
// one top-up whose metadata is invalid.
func AppendSamples(t testing.TB, j *ingest.Journal, n int) {
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

// WaitCaughtUp waits until every projector has acknowledged the journal,
// at most a minute: under -race the wallets projection folds the live
// load's top-ups of one user at about 50 events/s (each rewrites the whole
// wallet and the identity entries that list it).
func WaitCaughtUp(t testing.TB, e *projections.Engine) {
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

// StoreContents reads every record of generation 1 of a projection's store.
func StoreContents(t testing.TB, js jetstream.JetStream, projection string) map[string][]byte {
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

// QuietLog discards its lines, unless BILLFOLD_TEST_LOG is set.
var QuietLog = slog.New(slog.NewTextHandler(logOut(), nil))

func logOut() io.Writer {
	if os.Getenv("BILLFOLD_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// LimitRapidChecks runs n rapid checks in the calling test instead of
// rapid's default 100, unless -rapid.checks or RAPID_CHECKS asks for a
// number: each check of a test that starts real servers takes about a
// second.
func LimitRapidChecks(t *testing.T, n int) {
	t.Helper()
	f := flag.Lookup("rapid.checks")
	given := os.Getenv("RAPID_CHECKS") != ""
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == "rapid.checks" })
	if f == nil || given {
		return
	}
	old := f.Value.String()
	require.NoError(t, f.Value.Set(strconv.Itoa(n)))
	t.Cleanup(func() { _ = f.Value.Set(old) })
}
