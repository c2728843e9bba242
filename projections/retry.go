package projections

import (
	"context"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
)

// DefaultRetrySchedule is how long a transiently failed event waits before
// each scheduled retry, the webhook handbook's: 1 min, 5 min, 30 min, 2 h,
// 12 h; after the last one fails the dead letter is exhausted.
var DefaultRetrySchedule = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour}

// DefaultRetryScan is how often an engine looks for retries that are due.
const DefaultRetryScan = 5 * time.Second

func (o EngineOptions) retrySchedule() []time.Duration {
	if o.RetrySchedule == nil {
		return DefaultRetrySchedule
	}
	return o.RetrySchedule
}

func (o EngineOptions) retryScan() time.Duration {
	if o.RetryScan <= 0 {
		return DefaultRetryScan
	}
	return o.RetryScan
}

// retryDue retries, until ctx ends, every dead letter whose scheduled
// retry is due. This runs beside the projectors: an event waiting for its
// retry holds up no other event, and the reducers' merge rules make its
// late fold land as if it had come in order.
func (e *Engine) retryDue(ctx context.Context) {
	every(ctx, e.opts.retryScan(), func() {
		dls, err := e.dead.List(ctx, deadletter.Filter{})
		if err != nil {
			e.opts.Log.Warn("scheduled retries not read", "error", err)
			return
		}
		now := time.Now()
		for _, dl := range dls {
			if dl.RetryState == deadletter.RetryRetrying && !dl.NextRetryAt.After(now) && !e.isPaused(dl.Projection) && ctx.Err() == nil {
				e.retry(ctx, dl, now)
			}
		}
	})
}

// retry applies a due dead letter's event again, once this process has
// claimed it: of several processes, one retries.
func (e *Engine) retry(ctx context.Context, dl deadletter.Letter, now time.Time) {
	env, err := e.journalEvent(ctx, dl.JournalSequence)
	if err != nil {
		e.opts.Log.Warn("scheduled retry: journal event not read", "id", dl.ID, "error", err)
		return
	}
	if won, err := e.dead.Claim(ctx, dl.Subject(), now); err != nil || !won {
		return
	}
	_, err = e.reapply(ctx, dl.Projection, env, "scheduled retry", &deadletter.Requeue{By: deadletter.ScheduledRetryBy, At: now.UTC()})
	outcome := deadletter.OutcomeApplied
	if err != nil {
		outcome = deadletter.OutcomeFailed
	}
	e.opts.Log.Info("scheduled retry", "id", dl.ID, "retry", dl.Retries+1, "outcome", outcome,
		"event_id", env.EventID, "event_type", env.EventType, "code", domain.ErrorCode(err))
}
