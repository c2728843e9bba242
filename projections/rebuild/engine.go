package rebuild

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// Engine is what the rebuild, replay and verify jobs need of the engine
// (*projections.Engine), and all they may touch of it: its projections and
// their current stores, the generation pointers (read, compare-and-set,
// and wait until this process follows one), the projectors' progress, a
// live re-application of one event, the dead letters, and a projector for
// a new generation's catch-up.
type Engine interface {
	JetStream() jetstream.JetStream
	Options() projections.EngineOptions
	Projections() []string
	HasProjection(name string) bool
	Projection(name string) reducers.Projection
	Store(projection string) *kvstore.Store
	Generation(projection string) kvstore.Generation
	LoadGeneration(ctx context.Context, projection string) (kvstore.Generation, uint64, error)
	SaveGeneration(ctx context.Context, gen kvstore.Generation, revision uint64) (uint64, error)
	WaitGeneration(ctx context.Context, gen kvstore.Generation) error
	Position(ctx context.Context, projection string, generation int) (uint64, error)
	Acked(ctx context.Context, projection string) (uint64, error)
	Reapply(ctx context.Context, projection string, env *domain.Envelope, by string) (resolved bool, err error)
	DeadLetterStore() *deadletter.Letters
	CatchUpProjector(projection string, store *kvstore.Store, log *slog.Logger, from uint64) *projections.Projector
}

var _ Engine = (*projections.Engine)(nil)
