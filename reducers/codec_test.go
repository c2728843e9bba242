package reducers_test

import (
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
