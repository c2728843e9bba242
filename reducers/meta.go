package reducers

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

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

// decodeStored decodes a stored record; nil data is the zero record.
func decodeStored[R any, M any](data []byte) (Stored[R, M], error) {
	var s Stored[R, M]
	if data == nil {
		return s, nil
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, domain.Wrap(domain.CodeReducerDecode, err, "stored record does not decode")
	}
	return s, nil
}

// encode encodes a stored record. encoding/json sorts map keys, so equal
// records encode to equal bytes.
func (s Stored[R, M]) encode() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic("reducers: record does not encode: " + err.Error()) // only plain data types are stored
	}
	return b
}

// Folded is the set of events folded into a record, ordered by provider
// time then id: what makes a redelivery a no-op and what RecordMeta derives
// from.
type Folded []domain.EventRef

// add records ev and reports whether it was new, updating meta.
func (f *Folded) add(meta *domain.RecordMeta, ev *domain.Envelope) bool {
	ref := domain.EventRef{At: ev.Created.UTC(), EventID: ev.EventID, Verification: untrusted(ev)}
	i, found := slices.BinarySearchFunc(*f, ref, compareRefs)
	if found {
		return false
	}
	*f = slices.Insert(*f, i, ref)
	f.describe(meta)
	if ev.Account != "" && (meta.Account == "" || ev.Account < meta.Account) {
		meta.Account = ev.Account
	}
	return true
}

// describe sets meta from the set.
func (f Folded) describe(meta *domain.RecordMeta) {
	all := f
	if len(all) == 0 {
		return
	}
	meta.Version = len(all)
	meta.UpdatedAt = all[len(all)-1].At
	meta.Verification = domain.VerifiedSignature
	for _, r := range all {
		meta.Verification = domain.LeastTrusted(meta.Verification, r.Verification)
	}
	meta.EventIDs = meta.EventIDs[:0]
	for _, r := range all[max(0, len(all)-domain.MaxRecordEvents):] {
		meta.EventIDs = append(meta.EventIDs, r.EventID)
	}
}

// union adds every event of other, updating meta.
func (f *Folded) union(meta *domain.RecordMeta, other Folded) {
	for _, r := range other {
		if i, found := slices.BinarySearchFunc(*f, r, compareRefs); !found {
			*f = slices.Insert(*f, i, r)
		}
	}
	f.describe(meta)
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
