package index

import (
	"slices"
	"strings"
	"sync"

	"github.com/looplab/eventhorizon/uuid"

	"github.com/billfold/billfold/domain"
)

// Subscription is one subscription as the index knows it: its store key
// and the fields lists filter and order by.
type Subscription struct {
	Key      uuid.UUID // the store key is subscription.<Key>
	Provider string
	ID       string
	Customer string
	State    domain.LifecycleState
}

// Position is a place in the list order: provider, then id.
type Position struct{ Provider, ID string }

// Pos is s's place in the list order.
func (s Subscription) Pos() Position { return Position{s.Provider, s.ID} }

// ComparePositions orders positions by provider, then id.
func ComparePositions(a, b Position) int {
	if c := strings.Compare(a.Provider, b.Provider); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Filter selects subscriptions; empty fields match all.
type Filter struct {
	State    domain.LifecycleState
	Provider string
	Customer string
}

// Customer names a customer at a provider.
type Customer struct{ Provider, ID string }

// none marks "no slot" in the customer chains.
const none = ^uint32(0)

// slot is one subscription, by integer: every string is an id in the
// string set, the state a number in states, and the subscriptions of one
// customer a chain through nextOfCustomer. No field is a pointer.
type slot struct {
	key            uuid.UUID
	provider, id   uint32
	customer       uint32 // none: no customer
	nextOfCustomer uint32
	state          uint8
}

// maxStates bounds the distinct states the index lists separately; a
// state name past it (only a corrupt record could bring so many) is
// listed under the last one's number, and a filter by it finds it
// nowhere, as a state the build does not know.
const maxStates = 255

// Subscriptions indexes subscriptions by lifecycle state, provider and
// customer, for lists in (provider, id) order with cursors. It is safe
// for concurrent use.
type Subscriptions struct {
	mu    sync.RWMutex
	strs  *stringSet
	slots []slot
	free  []uint32
	byKey map[uuid.UUID]uint32 // neither keys nor values are pointers
	all   sortedSlots
	// byState[n] lists the subscriptions in states[n].
	byState []sortedSlots
	states  []domain.LifecycleState
	// custHead[c] is the first slot of customer string c, none if it
	// has none.
	custHead []uint32
	// loading: between StartLoad and FinishLoad, puts are not placed in
	// the sorted runs (FinishLoad sorts them all at once), and slots
	// freed meanwhile wait in freed.
	loading bool
	freed   []uint32
}

// NewSubscriptions returns an empty index.
func NewSubscriptions() *Subscriptions {
	x := &Subscriptions{strs: newStringSet(), byKey: map[uuid.UUID]uint32{}}
	for _, s := range domain.LifecycleStates {
		x.stateCode(s)
	}
	return x
}

func (x *Subscriptions) stateCode(s domain.LifecycleState) uint8 {
	if i := slices.Index(x.states, s); i >= 0 {
		return uint8(i)
	}
	if len(x.states) == maxStates {
		return maxStates - 1
	}
	x.states = append(x.states, s)
	x.byState = append(x.byState, sortedSlots{})
	return uint8(len(x.states) - 1)
}

// cmp orders slots by provider, then id, then slot number (so two
// records at one position, which only corrupt records produce, still
// have an order).
func (x *Subscriptions) cmp(a, b uint32) int {
	sa, sb := &x.slots[a], &x.slots[b]
	if sa.provider != sb.provider {
		if c := strings.Compare(x.strs.str(sa.provider), x.strs.str(sb.provider)); c != 0 {
			return c
		}
	}
	if c := strings.Compare(x.strs.str(sa.id), x.strs.str(sb.id)); c != 0 {
		return c
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// comparePos compares a slot's position with p.
func (x *Subscriptions) comparePos(s uint32, p Position) int {
	e := &x.slots[s]
	if c := strings.Compare(x.strs.str(e.provider), p.Provider); c != 0 {
		return c
	}
	return strings.Compare(x.strs.str(e.id), p.ID)
}

// StartLoad prepares the index for many puts at once (a process that
// starts and reads every stored record): until FinishLoad, puts and
// deletes only record the subscriptions, and lists do not see them.
func (x *Subscriptions) StartLoad() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.loading = true
}

// FinishLoad sorts every subscription into the lists at once, which costs
// a fraction of placing each in order as it comes, and ends the load.
func (x *Subscriptions) FinishLoad() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.loading {
		return
	}
	x.loading = false
	x.free, x.freed = append(x.free, x.freed...), nil
	type sortKey struct {
		provider, id string
		n            uint32
	}
	keys := make([]sortKey, 0, len(x.byKey))
	for _, n := range x.byKey {
		e := &x.slots[n]
		keys = append(keys, sortKey{x.strs.str(e.provider), x.strs.str(e.id), n})
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := strings.Compare(a.provider, b.provider); c != 0 {
			return c
		}
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return int(a.n) - int(b.n)
	})
	all := make([]uint32, len(keys))
	byState := make([][]uint32, len(x.states))
	for i, k := range keys {
		all[i] = k.n
		st := x.slots[k.n].state
		byState[st] = append(byState[st], k.n)
	}
	x.all.build(all)
	for i := range x.byState {
		x.byState[i].build(byState[i])
	}
}

