package reducers

import (
	"bytes"
	"encoding/json"
	"slices"
)

// Fact is one provider snapshot in a last-writer-wins history: its stamp,
// the values of the fields billfold reads (by their provider JSON names),
// and what the provider says those fields were just before
// (Stripe's data.previous_attributes, restricted to the same fields).
type Fact struct {
	Stamp  Stamp                      `json:"stamp"`
	Fields map[string]json.RawMessage `json:"fields"`
	Prev   map[string]json.RawMessage `json:"prev,omitempty"`
	// Data is the projection's own reading of the snapshot, so deriving a
	// record never decodes the provider payload again.
	Data json.RawMessage `json:"data,omitempty"`
}

// follows reports whether a is a change made after b: a says what its
// fields were before, and b shows exactly those values.
func (a Fact) follows(b Fact) bool {
	if len(a.Prev) == 0 {
		return false
	}
	for k, before := range a.Prev {
		if !bytes.Equal(compact(before), compact(b.Fields[k])) {
			return false
		}
	}
	return true
}

func compact(v json.RawMessage) []byte {
	if len(v) == 0 {
		return []byte("null")
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return v
	}
	return buf.Bytes()
}

// orderFacts sorts facts into the order they happened, as far as the
// provider lets anyone tell: by provider time; within one second, a fact
// whose previous attributes match another's fields comes after it (a
// customer.subscription.updated that shares its second with trial_will_end
// is not lost); what is still tied goes by rank, then event id. The result
// depends only on the set of facts, never on the order they arrived in.
func orderFacts(facts []Fact) []Fact {
	out := slices.Clone(facts)
	slices.SortFunc(out, func(a, b Fact) int { return a.Stamp.Compare(b.Stamp) })
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].Stamp.At.Equal(out[i].Stamp.At) && out[j].Stamp.Unverified == out[i].Stamp.Unverified {
			j++
		}
		if j-i > 1 {
			topoSort(out[i:j])
		}
		i = j
	}
	return out
}

// topoSort orders one second's facts (already sorted by stamp) so that a
// fact comes after every fact it follows, picking the smallest stamp among
// those free to go next; a cycle, which only inconsistent data can make, is
// broken the same way.
func topoSort(group []Fact) {
	n := len(group)
	placed := make([]bool, n)
	result := make([]Fact, 0, n)
	for len(result) < n {
		pick := -1
		for i := range n {
			if placed[i] {
				continue
			}
			if pick == -1 {
				pick = i // the smallest unplaced stamp: the fallback on a cycle
			}
			free := true
			for j := range n {
				if !placed[j] && j != i && group[i].follows(group[j]) && !group[j].follows(group[i]) {
					free = false
					break
				}
			}
			if free {
				pick = i
				break
			}
		}
		placed[pick] = true
		result = append(result, group[pick])
	}
	copy(group, result)
}

// addFact adds f to a history kept to the latest limit facts, ignoring a
// fact already there, and returns the facts that fell off the end (at most
// one). Keeping the top of an ordered set is itself order-independent.
func addFact(history []Fact, f Fact, limit int) (kept []Fact, added bool, dropped []Fact) {
	for _, h := range history {
		if h.Stamp.EventID == f.Stamp.EventID {
			return history, false, nil
		}
	}
	history = append(history, f)
	slices.SortFunc(history, func(a, b Fact) int { return a.Stamp.Compare(b.Stamp) })
	if n := len(history) - limit; n > 0 {
		dropped = slices.Clone(history[:n])
		history = history[n:]
	}
	return history, true, dropped
}
