package reducers

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/billfold/billfold/domain"
)

// Stored is a record as a projection store holds it: the record that
// queries and change feeds show, and the merge state it derives from. The
// merge state is what makes folding order-independent; it is billfold's
// own and may change between versions (a rebuild rewrites it).
type Stored[R any, M any] struct {
	Record R `json:"record"`
	Merge  M `json:"merge"`
}

// storedJSON are the options records are encoded and decoded with: the
// JSON v2 implementation with encoding/json's semantics (sorted map keys,
// nil as null, HTML-safe escapes), so a record's bytes are what
// encoding/json would write, at a fraction of the cost
// (BenchmarkCustomersApplyLongLived).
var storedJSON = jsonv1.DefaultOptionsV1()

// decodeStored decodes a stored record; nil data is the zero record.
func decodeStored[R any, M any](data []byte) (Stored[R, M], error) {
	var s Stored[R, M]
	if data == nil {
		return s, nil
	}
	if err := jsonv2.Unmarshal(data, &s, storedJSON); err != nil {
		return s, domain.Wrap(domain.CodeReducerDecode, err, "stored record does not decode")
	}
	return s, nil
}

// encode encodes a stored record. Map keys are sorted, so equal records
// encode to equal bytes.
func (s Stored[R, M]) encode() []byte {
	b, err := jsonv2.Marshal(s, storedJSON)
	if err != nil {
		panic("reducers: record does not encode: " + err.Error()) // only plain data types are stored
	}
	return b
}

// A record remembers by id its latest FoldedRefs events, and every event
// up to FoldedHorizon older than its latest (Stripe retries a delivery
// for up to three days), but never more than MaxFoldedRefs. That bounds
// what a record carries however many events fold into it: a wallet or a
// subscription that lives for years stays the same size.
const (
	FoldedRefs    = 128
	FoldedHorizon = 72 * time.Hour
	MaxFoldedRefs = 512
)

// Folded is what a record knows of the events folded into it: its latest
// events by id (what makes a redelivery a no-op; see FoldedRefs), how
// many there were, and joins over all of them (the least trusted input,
// whether any was signed). Every member is a function of the set of
// events, not of their order: the window is a top of an ordered set, the
// rest are counts and joins.
//
// An event older than the whole window, once the window has let events go
// (add's lateEvent), cannot be told from a redelivery by id; foldEvent
// applies it anyway (nothing is lost: every merge state is a join, so a
// redelivery changes nothing) and counts it only when it changed the
// record. Only the count of such a record can so miss an event: one more
// than FoldedHorizon late and behind FoldedRefs later events, that changed
// nothing.
type Folded struct {
	Recent []domain.EventRef `json:"recent"`
	Count  int               `json:"count"`
	// Unverified is the least trusted mark of any event folded in ("" when
	// every one was signed); Signed reports whether any was signed.
	Unverified domain.Verification `json:"unverified,omitempty"`
	Signed     bool                `json:"signed,omitempty"`
}

// MarshalJSONTo encodes the set compactly, each event as [unix
// nanoseconds, "id"] or [unix nanoseconds, "id", "verification"]: the
// window is most of a long-lived record's bytes, and reading times as
// integers is what keeps a fold of such a record cheap
// (BenchmarkCustomersApplyLongLived).
func (f Folded) MarshalJSONTo(e *jsontext.Encoder) error {
	var err error
	write := func(t jsontext.Token) {
		if err == nil {
			err = e.WriteToken(t)
		}
	}
	write(jsontext.BeginObject)
	write(jsontext.String("recent"))
	write(jsontext.BeginArray)
	for _, r := range f.Recent {
		write(jsontext.BeginArray)
		write(jsontext.Int(r.At.UnixNano()))
		write(jsontext.String(r.EventID))
		if r.Verification != "" {
			write(jsontext.String(string(r.Verification)))
		}
		write(jsontext.EndArray)
	}
	write(jsontext.EndArray)
	write(jsontext.String("count"))
	write(jsontext.Int(int64(f.Count)))
	if f.Unverified != "" {
		write(jsontext.String("unverified"))
		write(jsontext.String(string(f.Unverified)))
	}
	if f.Signed {
		write(jsontext.String("signed"))
		write(jsontext.True)
	}
	write(jsontext.EndObject)
	return err
}

