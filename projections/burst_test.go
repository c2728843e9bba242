package projections_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// The batched fold equals the one-event-at-a-time fold: over generated
// histories (Stripe events of a few customers in any order, Clerk users,
// same-second events), each projection folded by one projector taking one
// event at a time, and by two projectors sharing a consumer and folding in
// bursts of random size (several billfold processes racing each other's
// compare-and-set writes), stores the same records.
func TestBatchedFoldEqualsOneAtATime(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	_, err := js.CreateOrUpdateStream(ctx, deadletter.StreamConfig(1))
	require.NoError(t, err)
	journal := ingest.NewJournal(nc, js)
	projs := reducers.All(reducers.DefaultOptions())
	check := 0

	rapid.Check(t, func(rt *rapid.T) {
		check++
		gen := 2 * check // this check's generations: gen one at a time, gen+1 in bursts
		stream, err := js.Stream(ctx, domain.JournalStream)
		require.NoError(rt, err)
		info, err := stream.Info(ctx)
		require.NoError(rt, err)
		from := info.State.LastSeq + 1

		for _, env := range drawHistory(rt, check) {
			appendEnvelope(rt, journal, env)
		}
		batch := rapid.IntRange(2, 64).Draw(rt, "batch")

		var wg sync.WaitGroup
		buckets := make([][2]string, len(projs))
		errs := make([]error, len(projs))
		for i, p := range projs {
			wg.Go(func() {
				var one, burst string
				one, errs[i] = runProjectors(js, p, gen, from, 1, 1)
				if errs[i] == nil {
					burst, errs[i] = runProjectors(js, p, gen+1, from, batch, 2)
				}
				buckets[i] = [2]string{one, burst}
			})
		}
		wg.Wait()
		defer func() {
			for _, b := range buckets {
				for _, name := range b {
					_ = js.DeleteKeyValue(context.Background(), name)
				}
			}
		}()
		for i, p := range projs {
			require.NoError(rt, errs[i], p.Name())
			sameRecords(rt, p.Name(), bucketContents(rt, js, buckets[i][0]), bucketContents(rt, js, buckets[i][1]), "in bursts")
		}
	})
}

// sameRecords fails rt unless other holds the records of one, a
// projection's records folded one event at a time.
func sameRecords(rt *rapid.T, projection string, one, other map[string]string, how string) {
	rt.Helper()
	for k, v := range one {
		if other[k] != v {
			rt.Fatalf("%s %s:\none at a time: %s\n%s: %s", projection, k, v, how, other[k])
		}
	}
	for k := range other {
		if _, ok := one[k]; !ok {
			rt.Fatalf("%s %s only %s: %s", projection, k, how, other[k])
		}
	}
}

// drawHistory draws the journal events of a generated history for the
// check'th check: Stripe events of a few customers in any order (with
// top-ups or not, several events of one object in one second), and Clerk
// users.
func drawHistory(rt *rapid.T, check int) []*domain.Envelope {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	types := samples.StripeTypes()
	var events []*domain.Envelope
	for c := range rapid.IntRange(1, 4).Draw(rt, "customers") {
		// Sample objects' ids derive from type and time: an hour per
		// customer keeps customers' objects apart, while a customer's
		// events of one type and second are events of one object.
		at := base.Add(time.Duration(check*10+c) * time.Hour)
		topUps := rapid.Bool().Draw(rt, "top-ups")
		for i := range rapid.IntRange(1, 12).Draw(rt, "events") {
			typ := rapid.SampledFrom(types).Draw(rt, "type")
			s := samples.Stripe{EventID: fmt.Sprintf("evt_%d_%d_%d", check, c, i), Type: typ,
				Created:    at.Add(time.Duration(rapid.IntRange(0, 2).Draw(rt, "second")) * time.Second),
				CustomerID: fmt.Sprintf("cus_%d_%d", check, c), SubscriptionID: fmt.Sprintf("sub_%d_%d", check, c)}
			// Every event of a session carries the session's metadata.
			if strings.HasPrefix(typ, "checkout.session.") && topUps {
				s.Object = map[string]any{"metadata": map[string]any{"user_id": fmt.Sprintf("user_%d_%d", check, c), "credits": "100"}}
			}
			events = append(events, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID,
				EventType: typ, Created: s.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event()})
		}
		if rapid.Bool().Draw(rt, "user") {
			typ := rapid.SampledFrom([]string{"user.created", "user.updated", "user.deleted"}).Draw(rt, "user type")
			events = append(events, &domain.Envelope{Provider: domain.Clerk, Endpoint: "clerk", EventID: fmt.Sprintf("msg_%d_%d", check, c),
				EventType: typ, Created: at, Received: time.Now(), Verification: domain.VerifiedSignature,
				Body: samples.ClerkUser(typ, fmt.Sprintf("user_%d_%d", check, c), at)})
		}
	}
	return events
}

func appendEnvelope(t require.TestingT, j *ingest.Journal, env *domain.Envelope) {
	_, err := j.Append(context.Background(), env)
	require.NoError(t, err)
}

// runProjectors folds the journal from sequence from into a new store of
// p's generation gen with n projectors folding up to batch events at once,
// and returns the store's bucket once they have caught up. It runs on a
// goroutine of its own: it returns its failure rather than failing the
// test.
func runProjectors(js jetstream.JetStream, p reducers.Projection, gen int, from uint64, batch, n int) (string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var bucket, durable string
	defer func() {
		cancel()
		wg.Wait()
		// The journal bounds its consumers: leave none behind.
		_ = js.DeleteConsumer(context.Background(), domain.JournalStream, durable)
	}()
	for range n {
		// Each its own Store, as each billfold process has its own cache.
		s, err := kvstore.EnsureStore(ctx, js, p.Name(), gen, 1)
		if err != nil {
			return "", err
		}
		pr := projections.NewProjector(p, js, s, nil, projtest.QuietLog, projections.RetryPolicy{}).
			From(from).Batch(batch)
		if _, err = pr.EnsureConsumer(ctx); err != nil {
			return "", err
		}
		bucket, durable = s.Bucket(), pr.Durable()
		wg.Go(func() { _ = pr.Run(ctx) })
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		// A slow answer on a loaded machine is asked again, until the
		// deadline.
		c, err := js.Consumer(ctx, domain.JournalStream, durable)
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return bucket, nil
			} else if err == nil {
				err = fmt.Errorf("%s still behind: %d pending, %d unacknowledged", durable, info.NumPending, info.NumAckPending)
			}
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mustBucket(t require.TestingT, js jetstream.JetStream, bucket string) jetstream.KeyValue {
	kv, err := js.KeyValue(context.Background(), bucket)
	require.NoError(t, err)
	return kv
}

// bucketContents reads every record of a bucket.
func bucketContents(t require.TestingT, js jetstream.JetStream, bucket string) map[string]string {
	ctx := context.Background()
	kv := mustBucket(t, js, bucket)
	out := map[string]string{}
	keys, err := kv.ListKeys(ctx)
	require.NoError(t, err)
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		require.NoError(t, err)
		out[k] = string(e.Value())
	}
	return out
}
