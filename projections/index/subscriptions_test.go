package index

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
)

// keyOf is the store key of a subscription: one per (provider, id), as
// the reducers derive it.
func keyOf(provider, id string) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(provider+"/"+id))
}

func sub(provider, id, customer string, state domain.LifecycleState) Subscription {
	return Subscription{Key: keyOf(provider, id), Provider: provider, ID: id, Customer: customer, State: state}
}

// A list is filtered by state, provider and customer, ordered by
// (provider, id), and paged by cursor.
func TestSubscriptionsListFilterOrderAndPages(t *testing.T) {
	x := NewSubscriptions()
	x.Put(sub("stripe", "sub_b", "cus_1", domain.StateActive))
	x.Put(sub("braintree", "bt_1", "c1", domain.StateActive))
	x.Put(sub("stripe", "sub_a", "cus_1", domain.StateEnded))
	x.Put(sub("stripe", "sub_c", "cus_2", domain.StateActive))

	ids := func(page []Subscription) []string {
		var out []string
		for _, s := range page {
			out = append(out, s.Provider+"/"+s.ID)
		}
		return out
	}
	page, more := x.List(Filter{}, 10, nil)
	assert.Equal(t, []string{"braintree/bt_1", "stripe/sub_a", "stripe/sub_b", "stripe/sub_c"}, ids(page))
	assert.False(t, more)

	page, more = x.List(Filter{State: domain.StateActive}, 2, nil)
	assert.Equal(t, []string{"braintree/bt_1", "stripe/sub_b"}, ids(page))
	assert.True(t, more)
	after := page[1].Pos()
	page, more = x.List(Filter{State: domain.StateActive}, 2, &after)
	assert.Equal(t, []string{"stripe/sub_c"}, ids(page))
	assert.False(t, more)

	page, _ = x.List(Filter{Provider: "stripe", State: domain.StateActive}, 10, nil)
	assert.Equal(t, []string{"stripe/sub_b", "stripe/sub_c"}, ids(page))
	page, _ = x.List(Filter{Customer: "cus_1"}, 10, nil)
	assert.Equal(t, []string{"stripe/sub_a", "stripe/sub_b"}, ids(page))
	page, _ = x.List(Filter{Provider: "paddle"}, 10, nil)
	assert.Empty(t, page, "a provider the index never saw has no subscriptions")

	// A state change moves the subscription between lists; a delete
	// takes it out of all of them.
	x.Put(sub("stripe", "sub_b", "cus_1", domain.StateEnded))
	x.Delete(keyOf("braintree", "bt_1"))
	page, _ = x.List(Filter{State: domain.StateActive}, 10, nil)
	assert.Equal(t, []string{"stripe/sub_c"}, ids(page))
	counts := x.Counts()
	assert.Equal(t, 1, counts[domain.StateActive])
	assert.Equal(t, 2, counts[domain.StateEnded])
	assert.Len(t, counts, len(domain.LifecycleStates), "every state is counted, zero included")
	assert.Equal(t, 3, x.Len())

	got := x.OfCustomers([]Customer{{"stripe", "cus_2"}, {"stripe", "cus_1"}, {"braintree", "cus_1"}})
	assert.Equal(t, []string{"stripe/sub_a", "stripe/sub_b", "stripe/sub_c"}, ids(got))
}

// A subscription in a state this build does not know is listed under no
// known state, counted nowhere, and still in the list of all.
func TestSubscriptionsUnknownState(t *testing.T) {
	x := NewSubscriptions()
	x.Put(sub("stripe", "sub_x", "", "frozen"))
	page, _ := x.List(Filter{}, 10, nil)
	require.Len(t, page, 1)
	assert.Equal(t, domain.LifecycleState("frozen"), page[0].State)
	assert.Empty(t, page[0].Customer)
	page, _ = x.List(Filter{State: domain.StateActive}, 10, nil)
	assert.Empty(t, page)
	for _, n := range x.Counts() {
		assert.Zero(t, n)
	}
}

