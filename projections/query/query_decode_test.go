package query

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
)

// The index reads the same fields from a stored value as a full JSON
// decode does, escapes included, and ignores what follows the record.
func TestDecodeIndexedReadsTheRecordFields(t *testing.T) {
	value := []byte(`{"record":{"provider":"stripe","id":"sub_\"q\"\u00e9","customer_id":"cus_1","items":[{"id":"x","state":"nope"}],` +
		`"state":"past_due","links":[{"kind":"user_id","value":"u_1"}],"deleted":true},"merge":{"id":"other","state":"ended"}}`)
	var want indexedRecord
	require.NoError(t, json.Unmarshal(value, &want))
	got, ok := decodeIndexed(value)
	require.True(t, ok)
	assert.Equal(t, want, got)
	assert.Equal(t, "sub_\"q\"é", got.Record.ID)
	assert.Equal(t, []domain.Link{{Kind: "user_id", Value: "u_1"}}, got.Record.Links)

	for _, v := range []string{``, `null`, `{}`, `{"record":null}`, `{"record":{"provider":"stripe"}}`, `[1,2]`} {
		_, ok := decodeIndexed([]byte(v))
		assert.False(t, ok, "%s is no record", v)
	}
	_, ok = decodeIndexed(nil)
	assert.False(t, ok, "a deleted key is no record")
}
