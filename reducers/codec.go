package reducers

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/billfold/billfold/domain"
)

// RecordOf is the record part of a stored value as stored (compact JSON),
// undecoded; nil when the value holds none. It is how every other package
// reads a stored value (queries, the change feed, the client): the stored
// form is this package's own. The record is encoded first (Stored), so
// the merge state after it, often several times the record's size, is
// neither decoded nor scanned; a value with its members in another order
// is read all the same.
func RecordOf(stored []byte) (json.RawMessage, error) {
	d := decoders.Get().(*jsontext.Decoder)
	defer decoders.Put(d)
	d.Reset(bytes.NewReader(stored))
	if t, err := d.ReadToken(); err != nil || t.Kind() != '{' {
		return nil, domain.Errorf(domain.CodeReducerDecode, "stored record is not a JSON object")
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return nil, domain.Wrap(domain.CodeReducerDecode, err, "stored record")
		}
		if name.String() != "record" {
			if err := d.SkipValue(); err != nil {
				return nil, domain.Wrap(domain.CodeReducerDecode, err, "stored record")
			}
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return nil, domain.Wrap(domain.CodeReducerDecode, err, "stored record")
		}
		switch v.Kind() {
		case 'n':
			return nil, nil
		case '{':
			return json.RawMessage(bytes.Clone(v)), nil
		}
		return nil, domain.Errorf(domain.CodeReducerDecode, "stored record's record is not a JSON object")
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, domain.Wrap(domain.CodeReducerDecode, err, "stored record")
	}
	return nil, nil
}

// decoders keeps jsontext decoders for reuse: one is a few KB of state.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil)) }}
