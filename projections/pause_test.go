package projections_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// A pause made through one engine holds in another process's engine on
// the same NATS (it follows the pauses bucket), and stops that engine's
// projector too; a resume through the other lifts it in both, and the
// held projection then folds what was journaled meanwhile.
func TestPauseHoldsEveryEngine(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	projs := reducers.All(reducers.DefaultOptions())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var engines []*projections.Engine
	var wg sync.WaitGroup
	for range 2 {
		e, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1, Log: log})
		require.NoError(t, err)
		engines = append(engines, e)
		wg.Go(func() { e.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	a, b := engines[0], engines[1]

	_, err := a.Pause(ctx, []string{"nope"}, "ops")
	assert.Equal(t, domain.CodeNotFound, domain.ErrorCode(err), "an unknown projection pauses nothing")
	held, err := a.Pause(ctx, []string{domain.ProjectionSubscriptions}, "ops")
	require.NoError(t, err)
	require.Len(t, held, 1)
	assert.Equal(t, "ops", held[0].By)
	require.Eventually(t, func() bool { return len(b.Paused()) == 1 }, 10*time.Second, 10*time.Millisecond, "the other engine follows the pause")

	projtest.AppendSamples(t, ingest.NewJournal(nc, js), 5)
	require.Eventually(t, func() bool {
		lag, err := a.Lag(ctx)
		return err == nil && lag[domain.ProjectionCustomers] == 0
	}, 20*time.Second, 20*time.Millisecond, "the other projections fold")
	lag, err := a.Lag(ctx)
	require.NoError(t, err)
	assert.Positive(t, lag[domain.ProjectionSubscriptions], "neither engine folds the paused projection")

	left, err := b.Resume(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, left)
	require.Eventually(t, func() bool { return len(a.Paused()) == 0 }, 10*time.Second, 10*time.Millisecond, "the first engine follows the resume")
	projtest.WaitCaughtUp(t, a)
}