// Many entries split and merge the sorted runs; the order survives.
func TestSubscriptionsManyEntriesStayOrdered(t *testing.T) {
	x := NewSubscriptions()
	const n = 5000
	for i := range n {
		x.Put(sub("stripe", fmt.Sprintf("sub_%05d", (i*7919)%n), fmt.Sprintf("cus_%d", i%100), domain.StateActive))
	}
	for i := 0; i < n; i += 3 {
		x.Delete(keyOf("stripe", fmt.Sprintf("sub_%05d", i)))
	}
	var got []string
	var after *Position
	for {
		page, more := x.List(Filter{Provider: "stripe"}, 333, after)
		for _, s := range page {
			got = append(got, s.ID)
		}
		if !more {
			break
		}
		p := page[len(page)-1].Pos()
		after = &p
	}
	var want []string
	for i := range n {
		if i%3 != 0 {
			want = append(want, fmt.Sprintf("sub_%05d", i))
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, len(want), x.Len())
}

// model is the naive index the property tests compare with: a map of
// subscriptions, filtered and sorted on every question.
type model map[uuid.UUID]Subscription

func (m model) list(f Filter, after *Position) []Subscription {
	var out []Subscription
	for _, s := range m {
		if (f.State == "" || s.State == f.State) && (f.Provider == "" || s.Provider == f.Provider) &&
			(f.Customer == "" || s.Customer == f.Customer) && (after == nil || ComparePositions(s.Pos(), *after) > 0) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Subscription) int { return ComparePositions(a.Pos(), b.Pos()) })
	return out
}

var (
	genProvider = rapid.SampledFrom([]string{"stripe", "braintree", "pactapay"})
	genSubID    = rapid.StringMatching(`sub_[a-e]{1,2}`)
	genCustomer = rapid.SampledFrom([]string{"", "cus_1", "cus_2", "cus_3", "cus_4"})
	genState    = rapid.SampledFrom(append(slices.Clone(domain.LifecycleStates), "frozen"))
)

func genFilter(t *rapid.T) Filter {
	return Filter{
		State:    rapid.SampledFrom(append([]domain.LifecycleState{""}, domain.LifecycleStates...)).Draw(t, "state"),
		Provider: rapid.SampledFrom([]string{"", "stripe", "braintree", "pactapay", "paddle"}).Draw(t, "provider"),
		Customer: rapid.SampledFrom([]string{"", "", "cus_1", "cus_2", "cus_9"}).Draw(t, "customer"),
	}
}

// change puts or deletes a random subscription in both x and m.
func change(t *rapid.T, x *Subscriptions, m model) {
	provider, id := genProvider.Draw(t, "p"), genSubID.Draw(t, "id")
	key := keyOf(provider, id)
	if rapid.IntRange(0, 4).Draw(t, "op") == 0 {
		x.Delete(key)
		delete(m, key)
		return
	}
	s := Subscription{Key: key, Provider: provider, ID: id, Customer: genCustomer.Draw(t, "c"), State: genState.Draw(t, "s")}
	x.Put(s)
	m[key] = s
}

// Under any sequence of puts and deletes, loaded in bulk (StartLoad ...
// FinishLoad, as a starting process does) or one by one, every list,
// paged to its end, answers exactly what the naive model answers, and the
// counts agree.
func TestSubscriptionsMatchModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x, m := NewSubscriptions(), model{}
		n := rapid.IntRange(0, 200).Draw(t, "changes")
		bulk := rapid.IntRange(-1, n).Draw(t, "bulk load until")
		if bulk >= 0 {
			x.StartLoad()
		}
		for i := range n {
			if i == bulk {
				x.FinishLoad()
			}
			change(t, x, m)
		}
		x.FinishLoad()
		f := genFilter(t)
		limit := rapid.IntRange(1, 7).Draw(t, "limit")
		var got []Subscription
		var after *Position
		for {
			page, more := x.List(f, limit, after)
			require.LessOrEqual(t, len(page), limit)
			got = append(got, page...)
			if !more || len(page) == 0 {
				break
			}
			p := page[len(page)-1].Pos()
			after = &p
		}
		want := m.list(f, nil)
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, got)
		counts := map[domain.LifecycleState]int{}
		for _, s := range domain.LifecycleStates {
			counts[s] = len(m.list(Filter{State: s}, nil))
		}
		require.Equal(t, counts, x.Counts())
		require.Equal(t, len(m), x.Len())
	})
}

