package bench

import (
	"bytes"
	"fmt"
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

// Each loaded subscription's stored value is its template with every id
// placeholder replaced by the record's own ids, as a plain replace of
// each placeholder would give.
func TestSubscriptionSetValues(t *testing.T) {
	set, err := newSubscriptionSet("t1", 1000)
	require.NoError(t, err)
	for _, i := range []int{0, 1, 7, 99, 100, 999} {
		got, tmpl := set.value(i)
		want := bytes.ReplaceAll(tmpl.value, []byte(subPlaceholder), fmt.Appendf(nil, "S%09d", i))
		want = bytes.ReplaceAll(want, []byte(cusPlaceholder), fmt.Appendf(nil, "C%09d", i/2))
		want = bytes.ReplaceAll(want, []byte(eventPlaceholder), fmt.Appendf(nil, "E%09d", i))
		assert.Equal(t, string(want), string(got), "record %d", i)
		ref := set.at(i)
		assert.Contains(t, string(got), `"id":"`+ref.id+`"`)
		if ref.provider == "stripe" { // the Braintree samples name no customer
			assert.Contains(t, string(got), `"customer_id":"`+ref.customer+`"`)
		}
	}
}
