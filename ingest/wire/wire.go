// Package wire holds what several signing-scheme packages (ingest/stripe,
// ingest/svix, ingest/hmacsig) need alike: the signed-timestamp tolerance
// check and reading fields out of a JSON event body.
//
// It must never do I/O or read the clock; callers pass now in.
package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
)

// CheckTimestamp checks a signed Unix timestamp against now: more than
// tolerance in the past is BILLFOLD-SIG-TOO-OLD, more than tolerance in the
// future BILLFOLD-SIG-TOO-NEW.
//
// The signed value is compared in whole seconds first, so that any t an
// attacker can sign (10^11, math.MaxInt64, a negative number) is refused
// without converting it to a time.Time: now.Sub saturates at about 292
// years and negating the saturated minimum overflowed back to a negative
// age, which once let a far-future timestamp through. Only a t within a
// second of the window reaches the precise (sub-second) comparison.
func CheckTimestamp(t int64, now time.Time, tolerance time.Duration) error {
	nowSec, tolSec := now.Unix(), int64(tolerance/time.Second)
	switch {
	case t > nowSec && uint64(t)-uint64(nowSec) > uint64(tolSec)+1:
		return domain.Errorf(domain.CodeSigTooNew, "signed %ds in the future, tolerance %s", uint64(t)-uint64(nowSec), tolerance)
	case t < nowSec && uint64(nowSec)-uint64(t) > uint64(tolSec)+1:
		return domain.Errorf(domain.CodeSigTooOld, "signed %ds ago, tolerance %s", uint64(nowSec)-uint64(t), tolerance)
	}
	age := now.Sub(time.Unix(t, 0))
	switch {
	case age > tolerance:
		return domain.Errorf(domain.CodeSigTooOld, "signed %s ago, tolerance %s", age.Round(time.Second), tolerance)
	case age < -tolerance:
		return domain.Errorf(domain.CodeSigTooNew, "signed %s in the future, tolerance %s", (-age).Round(time.Second), tolerance)
	}
	return nil
}

// DecodeObject decodes a JSON object body, numbers kept as json.Number.
// Anything else, or trailing data, is BILLFOLD-EVENT-MALFORMED.
func DecodeObject(body []byte) (map[string]any, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, domain.Errorf(domain.CodeEventMalformed, "body is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, domain.Wrap(domain.CodeEventMalformed, err, "event JSON does not decode")
	}
	if dec.More() {
		return nil, domain.Errorf(domain.CodeEventMalformed, "body has data after the JSON object")
	}
	return m, nil
}

// Lookup follows a dotted path ("data.id") through nested objects.
func Lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, key := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}
