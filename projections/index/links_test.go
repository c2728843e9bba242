package index

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
)

// A customer's identities are those sharing a link with it, transitively;
// its orders are its identities' orders and the orders carrying one of
// their links, in (provider, id) order; a replaced or deleted record
// takes its links with it.
func TestLinksIdentitiesAndOrders(t *testing.T) {
	x := NewLinks()
	user := domain.Link{Kind: "user_id", Value: "u_1"}
	x.PutCustomer(keyOf("stripe", "cus_1"), Customer{"stripe", "cus_1"}, []domain.Link{user})
	x.PutCustomer(keyOf("clerk", "u_1"), Customer{"clerk", "u_1"}, []domain.Link{user, {Kind: "deal_id", Value: "d_1"}})
	x.PutCustomer(keyOf("braintree", "bt_1"), Customer{"braintree", "bt_1"}, []domain.Link{{Kind: "deal_id", Value: "d_1"}})
	x.PutCustomer(keyOf("stripe", "cus_2"), Customer{"stripe", "cus_2"}, nil)
	x.PutOrder(keyOf("stripe", "cs_b"), Position{"stripe", "cs_b"}, Customer{"stripe", "cus_1"}, nil)
	x.PutOrder(keyOf("stripe", "cs_a"), Position{"stripe", "cs_a"}, Customer{"stripe", "cus_2"}, []domain.Link{user})
	x.PutOrder(keyOf("pactapay", "pp_1"), Position{"pactapay", "pp_1"}, Customer{}, []domain.Link{{Kind: "deal_id", Value: "d_1"}})

	ids, known := x.Identities(Customer{"stripe", "cus_1"}, 1000)
	assert.True(t, known)
	assert.ElementsMatch(t, []Customer{{"stripe", "cus_1"}, {"clerk", "u_1"}, {"braintree", "bt_1"}}, ids)
	assert.Equal(t, []uuid.UUID{keyOf("pactapay", "pp_1"), keyOf("stripe", "cs_a"), keyOf("stripe", "cs_b")}, x.OrdersOf(ids))

	ids, known = x.Identities(Customer{"stripe", "cus_9"}, 1000)
	assert.False(t, known)
	assert.Equal(t, []Customer{{"stripe", "cus_9"}}, ids, "an unknown customer is only itself")
	assert.Empty(t, x.OrdersOf(ids))

	// The Clerk user loses its links: the deal no longer joins the group.
	x.PutCustomer(keyOf("clerk", "u_1"), Customer{"clerk", "u_1"}, []domain.Link{user})
	ids, _ = x.Identities(Customer{"stripe", "cus_1"}, 1000)
	assert.ElementsMatch(t, []Customer{{"stripe", "cus_1"}, {"clerk", "u_1"}}, ids)
	x.DeleteCustomer(keyOf("clerk", "u_1"))
	x.DeleteOrder(keyOf("stripe", "cs_b"))
	ids, _ = x.Identities(Customer{"stripe", "cus_1"}, 1000)
	assert.Equal(t, []Customer{{"stripe", "cus_1"}}, ids)
	assert.Equal(t, []uuid.UUID{keyOf("stripe", "cs_a")}, x.OrdersOf(ids), "the order carrying the customer's link")
}

// A link shared by everyone does not make one request walk the whole
// index: the closure stops once it reached max identities.
func TestLinksIdentitiesStopAtMax(t *testing.T) {
	x := NewLinks()
	shared := []domain.Link{{Kind: "user_id", Value: "test_user"}}
	for i := range 50 {
		id := "cus_" + strings.Repeat("x", i+1)
		x.PutCustomer(keyOf("stripe", id), Customer{"stripe", id}, shared)
	}
	ids, known := x.Identities(Customer{"stripe", "cus_x"}, 10)
	assert.True(t, known)
	assert.Len(t, ids, 50, "the first identity's neighbours are all reached")
	ids, _ = x.Identities(Customer{"stripe", "cus_x"}, 1)
	assert.Len(t, ids, 1, "none past max")
}

type linksModel struct {
	customers map[uuid.UUID]modelCustomer
	orders    map[uuid.UUID]modelOrder
}

type modelCustomer struct {
	who   Customer
	links []domain.Link
}

