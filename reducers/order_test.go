package reducers

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"pgregory.net/rapid"
)

func fact(at int64, rank int, id string, fields, prev map[string]string) Fact {
	f := Fact{Stamp: Stamp{At: time.Unix(at, 0).UTC(), Rank: rank, EventID: id}, Fields: map[string]json.RawMessage{}}
	for k, v := range fields {
		f.Fields[k] = json.RawMessage(v)
	}
	if prev != nil {
		f.Prev = map[string]json.RawMessage{}
		for k, v := range prev {
			f.Prev[k] = json.RawMessage(v)
		}
	}
	return f
}

func ids(fs []Fact) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Stamp.EventID)
	}
	return out
}

func TestOrderFacts(t *testing.T) {
	// Same second: trial_will_end (informational, rank 0) and an update
	// whose previous_attributes show it changed status from trialing. The
	// update is last whatever the ranks or ids say.
	trialWillEnd := fact(100, 0, "evt_b", map[string]string{"status": `"trialing"`}, nil)
	updated := fact(100, 2, "evt_a", map[string]string{"status": `"active"`}, map[string]string{"status": `"trialing"`})
	assert.Equal(t, []string{"evt_b", "evt_a"}, ids(orderFacts([]Fact{updated, trialWillEnd})))
	assert.Equal(t, []string{"evt_b", "evt_a"}, ids(orderFacts([]Fact{trialWillEnd, updated})))

	// previous_attributes beat rank: an update (rank 2) followed in the same
	// second by a lower-ranked event that says it came after.
	first := fact(100, 2, "evt_1", map[string]string{"status": `"active"`}, nil)
	second := fact(100, 1, "evt_2", map[string]string{"status": `"past_due"`}, map[string]string{"status": `"active"`})
	assert.Equal(t, []string{"evt_1", "evt_2"}, ids(orderFacts([]Fact{second, first})))

	// Without previous attributes: time, then rank, then id.
	assert.Equal(t, []string{"x", "y", "z"}, ids(orderFacts([]Fact{
		fact(101, 0, "z", nil, nil), fact(100, 2, "y", nil, nil), fact(100, 1, "x", nil, nil),
	})))

	// A cycle (inconsistent data) is broken deterministically.
	c1 := fact(100, 1, "c1", map[string]string{"s": `"a"`}, map[string]string{"s": `"b"`})
	c2 := fact(100, 1, "c2", map[string]string{"s": `"b"`}, map[string]string{"s": `"a"`})
	assert.Equal(t, ids(orderFacts([]Fact{c1, c2})), ids(orderFacts([]Fact{c2, c1})))
}

// Any permutation of any facts, with any duplicates, orders the same, and
// keeping the latest N is the same whatever the arrival order.
func TestOrderFactsIsOrderIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		statuses := []string{`"trialing"`, `"active"`, `"past_due"`, `"canceled"`}
		n := rapid.IntRange(1, 12).Draw(t, "n")
		var facts []Fact
		for i := range n {
			f := fact(int64(rapid.IntRange(100, 103).Draw(t, "at")), rapid.IntRange(0, 3).Draw(t, "rank"), fmt.Sprintf("evt_%02d", i),
				map[string]string{"status": rapid.SampledFrom(statuses).Draw(t, "status")}, nil)
			if rapid.Bool().Draw(t, "hasPrev") {
				f.Prev = map[string]json.RawMessage{"status": json.RawMessage(rapid.SampledFrom(statuses).Draw(t, "prev"))}
			}
			facts = append(facts, f)
		}
		perm := rapid.Permutation(facts).Draw(t, "perm")
		dups := rapid.SliceOfN(rapid.SampledFrom(facts), 0, 5).Draw(t, "dups")
		limit := rapid.IntRange(1, 8).Draw(t, "limit")

		build := func(in []Fact) []Fact {
			var h []Fact
			for _, f := range in {
				h, _, _ = addFact(h, f, limit)
			}
			return orderFacts(h)
		}
		want := build(facts)
		got := build(append(perm, dups...))
		if fmt.Sprint(ids(want)) != fmt.Sprint(ids(got)) {
			t.Fatalf("order depends on arrival: %v vs %v", ids(want), ids(got))
		}
	})
}
