package rebuild_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// A clean fold reads the whole journal of a replicated stream on a
// three-node cluster, every time. (It once pulled one event at a time
// through an ordered consumer, which recreates its consumer at each pull;
// on a cluster the pull could reach a server that did not know the new
// consumer yet, and verify failed with "no responders".)
func TestFoldJournalOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := natstest.StartCluster(t, 3)
	nc, js := natstest.ConnectURL(t, c.URLs())
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 3}))
	projtest.AppendSamples(t, ingest.NewJournal(nc, js), 20)
	stream, err := js.Stream(ctx, domain.JournalStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)

	for range 3 {
		var n uint64
		require.NoError(t, projections.EachJournalEvent(ctx, js, func(*domain.Envelope) error { n++; return nil }))
		require.Equal(t, info.State.Msgs, n, "every event, once")
		_, _, err := rebuild.FoldJournal(ctx, js, reducers.All(reducers.DefaultOptions()))
		require.NoError(t, err)
	}
}
