package index

import (
	"slices"
	"strings"
	"sync"

	"github.com/looplab/eventhorizon/uuid"

	"github.com/billfold/billfold/domain"
)

// Links indexes customers by the links their records carry (a user id in
// a Stripe customer's metadata, a Clerk user's own id) and orders by
// customer and by link, for a customer's subscriptions and orders across
// the identities linked to it. Like Subscriptions it holds nothing per
// record that the garbage collector walks: strings are interned in one
// arena, records are slots in slices, the maps have integer keys and
// values (which the collector does not scan), and the many-to-many
// relations are chains of nodes by number. It is safe for concurrent
// use.
type Links struct {
	mu   sync.RWMutex
	strs *stringSet

	customers     []customerSlot
	customerByKey map[uuid.UUID]uint32
	customerFree  []uint32
	// byIdent is the customer slot of an identity (provider and id,
	// paired); the record written last for it wins.
	byIdent map[uint64]uint32
	// customerLinks chains each link (kind and value, paired) to the
	// customers carrying it.
	customerLinks chains

	orders     []orderSlot
	orderByKey map[uuid.UUID]uint32
	orderFree  []uint32
	// orderCustomers chains each customer identity to its orders,
	// orderLinks each link to the orders carrying it.
	orderCustomers, orderLinks chains
}

type customerSlot struct {
	key   uuid.UUID
	who   uint64
	links uint32 // first node in customerLinks
}

type orderSlot struct {
	key          uuid.UUID
	provider, id uint32
	customer     uint32 // node in orderCustomers, none without a customer
	links        uint32 // first node in orderLinks
}

// NewLinks returns an empty index.
func NewLinks() *Links {
	return &Links{
		strs:          newStringSet(),
		customerByKey: map[uuid.UUID]uint32{}, byIdent: map[uint64]uint32{},
		orderByKey:    map[uuid.UUID]uint32{},
		customerLinks: newChains(), orderCustomers: newChains(), orderLinks: newChains(),
	}
}

func pair(a, b uint32) uint64 { return uint64(a)<<32 | uint64(b) }

func unpair(p uint64) (uint32, uint32) { return uint32(p >> 32), uint32(p) }

// linkPair interns l.
func (x *Links) linkPair(l domain.Link) uint64 {
	return pair(x.strs.intern(l.Kind), x.strs.intern(l.Value))
}

// lookupPair returns the pair of two strings, if both are interned.
func (x *Links) lookupPair(a, b string) (uint64, bool) {
	ia, ok := x.strs.lookup(a)
	if !ok {
		return 0, false
	}
	ib, ok := x.strs.lookup(b)
	return pair(ia, ib), ok
}

func (x *Links) customerOf(who uint64) Customer {
	p, id := unpair(who)
	return Customer{Provider: x.strs.str(p), ID: x.strs.str(id)}
}

// PutCustomer adds the customer record with key, or replaces it: who it
// is and the links it carries.
func (x *Links) PutCustomer(key uuid.UUID, who Customer, links []domain.Link) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropCustomer(key)
	n := takeSlot(&x.customers, &x.customerFree)
	s := customerSlot{key: key, who: pair(x.strs.intern(who.Provider), x.strs.intern(who.ID)), links: none}
	for _, l := range links {
		s.links = x.customerLinks.add(x.linkPair(l), n, s.links)
	}
	x.customers[n] = s
	x.customerByKey[key] = n
	x.byIdent[s.who] = n
}

// DeleteCustomer removes the customer record with key, if the index has
// it.
func (x *Links) DeleteCustomer(key uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropCustomer(key)
}

func (x *Links) dropCustomer(key uuid.UUID) {
	n, ok := x.customerByKey[key]
	if !ok {
		return
	}
	s := &x.customers[n]
	delete(x.customerByKey, key)
	if m, ok := x.byIdent[s.who]; ok && m == n {
		delete(x.byIdent, s.who)
	}
	x.customerLinks.removeOwner(s.links)
	*s = customerSlot{}
	x.customerFree = append(x.customerFree, n)
}

// PutOrder adds the order record with key, or replaces it: its place in
// the list order, its customer (none when customer.ID is empty) and the
// links it carries.
func (x *Links) PutOrder(key uuid.UUID, pos Position, customer Customer, links []domain.Link) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropOrder(key)
	n := takeSlot(&x.orders, &x.orderFree)
	s := orderSlot{key: key, provider: x.strs.intern(pos.Provider), id: x.strs.intern(pos.ID), customer: none, links: none}
	for _, l := range links {
		s.links = x.orderLinks.add(x.linkPair(l), n, s.links)
	}
	if customer.ID != "" {
		s.customer = x.orderCustomers.add(pair(x.strs.intern(customer.Provider), x.strs.intern(customer.ID)), n, none)
	}
	x.orders[n] = s
	x.orderByKey[key] = n
}

