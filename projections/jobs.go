package projections

import (
	"context"
	"log/slog"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// What the jobs above the engine need of it, and no more: the rebuild,
// replay and verify room (projections/rebuild) and the event ledger
// (projections/ledger) read the engine through these methods, never its
// fields.

// Projection returns the reducer of projection, nil for an unknown name.
func (e *Engine) Projection(name string) reducers.Projection { return e.projections[name] }

// Options are the options the engine runs with (replicas, retry policy,
// metrics, log).
func (e *Engine) Options() EngineOptions { return e.opts }

// LoadGeneration reads projection's generation pointer as stored, with its
// revision (0: never written, generation 1).
func (e *Engine) LoadGeneration(ctx context.Context, projection string) (kvstore.Generation, uint64, error) {
	return e.gens.Get(ctx, projection)
}

// SaveGeneration writes gen if the pointer is still at revision (0: never
// written): every engine follows it. A lost race is BILLFOLD-CONFLICT.
func (e *Engine) SaveGeneration(ctx context.Context, gen kvstore.Generation, revision uint64) (uint64, error) {
	return e.gens.Put(ctx, gen, revision)
}

// WaitGeneration waits, at most 30 s, until this engine runs gen (its
// number, paused or not): a rebuild's switch waits for its own engine to
// follow the pointer it wrote.
func (e *Engine) WaitGeneration(ctx context.Context, gen kvstore.Generation) error {
	for {
		switched := e.Switched()
		if g := e.Generation(gen.Projection); g.Number == gen.Number && g.Paused == gen.Paused {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-switched:
		case <-time.After(30 * time.Second):
			return domain.Errorf(domain.CodeStoreUnavailable, "engine did not follow %s to generation %d", gen.Projection, gen.Number)
		}
	}
}

// Acked is the journal sequence up to which projection's current
// generation has folded every event (Position).
func (e *Engine) Acked(ctx context.Context, projection string) (uint64, error) {
	return e.Position(ctx, projection, e.Generation(projection).Number)
}

// Reapply folds env into projection's current generation through the live
// projector's handler (retry and conflict middleware, no dead-letter
// hand-off) and resolves the event's open dead letter, if any, in by's
// name; resolved says it had one.
func (e *Engine) Reapply(ctx context.Context, projection string, env *domain.Envelope, by string) (resolved bool, err error) {
	return e.reapply(ctx, projection, env, by, nil)
}

// DeadLetterStore is the dead-letter stream the engine's projectors write.
func (e *Engine) DeadLetterStore() *deadletter.Letters { return &e.dead }

// CatchUpProjector is a projector of projection into store from journal
// sequence from, as the engine runs them (its metrics, retry policy and
// shared decoded payloads), for a rebuild's catch-up with live deliveries;
// log is where it logs.
func (e *Engine) CatchUpProjector(projection string, store *kvstore.Store, log *slog.Logger, from uint64) *Projector {
	return NewProjector(e.projections[projection], e.js, store, e.opts.Metrics, log, e.opts.Retry).shareFacts(e.facts).From(from)
}
