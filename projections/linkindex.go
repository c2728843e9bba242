package projections

import (
	"maps"
	"slices"
	"sync"

	"github.com/looplab/eventhorizon/uuid"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/index"
)

// Customers by link, orders by customer and link.

// ident is a customer at a provider.
type ident struct{ provider, id string }

type custEntry struct {
	who   ident
	links []domain.Link
}

type orderEntry struct {
	key      string
	pos      index.Position
	customer ident
	links    []domain.Link
}

type linkIndex struct {
	mu             sync.RWMutex
	customers      map[uuid.UUID]*custEntry
	byIdent        map[ident]*custEntry
	customerByLink map[domain.Link][]*custEntry
	orders         map[uuid.UUID]*orderEntry
	orderByCust    map[ident][]*orderEntry
	orderByLink    map[domain.Link][]*orderEntry
}

func newLinkIndex() *linkIndex {
	return &linkIndex{
		customers: map[uuid.UUID]*custEntry{}, byIdent: map[ident]*custEntry{}, customerByLink: map[domain.Link][]*custEntry{},
		orders: map[uuid.UUID]*orderEntry{}, orderByCust: map[ident][]*orderEntry{}, orderByLink: map[domain.Link][]*orderEntry{},
	}
}

func removeFrom[E comparable, K comparable](m map[K][]E, k K, e E) {
	s := slices.DeleteFunc(m[k], func(o E) bool { return o == e })
	if len(s) == 0 {
		delete(m, k)
	} else {
		m[k] = s
	}
}

func (x *linkIndex) upsertCustomer(id uuid.UUID, who ident, links []domain.Link) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkCustomer(id)
	e := &custEntry{who: who, links: links}
	x.customers[id] = e
	x.byIdent[who] = e
	for _, l := range links {
		x.customerByLink[l] = append(x.customerByLink[l], e)
	}
}

func (x *linkIndex) removeCustomer(id uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkCustomer(id)
}

func (x *linkIndex) unlinkCustomer(id uuid.UUID) {
	old := x.customers[id]
	if old == nil {
		return
	}
	delete(x.customers, id)
	if x.byIdent[old.who] == old {
		delete(x.byIdent, old.who)
	}
	for _, l := range old.links {
		removeFrom(x.customerByLink, l, old)
	}
}

func (x *linkIndex) upsertOrder(id uuid.UUID, customer ident, p index.Position, links []domain.Link) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkOrder(id)
	e := &orderEntry{key: domain.RecordKey(domain.KindOrder, id), pos: p, customer: customer, links: slices.Clone(links)}
	x.orders[id] = e
	if customer.id != "" {
		x.orderByCust[customer] = append(x.orderByCust[customer], e)
	}
	for _, l := range links {
		x.orderByLink[l] = append(x.orderByLink[l], e)
	}
}

func (x *linkIndex) removeOrder(id uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkOrder(id)
}

func (x *linkIndex) unlinkOrder(id uuid.UUID) {
	old := x.orders[id]
	if old == nil {
		return
	}
	delete(x.orders, id)
	if old.customer.id != "" {
		removeFrom(x.orderByCust, old.customer, old)
	}
	for _, l := range old.links {
		removeFrom(x.orderByLink, l, old)
	}
}

// identities returns who and every identity linked to it, transitively,
// and whether who has a customer record.
func (x *linkIndex) identities(who ident) ([]ident, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, known := x.byIdent[who]
	seen := map[ident]bool{who: true}
	queue := []ident{who}
	for i := 0; i < len(queue) && len(seen) < maxLinkedIdentities; i++ {
		e := x.byIdent[queue[i]]
		if e == nil {
			continue
		}
		for _, l := range e.links {
			for _, o := range x.customerByLink[l] {
				if !seen[o.who] {
					seen[o.who] = true
					queue = append(queue, o.who)
				}
			}
		}
	}
	return queue, known
}

// ordersOf returns the keys of the orders of the identities and of the
// orders carrying one of their links, in (provider, id) order.
func (x *linkIndex) ordersOf(ids []ident) []keyAt {
	x.mu.RLock()
	defer x.mu.RUnlock()
	set := map[*orderEntry]bool{}
	for _, c := range ids {
		for _, o := range x.orderByCust[c] {
			set[o] = true
		}
		if e := x.byIdent[c]; e != nil {
			for _, l := range e.links {
				for _, o := range x.orderByLink[l] {
					set[o] = true
				}
			}
		}
	}
	orders := slices.Collect(maps.Keys(set))
	slices.SortFunc(orders, func(a, b *orderEntry) int { return index.ComparePositions(a.pos, b.pos) })
	keys := make([]keyAt, len(orders))
	for i, o := range orders {
		keys[i] = keyAt{key: o.key, pos: o.pos}
	}
	return keys
}
