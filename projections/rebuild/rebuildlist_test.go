package rebuild_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// The rebuilds list pages newest first by start time, whatever the kind,
// each page continuing after the last id of the one before.
func TestRebuildsListPagesNewestFirst(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	f := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Minute)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, domain.RebuildsBucket)
	require.NoError(t, err)
	// Started one second apart, oldest first; replays (rp_) and rebuilds
	// (re_) interleaved.
	ids := []string{"rp_20260301T120000_aaaaaa", "re_20260301T120001_ffffff", "rp_20260301T120002_000000",
		"re_20260301T120003_bbbbbb", "rp_20260301T120004_cccccc"}
	for i, id := range ids {
		at := time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC)
		b, err := json.Marshal(rebuild.Rebuild{ID: id, Kind: map[byte]string{'e': rebuild.KindRebuild, 'p': rebuild.KindReplay}[id[1]],
			Status: rebuild.RebuildDone, CreatedAt: at, UpdatedAt: at, FinishedAt: at})
		require.NoError(t, err)
		_, err = kv.Put(ctx, id, b)
		require.NoError(t, err)
	}
	var got [][]string
	after := ""
	for range 4 {
		page, next, err := f.rebuilds.ListPage(ctx, 2, after)
		require.NoError(t, err)
		var pageIDs []string
		for _, rb := range page {
			pageIDs = append(pageIDs, rb.ID)
		}
		got = append(got, pageIDs)
		if after = next; after == "" {
			break
		}
	}
	assert.Equal(t, [][]string{{ids[4], ids[3]}, {ids[2], ids[1]}, {ids[0]}}, got)
	_, _, err = f.rebuilds.ListPage(ctx, 0, "")
	assert.Equal(t, domain.CodeBadRequest, domain.ErrorCode(err))
}
