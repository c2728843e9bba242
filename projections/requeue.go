package projections

import (
	"context"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
)

// reapply applies a journal event to a projection's current generation
// through its projector's handler, as first delivery did: a no-op when it was
// applied before. A failure is recorded on the event's dead letter (its
// attempts raised, requeue in its history); a success resolves an open
// one, by by. It reports whether an open dead letter was resolved.
func (e *Engine) reapply(ctx context.Context, projection string, env *domain.Envelope, by string, requeue *deadletter.Requeue) (bool, error) {
	if err := e.slot(projection).projector.handler(func() {}, requeue)(ctx, env); err != nil {
		return false, err
	}
	if requeue != nil {
		requeue.Outcome = deadletter.OutcomeApplied
	}
	return e.dead.Resolve(ctx, projection, env.EventNamespace(), env.EventID, by, requeue, time.Now().UTC())
}

// DeadLetters lists the dead letters f selects, oldest failure first.
func (e *Engine) DeadLetters(ctx context.Context, f deadletter.Filter) ([]deadletter.Letter, error) {
	if f.Projection != "" && e.projections[f.Projection] == nil {
		return nil, domain.Errorf(domain.CodeBadRequest, "unknown projection %q", f.Projection)
	}
	switch f.Status {
	case "", deadletter.Open, deadletter.Resolved, "all":
	default:
		return nil, domain.Errorf(domain.CodeBadRequest, "status %q: want open, resolved or all", f.Status)
	}
	return e.dead.List(ctx, f)
}

// DeadLetter returns a dead letter by id and its journal event.
func (e *Engine) DeadLetter(ctx context.Context, id string) (*deadletter.Letter, *domain.Envelope, error) {
	projection, seq, err := deadletter.ParseID(id)
	if err != nil {
		return nil, nil, err
	}
	if e.projections[projection] == nil {
		return nil, nil, domain.Errorf(domain.CodeNotFound, "no dead letter %s: unknown projection %q", id, projection)
	}
	env, err := e.journalEvent(ctx, seq)
	if err != nil {
		return nil, nil, err
	}
	dl, _, err := e.dead.Get(ctx, domain.DeadLetterSubject(projection, env.EventNamespace(), env.EventID))
	if err != nil {
		return nil, nil, err
	}
	if dl == nil {
		return nil, nil, domain.Errorf(domain.CodeNotFound, "no dead letter %s", id)
	}
	return dl, env, nil
}

// Requeue applies a dead letter's event again, once, through the
// projection's reducer, as an explicit decision of by (the admin token's
// name). Success resolves the dead letter; failure leaves it open with its
// attempts raised. Either way the requeue is in its history, and the
// dead letter's new state is returned. Requeueing a resolved dead letter
// applies nothing twice: the reducers make it a no-op.
func (e *Engine) Requeue(ctx context.Context, id, by string) (*deadletter.Letter, error) {
	dl, env, err := e.DeadLetter(ctx, id)
	if err != nil {
		return nil, err
	}
	rq := &deadletter.Requeue{By: by, At: time.Now().UTC()}
	_, applyErr := e.reapply(ctx, dl.Projection, env, "requeue", rq)
	outcome := deadletter.OutcomeApplied
	if applyErr != nil {
		outcome = deadletter.OutcomeFailed
	}
	e.opts.Replay.CountReplayed("requeue", outcome)
	e.opts.Log.Info("dead letter requeued", "id", id, "by", by, "outcome", outcome, "event_id", env.EventID,
		"event_type", env.EventType, "code", domain.ErrorCode(applyErr))
	if ctx.Err() != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, ctx.Err(), "requeue interrupted")
	}
	after, _, err := e.DeadLetter(ctx, id)
	return after, err
}

// RequeueResult is the answer of a bulk requeue.
type RequeueResult struct {
	DryRun  bool                `json:"dry_run"`
	Matched int                 `json:"matched"`
	Applied int                 `json:"applied"`
	Failed  int                 `json:"failed"`
	Items   []deadletter.Letter `json:"items"`
}

// ConfirmAbove is how many events a requeue, rebuild or replay may touch
// before it needs force (the CLI's --yes).
const ConfirmAbove = 10_000

// RequeueWhere requeues every open dead letter f selects, oldest first (see
// Requeue). With dryRun it only lists them; more than ConfirmAbove needs
// force.
func (e *Engine) RequeueWhere(ctx context.Context, f deadletter.Filter, by string, dryRun, force bool) (RequeueResult, error) {
	f.Status = deadletter.Open
	dls, err := e.DeadLetters(ctx, f)
	if err != nil {
		return RequeueResult{}, err
	}
	res := RequeueResult{DryRun: dryRun, Matched: len(dls), Items: []deadletter.Letter{}}
	if dryRun {
		res.Items = dls
		return res, nil
	}
	if len(dls) > ConfirmAbove && !force {
		return res, domain.Errorf(domain.CodeConfirmRequired, "%d dead letters match (over %d): confirm with --yes (force over HTTP)", len(dls), ConfirmAbove)
	}
	for _, dl := range dls {
		after, err := e.Requeue(ctx, dl.ID, by)
		if err != nil {
			return res, err
		}
		if after.Status == deadletter.Resolved {
			res.Applied++
		} else {
			res.Failed++
		}
		res.Items = append(res.Items, *after)
	}
	return res, nil
}
