package wire_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/wire"
)

func TestCheckTimestampBoundaries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tol := 5 * time.Minute
	assert.NoError(t, wire.CheckTimestamp(now.Unix()-300, now, tol), "exactly the tolerance old passes")
	assert.NoError(t, wire.CheckTimestamp(now.Unix()+300, now, tol), "exactly the tolerance ahead passes")
	assert.Equal(t, domain.CodeSigTooOld, domain.ErrorCode(wire.CheckTimestamp(now.Unix()-301, now, tol)))
	assert.Equal(t, domain.CodeSigTooNew, domain.ErrorCode(wire.CheckTimestamp(now.Unix()+301, now, tol)))
}

func TestDecodeObjectAndLookup(t *testing.T) {
	m, err := wire.DecodeObject([]byte(` {"data":{"id":"u_1","n":12345678901234567890}} `))
	require.NoError(t, err)
	v, ok := wire.Lookup(m, "data.id")
	assert.True(t, ok)
	assert.Equal(t, "u_1", v)
	n, _ := wire.Lookup(m, "data.n")
	assert.Equal(t, "12345678901234567890", n.(interface{ String() string }).String(), "numbers keep their digits")
	_, ok = wire.Lookup(m, "data.id.deeper")
	assert.False(t, ok)
	for _, bad := range []string{``, `[]`, `{"a":1} {"b":2}`, `{"a":`} {
		_, err := wire.DecodeObject([]byte(bad))
		assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err), bad)
	}
}
