package rebuild_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// countGroups is the model of the groups: the dead letters a full read of
// the stream finds, counted by code and projection.
func countGroups(dls []deadletter.Letter) map[string]int {
	out := map[string]int{}
	for _, dl := range dls {
		out[string(dl.Code)+" "+dl.Projection]++
	}
	return out
}

func groupsOf(open query.OpenDeadLetters) map[string]int {
	out := map[string]int{}
	for _, g := range open.Groups {
		out[string(g.Code)+" "+g.Projection] += g.Count
	}
	return out
}

// The query's dead-letter index counts what a full read of the
// dead-letter stream finds, lists a page of the filter's oldest, and
// answers each request with every dead letter written before it: a
// requeue's resolution shows at once, in a process that started after
// the dead letters were written.
func TestOpenDeadLettersCountWhatTheStreamHolds(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	broken := reducers.DefaultOptions()
	broken.FailTypes = []string{"checkout.session.completed"}
	f := newReplayFixture(t, nc, js, broken, time.Hour)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for u := range 4 {
		f.append(samples.Stripe{EventID: fmt.Sprintf("evt_topup_%d", u), Type: "checkout.session.completed", Created: base, CustomerID: fmt.Sprintf("cus_%d", u),
			Object: map[string]any{"id": fmt.Sprintf("cs_%d", u), "payment_intent": fmt.Sprintf("pi_%d", u),
				"metadata": map[string]any{"user_id": fmt.Sprintf("user_%d", u), "credits": "100"}}})
	}
	projtest.WaitCaughtUp(t, f.engine)
	ctx := context.Background()
	model, err := f.engine.DeadLetters(ctx, deadletter.Filter{})
	require.NoError(t, err)
	require.Len(t, model, 12, "four top-ups fail in customers, orders and wallets")

	open, err := f.query.OpenDeadLetters(ctx, deadletter.Filter{}, 0)
	require.NoError(t, err)
	assert.Equal(t, len(model), open.Total)
	assert.Equal(t, countGroups(model), groupsOf(open))
	assert.Empty(t, open.Items, "a limit of 0 reads none")

	page, err := f.query.OpenDeadLetters(ctx, deadletter.Filter{Projection: domain.ProjectionOrders}, 2)
	require.NoError(t, err)
	assert.Equal(t, 4, page.Matched)
	require.Len(t, page.Items, 2, "the page's limit")
	var orders []deadletter.Letter
	for _, dl := range model {
		if dl.Projection == domain.ProjectionOrders {
			orders = append(orders, dl)
		}
	}
	for _, dl := range page.Items {
		assert.Equal(t, domain.ProjectionOrders, dl.Projection)
		assert.Contains(t, orders, dl, "as the stream holds it")
	}
	assert.False(t, page.Items[1].FailedAt.Before(page.Items[0].FailedAt), "oldest failure first")
	for _, dl := range orders {
		if dl.ID != page.Items[0].ID && dl.ID != page.Items[1].ID {
			assert.False(t, dl.FailedAt.Before(page.Items[1].FailedAt), "the page holds the oldest")
		}
	}
	f.stop()

	// After the fix, a new process: its index loads from the stream, and
	// shows a requeue's outcome in the next answer.
	fixed := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Hour)
	open, err = fixed.query.OpenDeadLetters(ctx, deadletter.Filter{}, 0)
	require.NoError(t, err)
	assert.Equal(t, countGroups(model), groupsOf(open), "loaded from the stream")
	res, err := fixed.engine.RequeueWhere(ctx, deadletter.Filter{Projection: domain.ProjectionWallets}, "alice", false, true)
	require.NoError(t, err)
	require.Equal(t, 4, res.Applied)
	open, err = fixed.query.OpenDeadLetters(ctx, deadletter.Filter{}, 100)
	require.NoError(t, err)
	left, err := fixed.engine.DeadLetters(ctx, deadletter.Filter{})
	require.NoError(t, err)
	assert.Len(t, left, 8)
	assert.Equal(t, countGroups(left), groupsOf(open), "the requeued wallets' dead letters are gone")
	assert.Equal(t, 8, open.Total)
	assert.ElementsMatch(t, left, open.Items)

	// The doctor's summary: per code, the count, the projections, and the
	// newest failure, as a full read of the stream gives them.
	codes, err := fixed.query.OpenDeadLetterCodes(ctx)
	require.NoError(t, err)
	want := map[domain.Code]map[string]int{}
	newest := map[domain.Code]time.Time{}
	for _, dl := range left {
		if want[dl.Code] == nil {
			want[dl.Code] = map[string]int{}
		}
		want[dl.Code][dl.Projection]++
		if dl.FailedAt.After(newest[dl.Code]) {
			newest[dl.Code] = dl.FailedAt
		}
	}
	require.Len(t, codes, len(want))
	for _, c := range codes {
		assert.Equal(t, want[c.Code], c.Projections, c.Code)
		n := 0
		for _, k := range want[c.Code] {
			n += k
		}
		assert.Equal(t, n, c.Count, c.Code)
		assert.Contains(t, left, c.Newest, "a dead letter as the stream holds it")
		assert.True(t, c.Newest.FailedAt.Equal(newest[c.Code]), "%s: the newest failure", c.Code)
	}
}

// BenchmarkOpenDeadLetters compares the console's reads of the open dead
// letters (the overview's counts; the dead-letters page's counts and
// first 200) with a full read of the dead-letter stream (what both did
// before), over 1,500 open dead letters.
func BenchmarkOpenDeadLetters(b *testing.B) {
	nc, js := natstest.Connect(b, natstest.Server(b))
	broken := reducers.DefaultOptions()
	broken.FailTypes = []string{"checkout.session.completed"}
	f := newReplayFixture(b, nc, js, broken, time.Hour)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for u := range 500 {
		f.append(samples.Stripe{EventID: fmt.Sprintf("evt_topup_%d", u), Type: "checkout.session.completed", Created: base, CustomerID: fmt.Sprintf("cus_%d", u),
			Object: map[string]any{"id": fmt.Sprintf("cs_%d", u), "payment_intent": fmt.Sprintf("pi_%d", u)}})
	}
	ctx := context.Background()
	require.Eventually(b, func() bool {
		open, err := f.query.OpenDeadLetters(ctx, deadletter.Filter{}, 0)
		return err == nil && open.Total == 1500
	}, 2*time.Minute, 50*time.Millisecond)
	b.Run("counts", func(b *testing.B) { // the overview's panel
		for b.Loop() {
			if _, err := f.query.OpenDeadLetters(ctx, deadletter.Filter{}, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.query.OpenDeadLetters(ctx, deadletter.Filter{}, 200); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.engine.DeadLetters(ctx, deadletter.Filter{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