// DeleteOrder removes the order record with key, if the index has it.
func (x *Links) DeleteOrder(key uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropOrder(key)
}

func (x *Links) dropOrder(key uuid.UUID) {
	n, ok := x.orderByKey[key]
	if !ok {
		return
	}
	s := &x.orders[n]
	delete(x.orderByKey, key)
	x.orderLinks.removeOwner(s.links)
	x.orderCustomers.removeOwner(s.customer)
	*s = orderSlot{}
	x.orderFree = append(x.orderFree, n)
}

// takeSlot returns a free slot number of slots, growing it if none is
// free.
func takeSlot[S any](slots *[]S, free *[]uint32) uint32 {
	if k := len(*free); k > 0 {
		n := (*free)[k-1]
		*free = (*free)[:k-1]
		return n
	}
	var zero S
	*slots = append(*slots, zero)
	return uint32(len(*slots) - 1)
}

// Identities returns who and every identity linked to it, transitively
// (customers sharing a link with one another), stopping once it has
// reached max of them, and whether who has a customer record.
func (x *Links) Identities(who Customer, max int) ([]Customer, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	start, ok := x.lookupPair(who.Provider, who.ID)
	if !ok {
		return []Customer{who}, false
	}
	_, known := x.byIdent[start]
	seen := map[uint64]bool{start: true}
	queue := []uint64{start}
	for i := 0; i < len(queue) && len(seen) < max; i++ {
		n, ok := x.byIdent[queue[i]]
		if !ok {
			continue
		}
		x.customerLinks.ownerKeys(x.customers[n].links, func(link uint64) {
			x.customerLinks.each(link, func(o uint32) {
				if w := x.customers[o].who; !seen[w] {
					seen[w] = true
					queue = append(queue, w)
				}
			})
		})
	}
	out := make([]Customer, len(queue))
	for i, w := range queue {
		out[i] = x.customerOf(w)
	}
	return out, known
}

// OrdersOf returns the keys of the orders of the identities and of the
// orders carrying one of their links, in (provider, id) order.
func (x *Links) OrdersOf(ids []Customer) []uuid.UUID {
	orders := x.OrdersAt(ids)
	keys := make([]uuid.UUID, len(orders))
	for i, o := range orders {
		keys[i] = o.Key
	}
	return keys
}

// OrderAt is an order's key and its place in the (provider, id) order.
type OrderAt struct {
	Key uuid.UUID
	Pos Position
}

// OrdersAt is OrdersOf with each order's place, for paging by cursor.
func (x *Links) OrdersAt(ids []Customer) []OrderAt {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var found []uint32
	for _, c := range ids {
		who, ok := x.lookupPair(c.Provider, c.ID)
		if !ok {
			continue
		}
		x.orderCustomers.each(who, func(o uint32) { found = append(found, o) })
		if n, ok := x.byIdent[who]; ok {
			x.customerLinks.ownerKeys(x.customers[n].links, func(link uint64) {
				x.orderLinks.each(link, func(o uint32) { found = append(found, o) })
			})
		}
	}
	slices.SortFunc(found, func(a, b uint32) int {
		sa, sb := &x.orders[a], &x.orders[b]
		if c := strings.Compare(x.strs.str(sa.provider), x.strs.str(sb.provider)); c != 0 {
			return c
		}
		if c := strings.Compare(x.strs.str(sa.id), x.strs.str(sb.id)); c != 0 {
			return c
		}
		return int(a) - int(b)
	})
	found = slices.Compact(found)
	out := make([]OrderAt, len(found))
	for i, o := range found {
		s := &x.orders[o]
		out[i] = OrderAt{Key: s.key, Pos: Position{Provider: x.strs.str(s.provider), ID: x.strs.str(s.id)}}
	}
	return out
}

// Bytes is about how much memory the index holds.
func (x *Links) Bytes() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := x.strs.bytes() + 32*cap(x.customers) + 32*cap(x.orders) + 4*(cap(x.customerFree)+cap(x.orderFree))
	n += x.customerLinks.bytes() + x.orderCustomers.bytes() + x.orderLinks.bytes()
	return n + 40*(len(x.customerByKey)+len(x.orderByKey)) + 32*len(x.byIdent) // map entries with overhead, roughly
}
