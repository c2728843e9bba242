package reducers

import (
	"bytes"
	"encoding/json"
	"sync"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/tidwall/gjson"

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

// Indexed is what the query indexes read of a stored record: the fields
// they select and order by.
type Indexed struct {
	Provider   string        `json:"provider"`
	ID         string        `json:"id"`
	CustomerID string        `json:"customer_id"`
	State      string        `json:"state"`
	Links      []domain.Link `json:"links"`
	Deleted    bool          `json:"deleted"`
	Account    string        `json:"account"`
	Email      string        `json:"email"`
}

// IndexedOf picks Indexed out of a stored value's record in one pass over
// it (gjson walks the bytes without building anything, and stops at the
// end of the record, before the merge state that is most of a value's
// bytes); at a million records a full decode of each value was most of a
// restart's index load. The value is read in place, not copied: a string
// without escapes in the result shares value's bytes, so a caller that
// keeps one past the call copies it. A value without a record id is no
// record (false); the values are this package's own writes, so they are
// not validated beyond that.
func IndexedOf(value []byte) (Indexed, bool) {
	var r Indexed
	if len(value) == 0 {
		return r, false
	}
	rec := gjson.Get(unsafe.String(unsafe.SliceData(value), len(value)), "record")
	if !rec.IsObject() {
		return r, false
	}
	rec.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "provider":
			r.Provider = v.String()
		case "id":
			r.ID = v.String()
		case "customer_id":
			r.CustomerID = v.String()
		case "state":
			r.State = v.String()
		case "deleted":
			r.Deleted = v.Bool()
		case "account":
			r.Account = v.String()
		case "email":
			r.Email = v.String()
		case "links":
			r.Links = nil
			v.ForEach(func(_, l gjson.Result) bool {
				r.Links = append(r.Links, domain.Link{Kind: l.Get("kind").String(), Value: l.Get("value").String()})
				return true
			})
		}
		return true
	})
	return r, r.ID != ""
}