// Put adds s, or replaces the subscription with s.Key.
func (x *Subscriptions) Put(s Subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	provider, id := x.strs.intern(s.Provider), x.strs.intern(s.ID)
	customer := none
	if s.Customer != "" {
		customer = x.strs.intern(s.Customer)
	}
	state := x.stateCode(s.State)
	if n, ok := x.byKey[s.Key]; ok {
		old := &x.slots[n]
		if old.provider == provider && old.id == id && old.customer == customer && old.state == state {
			return
		}
		x.drop(n)
	}
	var n uint32
	if k := len(x.free); k > 0 {
		n, x.free = x.free[k-1], x.free[:k-1]
	} else {
		n = uint32(len(x.slots))
		x.slots = append(x.slots, slot{})
	}
	x.slots[n] = slot{key: s.Key, provider: provider, id: id, customer: customer, nextOfCustomer: none, state: state}
	x.byKey[s.Key] = n
	if !x.loading {
		x.all.insert(n, x.cmp)
		x.byState[state].insert(n, x.cmp)
	}
	if customer != none {
		for int(customer) >= len(x.custHead) {
			x.custHead = append(x.custHead, none)
		}
		x.slots[n].nextOfCustomer = x.custHead[customer]
		x.custHead[customer] = n
	}
}

// Delete removes the subscription with key, if the index has it.
func (x *Subscriptions) Delete(key uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n, ok := x.byKey[key]; ok {
		x.drop(n)
	}
}

// drop takes slot n out of the index and frees it.
func (x *Subscriptions) drop(n uint32) {
	x.unlink(n)
	delete(x.byKey, x.slots[n].key)
	if x.loading {
		x.freed = append(x.freed, n)
	} else {
		x.free = append(x.free, n)
	}
}

// unlink takes slot n out of every list; its position must be intact
// while it is looked up.
func (x *Subscriptions) unlink(n uint32) {
	e := &x.slots[n]
	if !x.loading {
		x.all.remove(n, x.cmp)
		x.byState[e.state].remove(n, x.cmp)
	}
	if e.customer != none {
		for p := &x.custHead[e.customer]; *p != none; p = &x.slots[*p].nextOfCustomer {
			if *p == n {
				*p = e.nextOfCustomer
				break
			}
		}
	}
}

func (x *Subscriptions) entry(n uint32) Subscription {
	e := &x.slots[n]
	s := Subscription{Key: e.key, Provider: x.strs.str(e.provider), ID: x.strs.str(e.id), State: x.states[e.state]}
	if e.customer != none {
		s.Customer = x.strs.str(e.customer)
	}
	return s
}

