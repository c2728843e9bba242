package reducers

import (
	"maps"
	"testing"

	"pgregory.net/rapid"
)

// reads is a Lookup that records the keys read.
type reads struct {
	memory
	keys map[string]bool
}

func (r reads) Get(key string) ([]byte, error) {
	r.keys[key] = true
	return r.memory.Get(key)
}

// Every key a projection hints for an event is a record its Apply reads
// for that event, at whatever point of a history the event comes: a hint
// never makes a projector read what the fold does not need.
func TestKeyHintsAreRecordsApplyReads(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := DefaultOptions()
		m := memory{}
		hinted := 0
		for _, ev := range genHistory(t) {
			for _, p := range All(o) {
				if !p.Handles(ev.Provider, ev.EventType) {
					continue
				}
				r := reads{memory: m, keys: map[string]bool{}}
				changes, err := p.Apply(ev, r)
				if err != nil {
					t.Fatalf("%s %s: %v", p.Name(), ev.EventID, err)
				}
				for _, k := range p.(KeyHinter).Keys(ev) {
					hinted++
					if !r.keys[k] {
						t.Fatalf("%s hints %s for %s %s, which Apply does not read (it reads %v)", p.Name(), k, ev.EventType, ev.EventID, r.keys)
					}
				}
				maps.Copy(m, changes)
			}
		}
		if hinted == 0 {
			t.Fatalf("no hint in a history of events every projection folds")
		}
	})
}
