package reducers

import (
	"bytes"
	"maps"
	"slices"
	"strings"

	"github.com/billfold/billfold/domain"
)

// update folds ev into the record under key: it reads the stored record,
// lets apply change it, and returns the new encoding. An event already
// folded into the record changes nothing. apply sees the record with ev
// already added to folded.
func update[R any, M any](records Lookup, key string, ev *domain.Envelope, folded func(*Stored[R, M]) (*Folded, *domain.RecordMeta), apply func(*Stored[R, M]) error) (Changes, error) {
	raw, err := records.Get(key)
	if err != nil {
		return nil, err
	}
	s, err := decodeStored[R, M](raw)
	if err != nil {
		return nil, err
	}
	f, meta := folded(&s)
	changed, err := foldEvent(f, meta, ev, s.encode, func() error { return apply(&s) })
	if !changed || err != nil {
		return nil, err
	}
	return Changes{key: s.encode()}, nil
}

// foldEvent adds ev to f and applies it: once for an event the window shows
// is new; not at all for one it shows was folded already. An event older
// than the whole window is applied too (merge states are joins, so a
// redelivery changes nothing and a late event is never lost) and counted
// only if it changed the state, which encode shows. It reports whether
// the record changed.
func foldEvent(f *Folded, meta *domain.RecordMeta, ev *domain.Envelope, encode func() []byte, apply func() error) (bool, error) {
	switch f.add(meta, ev) {
	case seenEvent:
		return false, nil
	case newEvent:
		return true, apply()
	}
	before := encode()
	if err := apply(); err != nil {
		return false, err
	}
	if bytes.Equal(before, encode()) {
		return false, nil
	}
	f.count(meta, ev)
	// Again with ev counted: a derivation may read the set's trust.
	return true, apply()
}

// merge adds the changes of b to a.
func merge(a, b Changes) Changes {
	if a == nil {
		return b
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

// failSwitch refuses events of the configured types: the rehearsal switch
// for a reducer bug (Options.FailTypes).
func failSwitch(o Options, ev *domain.Envelope) error {
	if slices.Contains(o.FailTypes, ev.EventType) {
		return domain.Errorf(domain.CodeReducerFailed, "events of type %s are configured to fail (BILLFOLD_FAIL_EVENT_TYPES)", ev.EventType)
	}
	return nil
}

// addLinks adds ls to the set, kept sorted and without duplicates.
func addLinks(set []domain.Link, ls ...domain.Link) []domain.Link {
	for _, l := range ls {
		i, found := slices.BinarySearchFunc(set, l, compareLinks)
		if !found {
			set = slices.Insert(set, i, l)
		}
	}
	return set
}

func compareLinks(a, b domain.Link) int {
	if c := strings.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

// recordKey is the store key of a provider object's record.
func recordKey(kind, namespace, id string) string {
	return domain.RecordKey(kind, domain.AggregateID(namespace, kind, id))
}

// CustomerKey, SubscriptionKey, OrderKey and WalletKey are the store keys
// of records, for the query side.
func CustomerKey(namespace, id string) string { return recordKey(domain.KindCustomer, namespace, id) }
func SubscriptionKey(namespace, id string) string {
	return recordKey(domain.KindSubscription, namespace, id)
}
func OrderKey(namespace, id string) string { return recordKey(domain.KindOrder, namespace, id) }
func WalletKey(userID string) string {
	return recordKey(domain.KindWallet, domain.WalletNamespace, userID)
}

// untrusted is the verification of an event no signature vouches for
// (unsigned, bypass), "" for a signed one. Records flag such input
// (RecordMeta.Verification) and every last-writer-wins register ranks it
// below signed input about the same object, whatever the clocks say: a
// signed event always wins over unsigned input (compareTrust).
func untrusted(ev *domain.Envelope) domain.Verification {
	if ev.Verification == "" || ev.Verification.Trusted() {
		return ""
	}
	return ev.Verification
}

// signed reports whether any signed event is in the set: then the sets
// that only grow (an order's outcomes and refunds) leave out what only
// unsigned input reported, so signed input about an object wins there too.
func (f Folded) signed() bool { return f.Signed }

// mergeSets is the union of two sets.
func mergeSets[K comparable](a, b map[K]bool) map[K]bool {
	out := maps.Clone(a)
	if out == nil {
		out = map[K]bool{}
	}
	maps.Copy(out, b)
	return out
}

// compareTrust orders the Unverified marks of two stamps: signed ("")
// above unsigned, unsigned above bypass.
func compareTrust(a, b domain.Verification) int {
	if a == b {
		return 0
	}
	if domain.LeastTrusted(a, b) == a {
		return -1
	}
	return 1
}