// ofCustomer returns the slots of customer string c.
func (x *Subscriptions) ofCustomer(c uint32) []uint32 {
	var out []uint32
	if int(c) < len(x.custHead) {
		for n := x.custHead[c]; n != none; n = x.slots[n].nextOfCustomer {
			out = append(out, n)
		}
	}
	return out
}

// List returns up to limit subscriptions matching f after the position
// after (from the start when nil), in (provider, id) order, and whether
// more may follow.
func (x *Subscriptions) List(f Filter, limit int, after *Position) ([]Subscription, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	state, provider := -1, none
	if f.State != "" {
		i := slices.Index(x.states, f.State)
		if i < 0 {
			return nil, false
		}
		state = i
	}
	if f.Provider != "" {
		p, ok := x.strs.lookup(f.Provider)
		if !ok {
			return nil, false
		}
		provider = p
	}
	match := func(n uint32) bool {
		e := &x.slots[n]
		return (state < 0 || int(e.state) == state) && (provider == none || e.provider == provider)
	}
	var out []uint32
	more := false
	if f.Customer != "" {
		// A customer has few subscriptions: filter and sort them.
		c, ok := x.strs.lookup(f.Customer)
		if !ok {
			return nil, false
		}
		for _, n := range x.ofCustomer(c) {
			if match(n) && (after == nil || x.comparePos(n, *after) > 0) {
				out = append(out, n)
			}
		}
		slices.SortFunc(out, x.cmp)
		if len(out) > limit {
			out, more = out[:limit], true
		}
	} else {
		l := &x.all
		if state >= 0 {
			l = &x.byState[state]
		}
		start, strict := Position{Provider: f.Provider}, false
		if after != nil && ComparePositions(*after, start) >= 0 {
			start, strict = *after, true
		}
		from := func(n uint32) bool {
			c := x.comparePos(n, start)
			return c > 0 || (c == 0 && !strict)
		}
		l.ascend(from, func(n uint32) bool {
			if provider != none && x.slots[n].provider != provider {
				return false // past the provider's range
			}
			if len(out) == limit {
				more = true
				return false
			}
			out = append(out, n)
			return true
		})
	}
	page := make([]Subscription, len(out))
	for i, n := range out {
		page[i] = x.entry(n)
	}
	return page, more
}

// Counts returns the number of subscriptions in each lifecycle state,
// every state of domain.LifecycleStates present.
func (x *Subscriptions) Counts() map[domain.LifecycleState]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[domain.LifecycleState]int{}
	for _, s := range domain.LifecycleStates {
		out[s] = x.byState[slices.Index(x.states, s)].len()
	}
	return out
}

// Len is the number of subscriptions in the index.
func (x *Subscriptions) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.all.len()
}

// OfCustomers returns the subscriptions of the customers (each matched
// with its provider), in (provider, id) order, each once.
func (x *Subscriptions) OfCustomers(customers []Customer) []Subscription {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []uint32
	for _, c := range customers {
		id, ok := x.strs.lookup(c.ID)
		if !ok {
			continue
		}
		for _, n := range x.ofCustomer(id) {
			if x.strs.str(x.slots[n].provider) == c.Provider {
				out = append(out, n)
			}
		}
	}
	slices.SortFunc(out, x.cmp)
	out = slices.Compact(out)
	page := make([]Subscription, len(out))
	for i, n := range out {
		page[i] = x.entry(n)
	}
	return page
}

// Bytes is about how much memory the index holds.
func (x *Subscriptions) Bytes() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := x.strs.bytes() + 40*cap(x.slots) + 4*cap(x.free) + 4*cap(x.custHead) + x.all.bytes()
	for i := range x.byState {
		n += x.byState[i].bytes()
	}
	return n + 24*len(x.byKey) // map buckets: key, value and overhead, roughly
}
