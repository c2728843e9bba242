package console

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/query"
)

// subscriptionsPerPage is a page of /ui/subscriptions: the query index
// reads exactly the records it shows.
const subscriptionsPerPage = 50

// subscriptionsView is /ui/subscriptions' data.
type subscriptionsView struct {
	State, Provider, Customer string
	States                    []domain.LifecycleState
	Items                     []domain.SubscriptionRecord
	Next                      template.URL // the next page
}

func (c *Console) subscriptions(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := subscriptionsView{State: strings.TrimSpace(q.Get("state")), Provider: q.Get("provider"), Customer: q.Get("customer"),
		States: domain.LifecycleStates}
	f := query.SubscriptionFilter{State: domain.LifecycleState(v.State), Provider: v.Provider, Customer: v.Customer}
	page, err := c.cfg.Query.ListSubscriptions(r.Context(), f, subscriptionsPerPage, q.Get("cursor"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if v.Items, err = decodeAll[domain.SubscriptionRecord](page.Items); err != nil {
		c.fail(w, r, s, err)
		return
	}
	if page.NextCursor != "" {
		v.Next = link("/ui/subscriptions", "state", v.State, "provider", v.Provider, "customer", v.Customer, "cursor", page.NextCursor)
	}
	c.render(w, r, s, http.StatusOK, "subscriptions", "subscriptions", "Subscriptions", v)
}

func decodeAll[T any](items []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(items))
	for _, raw := range items {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, domain.Wrap(domain.CodeInternal, err, "stored record")
		}
		out = append(out, v)
	}
	return out, nil
}

// subscriptionView is /ui/subscriptions/{provider}/{id}'s data.
type subscriptionView struct {
	Namespace string
	Sub       domain.SubscriptionRecord
	// Transitions newest first.
	Transitions []domain.Transition
}

func (c *Console) subscription(w http.ResponseWriter, r *http.Request, s *session) {
	ns := r.PathValue("provider")
	raw, err := c.cfg.Query.Record(r.Context(), domain.KindSubscription, ns, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := subscriptionView{Namespace: ns}
	if err := json.Unmarshal(raw, &v.Sub); err != nil {
		c.fail(w, r, s, domain.Wrap(domain.CodeInternal, err, "stored subscription"))
		return
	}
	v.Transitions = slices.Clone(v.Sub.Transitions)
	slices.Reverse(v.Transitions)
	c.render(w, r, s, http.StatusOK, "subscription", "subscriptions", "Subscription "+v.Sub.ID, v)
}

// customerView is /ui/customers/{provider}/{id}'s data.
type customerView struct {
	Namespace     string
	Customer      domain.CustomerRecord
	Subscriptions []domain.SubscriptionRecord
	Orders        []domain.OrderRecord
	Wallets       []domain.WalletRecord
	// MoreSubscriptions and MoreOrders are the next pages of each list;
	// First is the page without cursors, when this is a later one.
	MoreSubscriptions, MoreOrders, First template.URL
}

// customerListPerPage bounds each list on a customer's page: the query
// index picks the page and only its records are read.
const customerListPerPage = 50

func (c *Console) customer(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ns, id := r.PathValue("provider"), r.PathValue("id")
	raw, err := c.cfg.Query.Record(ctx, domain.KindCustomer, ns, id)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := customerView{Namespace: ns}
	if err := json.Unmarshal(raw, &v.Customer); err != nil {
		c.fail(w, r, s, domain.Wrap(domain.CodeInternal, err, "stored customer"))
		return
	}
	q := r.URL.Query()
	path := custPath(ns, id)
	subs, err := c.cfg.Query.CustomerSubscriptions(ctx, ns, id, customerListPerPage, q.Get("subs"))
	if err == nil {
		v.Subscriptions, err = decodeAll[domain.SubscriptionRecord](subs.Items)
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	orders, err := c.cfg.Query.CustomerOrders(ctx, ns, id, customerListPerPage, q.Get("orders"))
	if err == nil {
		v.Orders, err = decodeAll[domain.OrderRecord](orders.Items)
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if subs.NextCursor != "" {
		v.MoreSubscriptions = link(path, "subs", subs.NextCursor, "orders", q.Get("orders")) + "#subs"
	}
	if orders.NextCursor != "" {
		v.MoreOrders = link(path, "subs", q.Get("subs"), "orders", orders.NextCursor) + "#ords"
	}
	if q.Get("subs") != "" || q.Get("orders") != "" {
		v.First = link(path)
	}
	// The wallets of the users the customer is linked to.
	for _, l := range v.Customer.Links {
		if l.Kind != "user_id" {
			continue
		}
		raw, err := c.cfg.Query.Record(ctx, domain.KindWallet, "", l.Value)
		if domain.ErrorCode(err) == domain.CodeNotFound {
			continue
		}
		var wallet domain.WalletRecord
		if err == nil {
			err = json.Unmarshal(raw, &wallet)
		}
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		v.Wallets = append(v.Wallets, wallet)
	}
	c.render(w, r, s, http.StatusOK, "customer", "subscriptions", "Customer "+id, v)
}

// orderView is /ui/orders/{provider}/{id}'s data.
type orderView struct {
	Namespace string
	Order     domain.OrderRecord
}

// order shows an order, found by its key or by its checkout session or
// charge id, as GET /v1/orders finds it.
func (c *Console) order(w http.ResponseWriter, r *http.Request, s *session) {
	ns := r.PathValue("provider")
	raw, err := c.cfg.Query.Order(r.Context(), ns, r.PathValue("id"), nil)
	v := orderView{Namespace: ns}
	if err == nil {
		err = decodeRecord(raw, &v.Order, "order")
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, s, http.StatusOK, "order", "subscriptions", "Order "+v.Order.ID, v)
}

// wallet shows the wallet of a user.
func (c *Console) wallet(w http.ResponseWriter, r *http.Request, s *session) {
	raw, err := c.cfg.Query.Record(r.Context(), domain.KindWallet, "", r.PathValue("user"))
	var v domain.WalletRecord
	if err == nil {
		err = decodeRecord(raw, &v, "wallet")
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, s, http.StatusOK, "wallet", "subscriptions", "Wallet of "+v.UserID, v)
}

func decodeRecord(raw []byte, v any, kind string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return domain.Wrap(domain.CodeInternal, err, "stored "+kind)
	}
	return nil
}

// changes forwards the change feed to a signed-in browser: EventSource
// cannot send a bearer token, so the session stands for it.
func (c *Console) changes(w http.ResponseWriter, r *http.Request, _ *session) {
	if c.cfg.Changes == nil {
		httpapi.WriteError(w, domain.Errorf(domain.CodeNotFound, "no change feed"))
		return
	}
	r = r.Clone(r.Context())
	r.Header.Del("Authorization")
	if c.cfg.ReadToken != "" {
		r.Header.Set("Authorization", "Bearer "+c.cfg.ReadToken)
	}
	c.cfg.Changes.ServeHTTP(w, r)
}