type modelOrder struct {
	pos      Position
	customer Customer
	links    []domain.Link
}

func (m linksModel) identities(who Customer) ([]Customer, bool) {
	shares := func(a, b []domain.Link) bool {
		return slices.ContainsFunc(a, func(l domain.Link) bool { return slices.Contains(b, l) })
	}
	linksOf := func(c Customer) ([]domain.Link, bool) {
		for _, e := range m.customers {
			if e.who == c {
				return e.links, true
			}
		}
		return nil, false
	}
	_, known := linksOf(who)
	group := []Customer{who}
	for i := 0; i < len(group); i++ {
		links, _ := linksOf(group[i])
		for _, e := range m.customers {
			if !slices.Contains(group, e.who) && shares(links, e.links) {
				group = append(group, e.who)
			}
		}
	}
	return group, known
}

func (m linksModel) ordersOf(ids []Customer) []uuid.UUID {
	var links []domain.Link
	for _, e := range m.customers {
		if slices.Contains(ids, e.who) {
			links = append(links, e.links...)
		}
	}
	type found struct {
		key uuid.UUID
		pos Position
	}
	var out []found
	for k, o := range m.orders {
		if (o.customer.ID != "" && slices.Contains(ids, o.customer)) ||
			slices.ContainsFunc(o.links, func(l domain.Link) bool { return slices.Contains(links, l) }) {
			out = append(out, found{k, o.pos})
		}
	}
	slices.SortFunc(out, func(a, b found) int { return ComparePositions(a.pos, b.pos) })
	keys := []uuid.UUID{}
	for _, f := range out {
		keys = append(keys, f.key)
	}
	return keys
}

var (
	genLinkCustomer = rapid.Custom(func(t *rapid.T) Customer {
		return Customer{rapid.SampledFrom([]string{"stripe", "clerk"}).Draw(t, "p"), rapid.SampledFrom([]string{"c1", "c2", "c3", "c4", "c5"}).Draw(t, "id")}
	})
	genLinks = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) domain.Link {
		return domain.Link{Kind: rapid.SampledFrom([]string{"user_id", "deal_id"}).Draw(t, "k"), Value: rapid.SampledFrom([]string{"v1", "v2", "v3"}).Draw(t, "v")}
	}), 0, 3)
)

// Under any sequence of customer and order puts and deletes, every
// customer's identities and orders are what a naive model over the
// records answers.
func TestLinksMatchModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x := NewLinks()
		m := linksModel{customers: map[uuid.UUID]modelCustomer{}, orders: map[uuid.UUID]modelOrder{}}
		for range rapid.IntRange(0, 80).Draw(t, "changes") {
			del := rapid.IntRange(0, 3).Draw(t, "op") == 0
			if rapid.Bool().Draw(t, "customer") {
				who := genLinkCustomer.Draw(t, "who")
				key := keyOf(who.Provider, "customer/"+who.ID)
				if del {
					x.DeleteCustomer(key)
					delete(m.customers, key)
					continue
				}
				links := genLinks.Draw(t, "links")
				x.PutCustomer(key, who, links)
				m.customers[key] = modelCustomer{who, links}
				continue
			}
			pos := Position{"stripe", rapid.SampledFrom([]string{"o1", "o2", "o3", "o4"}).Draw(t, "order")}
			key := keyOf(pos.Provider, "order/"+pos.ID)
			if del {
				x.DeleteOrder(key)
				delete(m.orders, key)
				continue
			}
			customer := Customer{}
			if rapid.Bool().Draw(t, "has customer") {
				customer = genLinkCustomer.Draw(t, "of")
			}
			links := genLinks.Draw(t, "order links")
			x.PutOrder(key, pos, customer, links)
			m.orders[key] = modelOrder{pos, customer, links}
		}
		who := genLinkCustomer.Draw(t, "asked")
		gotIDs, gotKnown := x.Identities(who, 1000)
		wantIDs, wantKnown := m.identities(who)
		require.Equal(t, wantKnown, gotKnown)
		require.ElementsMatch(t, wantIDs, gotIDs)
		require.Equal(t, m.ordersOf(wantIDs), append([]uuid.UUID{}, x.OrdersOf(gotIDs)...))
	})
}
