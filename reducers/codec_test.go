package reducers_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

// RecordOf reads a stored value's record whatever the order of its
// members, and refuses what is not a stored value with a stable code.
func TestRecordOf(t *testing.T) {
	for _, c := range []struct {
		name, stored, want string
	}{
		{"record first", `{"record":{"id":"cus_1","version":2},"merge":{"folded":{"recent":[],"count":2}}}`, `{"id":"cus_1","version":2}`},
		{"record last", `{"merge":{"x":[1,{"record":{}}]},"record":{"id":"cus_2"}}`, `{"id":"cus_2"}`},
		{"no record", `{"merge":{}}`, ``},
		{"null record", `{"record":null,"merge":{}}`, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := reducers.RecordOf([]byte(c.stored))
			require.NoError(t, err)
			assert.Equal(t, c.want, string(got))
		})
	}
	for _, bad := range []string{``, `[]`, `{"record":[1]}`, `{"record":{"id":`, `{"merge":{}`} {
		_, err := reducers.RecordOf([]byte(bad))
		assert.Equal(t, domain.CodeReducerDecode, domain.ErrorCode(err), "%q", bad)
	}
}

// IndexedOf reads the fields the query indexes select by, by name, from
// the record part only (not from nested objects, not from the merge
// state), with escapes decoded: what encoding/json reads of it.
func TestIndexedOf(t *testing.T) {
	value := []byte(`{"merge":{"record":{"id":"no"}},"record":{"provider":"stripe","id":"sub_\"q\"\u00e9","customer_id":"cus_1","items":[{"id":"x","state":"nope"}],` +
		`"state":"past_due","account":"acct_1","links":[{"kind":"user_id","value":"u_1"}],"deleted":true,"email":"a@example.com"}}`)
	var want struct {
		Record reducers.Indexed `json:"record"`
	}
	require.NoError(t, json.Unmarshal(value, &want))
	got, ok := reducers.IndexedOf(value)
	require.True(t, ok)
	assert.Equal(t, want.Record, got)
	assert.Equal(t, "sub_\"q\"é", got.ID)
	assert.Equal(t, []domain.Link{{Kind: "user_id", Value: "u_1"}}, got.Links)
	for _, none := range []string{``, `null`, `{}`, `{"record":null}`, `{"record":{"provider":"stripe"}}`, `[1,2]`} {
		_, ok := reducers.IndexedOf([]byte(none))
		assert.False(t, ok, "%q is no record", none)
	}
	_, ok = reducers.IndexedOf(nil)
	assert.False(t, ok, "a deleted key is no record")
}
