package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --phases picks phases by name and refuses unknown ones.
func TestBenchPhasesFlag(t *testing.T) {
	ps, err := selectPhases("queries, ingest")
	require.NoError(t, err)
	require.Len(t, ps, 2)
	assert.Equal(t, "ingest", ps[0].name, "phases run in the documented order")
	assert.Equal(t, "queries", ps[1].name)
	_, err = selectPhases("ingest,compaction")
	assert.ErrorContains(t, err, "compaction")
}