// While records change between pages, paging by cursor never returns a
// record twice and never misses one that matched before the first page
// and kept matching (and existing) until the last.
func TestSubscriptionsCursorUnderChanges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x, m := NewSubscriptions(), model{}
		for range rapid.IntRange(0, 150).Draw(t, "changes") {
			change(t, x, m)
		}
		f := genFilter(t)
		limit := rapid.IntRange(1, 5).Draw(t, "limit")
		// steady: the records matching now; any change drops one.
		steady := map[uuid.UUID]Subscription{}
		for _, s := range m.list(f, nil) {
			steady[s.Key] = s
		}
		seen := map[uuid.UUID]bool{}
		var after *Position
		for {
			page, more := x.List(f, limit, after)
			for _, s := range page {
				require.False(t, seen[s.Key], "%s/%s repeated", s.Provider, s.ID)
				seen[s.Key] = true
				if after != nil {
					require.Positive(t, ComparePositions(s.Pos(), *after), "a page goes back before its cursor")
				}
			}
			if !more || len(page) == 0 {
				break
			}
			p := page[len(page)-1].Pos()
			after = &p
			for range rapid.IntRange(0, 4).Draw(t, "between") {
				change(t, x, m)
			}
			for k, s := range steady {
				if m[k] != s {
					delete(steady, k)
				}
			}
		}
		for k, s := range steady {
			require.True(t, seen[k], "%s/%s matched throughout and was missed", s.Provider, s.ID)
		}
	})
}

// Interning gives one id per distinct string, and every id reads back
// its string, across growth of the arena and the table.
func TestStringSetInterns(t *testing.T) {
	s := newStringSet()
	ids := map[string]uint32{}
	for i := range 3000 {
		str := fmt.Sprintf("cus_%d", i%1700)
		if i%500 == 0 {
			str = ""
		}
		id := s.intern(str)
		if prev, ok := ids[str]; ok {
			require.Equal(t, prev, id, str)
		}
		ids[str] = id
	}
	assert.Equal(t, len(ids), s.len())
	for str, id := range ids {
		assert.Equal(t, str, s.str(id))
		got, ok := s.lookup(str)
		assert.True(t, ok)
		assert.Equal(t, id, got)
	}
	_, ok := s.lookup("cus_99999")
	assert.False(t, ok)
}

// Readers page while a writer changes records: every page a reader gets
// is in strict (provider, id) order and within its limit (run with -race
// to check the locking).
func TestSubscriptionsConcurrentReadersAndWriter(t *testing.T) {
	x := NewSubscriptions()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20_000 {
			id := fmt.Sprintf("sub_%04d", i%3000)
			if i%7 == 0 {
				x.Delete(keyOf("stripe", id))
				continue
			}
			x.Put(sub("stripe", id, fmt.Sprintf("cus_%d", i%50), domain.LifecycleStates[i%len(domain.LifecycleStates)]))
		}
	}()
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		var after *Position
		for range 20 {
			page, more := x.List(Filter{State: domain.StateActive}, 50, after)
			require.LessOrEqual(t, len(page), 50)
			for i, s := range page {
				require.Equal(t, domain.StateActive, s.State)
				if i > 0 {
					require.Negative(t, ComparePositions(page[i-1].Pos(), s.Pos()))
				}
			}
			if !more {
				break
			}
			p := page[len(page)-1].Pos()
			after = &p
		}
	}
}
