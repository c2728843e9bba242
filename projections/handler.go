package projections

import (
	"context"
	"errors"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
)

// An eventHandler folds one journal event into one projection. The
// projector's per-event path is one, in the style of watermill's router:
// the fold in the middle, and each concern (retry with backoff, the
// dead-letter hand-off, metrics) a middleware around it, composed the same
// way for the live projector's fallback from a burst, a requeue, a
// scheduled retry, and a replay or a rebuild's catch-up (Projector.handler).
//
// The burst of a pull batch (Projector.handleBatch) is the fast path and
// stays batched: only the events a burst could not store go through the
// handler, one at a time.
type eventHandler func(ctx context.Context, env *domain.Envelope) error

// A middleware wraps an eventHandler with one concern.
type middleware func(eventHandler) eventHandler

// compose wraps h in mws, the first outermost.
func compose(h eventHandler, mws ...middleware) eventHandler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// handler is the projector's per-event path for one event: the fold,
// compare-and-set conflicts retried at once, store failures retried with
// backoff (inProgress is called before each wait, to keep the journal from
// redelivering meanwhile), a dead letter for what still fails (with
// requeue, when an operator's requeue or a scheduled retry is the
// attempt), and the applied count. It is composed per event: the conflict
// budget is the event's.
func (pr *Projector) handler(inProgress func(), requeue *deadletter.Requeue) eventHandler {
	return compose(pr.fold,
		pr.countApplied,
		pr.deadLetterFailures(requeue),
		pr.retryWithBackoff(inProgress),
		retryConflicts(maxConflicts),
	)
}

// refold folds again an event of a burst whose write lost a
// compare-and-set race, re-reading the record each time, at most
// maxConflicts times; what still fails is the caller's to hand back.
func (pr *Projector) refold(ctx context.Context, env *domain.Envelope) error {
	return retryConflicts(maxConflicts)(pr.fold)(ctx, env)
}

// fold applies env to the projection's stored records once, compare-and-set.
func (pr *Projector) fold(ctx context.Context, env *domain.Envelope) error {
	t := kvstore.NewTx(ctx, pr.store)
	changes, err := pr.projection.Apply(env, t)
	if err == nil {
		err = t.Commit(changes, kvstore.Cause{EventID: env.EventID, EventType: env.EventType, Sequence: env.Sequence})
	}
	return err
}

// countApplied counts each event the handler applied.
func (pr *Projector) countApplied(next eventHandler) eventHandler {
	return func(ctx context.Context, env *domain.Envelope) error {
		err := next(ctx, env)
		if err == nil {
			pr.metrics.applied(pr.projection.Name())
		}
		return err
	}
}

// deadLetterFailures records an event the handler could not apply as a
// dead letter, with the attempts made; an event interrupted by ctx's end
// is left for redelivery instead.
func (pr *Projector) deadLetterFailures(requeue *deadletter.Requeue) middleware {
	return func(next eventHandler) eventHandler {
		return func(ctx context.Context, env *domain.Envelope) error {
			err := next(ctx, env)
			attempts := 1
			if f, ok := errors.AsType[*failedAfter](err); ok {
				attempts, err = f.attempts, f.err
			}
			if err != nil && ctx.Err() == nil {
				pr.deadLetter(ctx, env, attempts, err, requeue)
			}
			return err
		}
	}
}

// failedAfter is the error of an event that failed after attempts.
type failedAfter struct {
	attempts int
	err      error
}

func (f *failedAfter) Error() string { return f.err.Error() }
func (f *failedAfter) Unwrap() error { return f.err }

// retryWithBackoff retries store failures with the projector's backoff,
// up to its attempts; a permanent failure is not retried.
func (pr *Projector) retryWithBackoff(inProgress func()) middleware {
	return func(next eventHandler) eventHandler {
		return func(ctx context.Context, env *domain.Envelope) error {
			for attempt := 1; ; attempt++ {
				err := next(ctx, env)
				switch {
				case err == nil:
					return nil
				case domain.Permanent(err), attempt >= pr.retry.Attempts, ctx.Err() != nil:
					return &failedAfter{attempts: attempt, err: err}
				}
				inProgress()
				jsio.Sleep(ctx, pr.retry.backoff(attempt))
			}
		}
	}
}

// retryConflicts re-folds at once an event that lost a compare-and-set
// race, at most budget times over the handler's life; past it a conflict
// is retried as a store failure.
func retryConflicts(budget int) middleware {
	return func(next eventHandler) eventHandler {
		return func(ctx context.Context, env *domain.Envelope) error {
			for {
				err := next(ctx, env)
				if !errors.Is(err, kvstore.ErrConflict) || budget <= 0 {
					return err
				}
				budget--
			}
		}
	}
}