// MarshalJSON is MarshalJSONTo for encoding/json.
func (f Folded) MarshalJSON() ([]byte, error) { return jsonv2.Marshal(f) }

// UnmarshalJSONFrom reads the set as MarshalJSONTo writes it, or as a
// plain array of every event ({"at", "event_id", "verification"}
// objects), as records written before this version hold it.
func (f *Folded) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	*f = Folded{}
	switch d.PeekKind() {
	case 'n': // an earlier version's empty set
		_, err := d.ReadToken()
		return err
	case '[':
		v, err := d.ReadValue()
		if err != nil {
			return err
		}
		var all []domain.EventRef
		if err := json.Unmarshal(v, &all); err != nil {
			return err
		}
		f.union(Folded{Recent: all})
		f.Count = len(all)
		for _, r := range all {
			f.mark(r)
		}
		return nil
	}
	if t, err := d.ReadToken(); err != nil || t.Kind() != '{' {
		return errFoldedFormat
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return err
		}
		switch name.String() {
		case "recent":
			err = f.readRecent(d)
		case "count":
			var t jsontext.Token
			if t, err = d.ReadToken(); err == nil && t.Kind() == '0' {
				f.Count = int(t.Int())
			}
		case "unverified":
			var t jsontext.Token
			if t, err = d.ReadToken(); err == nil {
				f.Unverified = domain.Verification(t.String())
			}
		case "signed":
			var t jsontext.Token
			if t, err = d.ReadToken(); err == nil {
				f.Signed = t.Kind() == 't'
			}
		default:
			err = d.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	_, err := d.ReadToken()
	return err
}

// UnmarshalJSON is UnmarshalJSONFrom for encoding/json.
func (f *Folded) UnmarshalJSON(b []byte) error { return jsonv2.Unmarshal(b, f) }

var errFoldedFormat = errors.New("reducers: folded events are neither an object nor an array")

// readRecent reads the window's [nanoseconds, "id"(, "verification")]
// entries.
func (f *Folded) readRecent(d *jsontext.Decoder) error {
	if t, err := d.ReadToken(); err != nil || t.Kind() != '[' {
		return errFoldedFormat
	}
	for d.PeekKind() == '[' {
		var r domain.EventRef
		if _, err := d.ReadToken(); err != nil {
			return err
		}
		t, err := d.ReadToken()
		if err != nil || t.Kind() != '0' {
			return errFoldedFormat
		}
		r.At = time.Unix(0, t.Int()).UTC()
		if t, err = d.ReadToken(); err != nil || t.Kind() != '"' {
			return errFoldedFormat
		}
		r.EventID = t.String()
		if d.PeekKind() == '"' {
			t, _ = d.ReadToken()
			r.Verification = domain.Verification(t.String())
		}
		if t, err = d.ReadToken(); err != nil || t.Kind() != ']' {
			return errFoldedFormat
		}
		f.Recent = append(f.Recent, r)
	}
	_, err := d.ReadToken()
	return err
}

// addResult is what Folded.add found.
type addResult int

const (
	seenEvent addResult = iota // in the window already: a redelivery
	newEvent                   // added, counted
	lateEvent                  // older than the whole window: unknown
)

// add records ev and reports whether it was new, updating meta. A late
// event changes nothing here; foldEvent decides.
func (f *Folded) add(meta *domain.RecordMeta, ev *domain.Envelope) addResult {
	ref := refOf(ev)
	i, found := slices.BinarySearchFunc(f.Recent, ref, compareRefs)
	switch {
	case found:
		return seenEvent
	case i == 0 && f.Count > len(f.Recent):
		return lateEvent // the window has let events go: this may be one
	}
	f.Recent = slices.Insert(f.Recent, i, ref)
	f.trim()
	f.count(meta, ev)
	return newEvent
}

// trim lets go of the events the window no longer keeps: those neither
// among the latest FoldedRefs nor within FoldedHorizon of the latest, and
// any past MaxFoldedRefs.
func (f *Folded) trim() {
	n := len(f.Recent)
	if n <= FoldedRefs {
		return
	}
	horizon := f.Recent[n-1].At.Add(-FoldedHorizon)
	cut, _ := slices.BinarySearchFunc(f.Recent[:n-FoldedRefs], horizon, func(r domain.EventRef, t time.Time) int { return r.At.Compare(t) })
	cut = max(cut, n-MaxFoldedRefs)
	f.Recent = slices.Delete(f.Recent, 0, cut)
}

