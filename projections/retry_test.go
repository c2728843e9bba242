package projections_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/reducers"
)

// flaky is the seen projection whose events of type "flaky" fail with a
// transient error (the stores unavailable) while down is set.
type flaky struct {
	seen
	down *atomic.Bool
}

func (f flaky) Apply(ev *domain.Envelope, records reducers.Lookup) (reducers.Changes, error) {
	if ev.EventType == "flaky" && f.down.Load() {
		return nil, domain.Errorf(domain.CodeStoreUnavailable, "store down for %s", ev.EventID)
	}
	return f.seen.Apply(ev, records)
}

// retryEngine runs an engine of one flaky projection with a fast retry
// schedule.
func retryEngine(t *testing.T, schedule ...time.Duration) (*fixture, *projections.Engine, *atomic.Bool, *projections.ProjectorMetrics) {
	f := newFixture(t)
	down := &atomic.Bool{}
	down.Store(true)
	m := projections.NewProjectorMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	e, err := projections.NewEngine(ctx, f.js, []reducers.Projection{flaky{down: down}}, projections.EngineOptions{
		Replicas: 1, Metrics: m, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Retry:         projections.RetryPolicy{Attempts: 1, Initial: time.Millisecond, Max: time.Millisecond},
		RetrySchedule: schedule, RetryScan: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { e.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return f, e, down, m
}

func deadLetterOf(t *testing.T, e *projections.Engine, event string) deadletter.Letter {
	dls, err := e.DeadLetters(context.Background(), deadletter.Filter{Status: "all"})
	require.NoError(t, err)
	for _, dl := range dls {
		if dl.EventID == event {
			return dl
		}
	}
	return deadletter.Letter{}
}

// A transient failure does not hold up the events after it, waits for its
// scheduled retry as "retrying", and is applied by the first retry after
// the stores are back: resolved, counted nowhere as exhausted.
func TestScheduledRetryAppliesATransientFailure(t *testing.T) {
	// The first wait is long enough for the test to see the dead letter
	// before any retry, even on a loaded machine.
	f, e, down, m := retryEngine(t, 2*time.Second, 2*time.Second)
	f.journalEvent(t, "evt_flaky", "flaky", "cus_a")
	f.journalEvent(t, "evt_after", "customer.updated", "cus_b")

	require.Eventually(t, func() bool { return len(f.record(t, "cus_b")) == 1 }, 10*time.Second, 10*time.Millisecond,
		"the independent event after the failing one is folded")
	require.Eventually(t, func() bool { return deadLetterOf(t, e, "evt_flaky").ID != "" }, 10*time.Second, 10*time.Millisecond)
	dl := deadLetterOf(t, e, "evt_flaky")
	assert.Equal(t, deadletter.ClassTransient, dl.Class)
	assert.Equal(t, deadletter.Open, dl.Status)
	assert.Equal(t, deadletter.RetryRetrying, dl.RetryState)
	assert.False(t, dl.NextRetryAt.IsZero())

	down.Store(false)
	require.Eventually(t, func() bool { return len(f.record(t, "cus_a")) == 1 }, 10*time.Second, 10*time.Millisecond,
		"a scheduled retry applies the event once the stores are back")
	require.Eventually(t, func() bool { return deadLetterOf(t, e, "evt_flaky").Status == deadletter.Resolved }, 10*time.Second, 10*time.Millisecond)
	dl = deadLetterOf(t, e, "evt_flaky")
	require.NotEmpty(t, dl.Requeues)
	assert.Equal(t, deadletter.ScheduledRetryBy, dl.Requeues[len(dl.Requeues)-1].By)
	assert.Equal(t, deadletter.OutcomeApplied, dl.Requeues[len(dl.Requeues)-1].Outcome)
	assert.Zero(t, testutil.ToFloat64(m.RetriesExhausted.WithLabelValues("seen", deadletter.ClassTransient)))
}

// A transient failure that outlasts the schedule is retried once per step
// and then exhausted: counted, and left for an operator.
func TestScheduledRetriesRunOut(t *testing.T) {
	f, e, _, m := retryEngine(t, 200*time.Millisecond, 200*time.Millisecond)
	f.journalEvent(t, "evt_flaky", "flaky", "cus_a")

	require.Eventually(t, func() bool { return deadLetterOf(t, e, "evt_flaky").RetryState == deadletter.RetryExhausted }, 20*time.Second, 20*time.Millisecond)
	dl := deadLetterOf(t, e, "evt_flaky")
	assert.Equal(t, deadletter.Open, dl.Status)
	assert.Equal(t, 2, dl.Retries, "one retry per step of the schedule")
	assert.Len(t, dl.Requeues, 2)
	assert.Equal(t, 3, dl.Attempts, "the first fold and two retries, one attempt each")
	assert.True(t, dl.NextRetryAt.IsZero())
	assert.Equal(t, 1.0, testutil.ToFloat64(m.RetriesExhausted.WithLabelValues("seen", deadletter.ClassTransient)))
	assert.Nil(t, f.record(t, "cus_a"))

	// Permanent refusals are not retried at all.
	f.journalEvent(t, "evt_poison", "poison", "cus_p")
	require.Eventually(t, func() bool { return deadLetterOf(t, e, "evt_poison").ID != "" }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, deadletter.RetryExhausted, deadLetterOf(t, e, "evt_poison").RetryState)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.RetriesExhausted.WithLabelValues("seen", deadletter.ClassPermanent)))
}
