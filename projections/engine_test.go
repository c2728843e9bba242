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
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// Invariant 4 and exactly-once effect: two engines projecting the same
// journal at once (two billfold processes) leave every store equal to a
// clean fold of the journal, and the refused event is a dead letter once.
func TestTwoEnginesEqualACleanFold(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	projtest.AppendSamples(t, ingest.NewJournal(nc, js), 20)

	projs := reducers.All(reducers.DefaultOptions())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var engines []*projections.Engine
	var wg sync.WaitGroup
	for range 2 {
		e, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1, Log: log, Retry: projections.RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 10 * time.Millisecond}})
		require.NoError(t, err)
		engines = append(engines, e)
		wg.Go(func() { e.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	projtest.WaitCaughtUp(t, engines[0])

	want, refused, err := rebuild.FoldJournal(ctx, js, projs)
	require.NoError(t, err)
	for _, p := range projs {
		got := projtest.StoreContents(t, js, p.Name())
		assert.Equal(t, len(want[p.Name()]), len(got), p.Name())
		for k, v := range want[p.Name()] {
			assert.JSONEq(t, string(v), string(got[k]), "%s %s", p.Name(), k)
		}
	}
	require.Contains(t, refused[domain.ProjectionWallets], "evt_bad_topup")
	assert.Equal(t, domain.CodeReducerInvalid, domain.ErrorCode(refused[domain.ProjectionWallets]["evt_bad_topup"]))

	dl, err := js.Stream(ctx, domain.DeadLetterStream)
	require.NoError(t, err)
	dlInfo, err := dl.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), dlInfo.State.Msgs, "the refused event is dead-lettered once")

}
