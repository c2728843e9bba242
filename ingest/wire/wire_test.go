package wire_test

import (
	"encoding/json"
	"math"
	"math/big"
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

// A signed timestamp far from now is refused by its direction whatever its
// size: 10^11 (year 5138) and math.MaxInt64 once overflowed the age
// computation and passed as within tolerance.
func TestCheckTimestampFarValues(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tol := range []time.Duration{5 * time.Minute, time.Duration(math.MaxInt64)} {
		for _, ts := range []int64{1e11, math.MaxInt64, math.MaxInt64 - 1, 1 << 62} {
			assert.Equal(t, domain.CodeSigTooNew, domain.ErrorCode(wire.CheckTimestamp(ts, now, tol)), "t=%d tolerance=%s", ts, tol)
		}
	}
	for _, ts := range []int64{math.MinInt64, -1, 0, 1} {
		assert.Equal(t, domain.CodeSigTooOld, domain.ErrorCode(wire.CheckTimestamp(ts, now, 5*time.Minute)), "t=%d", ts)
	}
}

// FuzzCheckTimestamp: for any signed value, now and tolerance, the check
// agrees with an exact model in big integers of nanoseconds.
func FuzzCheckTimestamp(f *testing.F) {
	f.Add(int64(1e11), int64(1_700_000_000), int64(0), int64(5*time.Minute))
	f.Add(int64(math.MaxInt64), int64(1_700_000_000), int64(999_999_999), int64(5*time.Minute))
	f.Add(int64(math.MinInt64), int64(1_700_000_000), int64(0), int64(math.MaxInt64))
	f.Add(int64(1_700_000_300), int64(1_700_000_000), int64(1), int64(5*time.Minute))
	f.Fuzz(func(t *testing.T, ts, nowSec, nowNanos, tol int64) {
		if nowSec < 0 || nowSec > 1<<40 || tol < 0 {
			t.Skip("now is a real clock reading; tolerances are positive")
		}
		nowNanos = ((nowNanos % 1e9) + 1e9) % 1e9
		now := time.Unix(nowSec, nowNanos)
		// age in nanoseconds = now - ts*1e9, exactly.
		age := new(big.Int).Sub(new(big.Int).Add(new(big.Int).Mul(big.NewInt(nowSec), big.NewInt(1e9)), big.NewInt(nowNanos)),
			new(big.Int).Mul(big.NewInt(ts), big.NewInt(1e9)))
		limit := big.NewInt(tol)
		want := domain.Code("")
		if age.Cmp(limit) > 0 {
			want = domain.CodeSigTooOld
		} else if new(big.Int).Neg(age).Cmp(limit) > 0 {
			want = domain.CodeSigTooNew
		}
		err := wire.CheckTimestamp(ts, now, time.Duration(tol))
		if want == "" {
			require.NoError(t, err)
		} else {
			require.Equal(t, want, domain.ErrorCode(err), "%v", err)
		}
	})
}
