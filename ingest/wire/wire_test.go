package wire_test

import (
	"encoding/json"
	"strings"
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

// FuzzDecodeObject feeds arbitrary bodies and paths to DecodeObject and
// Lookup: no panic; anything refused is BILLFOLD-EVENT-MALFORMED; an
// accepted object survives a round trip through encoding/json unchanged
// (numbers keep their digits, invalid UTF-8 was already replaced), and a
// path without dots looks up the top-level field.
func FuzzDecodeObject(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"x","data":{"id":"d","n":12345678901234567890}}`), "data.id")
	f.Add([]byte(` {"a":1} `), "a")
	f.Add([]byte("{\"note\":\"caf\xe9\"}"), "note")
	f.Add([]byte(`{"a":1}{"b":2}`), "b")
	f.Add([]byte(`{"a":{"a":{"a":[]}}}`), "a.a.a.a")
	f.Add([]byte(`{"dup":1,"dup":2}`), "dup")
	f.Add([]byte(`{"x":`+strings.Repeat("[", 10001)+`}`), "x")
	f.Add([]byte(``), "")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		m, err := wire.DecodeObject(body)
		if err != nil {
			require.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err), "%v", err)
			return
		}
		require.NotNil(t, m)
		again, err := json.Marshal(m)
		require.NoError(t, err)
		m2, err := wire.DecodeObject(again)
		require.NoError(t, err, "%s", again)
		require.Equal(t, m, m2)
		v, ok := wire.Lookup(m, path)
		if !strings.Contains(path, ".") {
			top, found := m[path]
			require.Equal(t, found, ok)
			require.Equal(t, top, v)
		}
	})
}