// count counts ev (new, or late and changing the record) and updates meta.
func (f *Folded) count(meta *domain.RecordMeta, ev *domain.Envelope) {
	f.Count++
	f.mark(refOf(ev))
	f.describe(meta)
	if ev.Account != "" && (meta.Account == "" || ev.Account < meta.Account) {
		meta.Account = ev.Account
	}
}

// mark joins r's trust into the set's.
func (f *Folded) mark(r domain.EventRef) {
	if r.Verification == "" {
		f.Signed = true
	} else {
		f.Unverified = domain.LeastTrusted(f.Unverified, r.Verification)
	}
}

func refOf(ev *domain.Envelope) domain.EventRef {
	return domain.EventRef{At: ev.Created.UTC(), EventID: ev.EventID, Verification: untrusted(ev)}
}

// describe sets meta from the set: Version from Count (for a wallet,
// deriveWallet adds its parts' versions).
func (f Folded) describe(meta *domain.RecordMeta) {
	if len(f.Recent) == 0 {
		return
	}
	meta.Version = f.Count
	meta.UpdatedAt = f.Recent[len(f.Recent)-1].At
	meta.Verification = domain.LeastTrusted(domain.VerifiedSignature, f.Unverified)
	meta.EventIDs = meta.EventIDs[:0]
	for _, r := range f.Recent[max(0, len(f.Recent)-domain.MaxRecordEvents):] {
		meta.EventIDs = append(meta.EventIDs, r.EventID)
	}
}

// union merges other's window and trust into f's (not its count, which
// only the owner of a set knows): how a record shows the latest events of
// the parts it is derived from.
func (f *Folded) union(other Folded) {
	for _, r := range other.Recent {
		if i, found := slices.BinarySearchFunc(f.Recent, r, compareRefs); !found {
			f.Recent = slices.Insert(f.Recent, i, r)
		}
	}
	f.trim()
	f.Signed = f.Signed || other.Signed
	f.Unverified = domain.LeastTrusted(f.Unverified, other.Unverified)
}

func compareRefs(a, b domain.EventRef) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	if c := strings.Compare(a.EventID, b.EventID); c != 0 {
		return c
	}
	return strings.Compare(string(a.Verification), string(b.Verification))
}

// Stamp orders the facts of a last-writer-wins register: signed input
// after (over) any unsigned input, then by the provider's clock, then by
// Rank (what the event type says about its place among events of the same
// second), then by event id, so the order is total and every process picks
// the same winner.
type Stamp struct {
	// Unverified is the verification of input no signature vouches for
	// (unsigned, bypass), empty for a signed event.
	Unverified domain.Verification `json:"unverified,omitempty"`
	At         time.Time           `json:"at"`
	Rank       int                 `json:"rank"`
	EventID    string              `json:"event_id"`
}

// Compare orders stamps.
func (s Stamp) Compare(o Stamp) int {
	if c := compareTrust(s.Unverified, o.Unverified); c != 0 {
		return c
	}
	if c := s.At.Compare(o.At); c != 0 {
		return c
	}
	if s.Rank != o.Rank {
		if s.Rank < o.Rank {
			return -1
		}
		return 1
	}
	return strings.Compare(s.EventID, o.EventID)
}

// After reports whether s wins over o.
func (s Stamp) After(o Stamp) bool { return s.Compare(o) > 0 }

// FirstOver reports whether s wins over o in a register the earliest fact
// holds (a top-up's grant, a signup bonus): signed input still wins over
// unsigned input, then the earlier stamp wins.
func (s Stamp) FirstOver(o Stamp) bool {
	if c := compareTrust(s.Unverified, o.Unverified); c != 0 {
		return c > 0
	}
	return o.After(s)
}

// stampOf is the stamp of ev with rank.
func stampOf(ev *domain.Envelope, rank int) Stamp {
	return Stamp{Unverified: untrusted(ev), At: ev.Created.UTC(), Rank: rank, EventID: ev.EventID}
}
