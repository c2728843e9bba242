package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/index"
	"github.com/billfold/billfold/reducers"
)

// Lists.

// SubscriptionFilter selects subscriptions; empty fields match all.
type SubscriptionFilter struct {
	State    domain.LifecycleState
	Provider string
	Customer string
	// Account is a Stripe Connect account: only its records. The index
	// does not know accounts, so it filters the pages the other fields
	// chose: a page may hold fewer than its limit, or none, and still
	// have a next cursor.
	Account string
}

// Page is one page of a list.
type Page struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// encodeCursor and decodeCursor: a cursor is the position of the last
// record of a page, opaque to callers (base64url).
func encodeCursor(p index.Position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(p.Provider + "\n" + p.ID))
}

func decodeCursor(s string) (*index.Position, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	provider, id, ok := strings.Cut(string(b), "\n")
	if err != nil || !ok || id == "" {
		return nil, domain.Errorf(domain.CodeBadRequest, "cursor %q is not a cursor this API returned", s)
	}
	return &index.Position{Provider: provider, ID: id}, nil
}

// listView checks a list's limit and cursor and returns the loaded view
// to list from, and the position the cursor names (nil: the start).
func (q *Query) listView(ctx context.Context, limit int, cursor string) (*queryView, *index.Position, error) {
	if limit < 1 || limit > httpapi.MaxListLimit {
		return nil, nil, domain.Errorf(domain.CodeBadRequest, "limit %d: want 1 to %d", limit, httpapi.MaxListLimit)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, nil, err
	}
	v, err := q.loadedView(ctx)
	if err != nil {
		return nil, nil, err
	}
	return v, after, nil
}

// ValidateFilter checks a filter's state.
func ValidateFilter(f SubscriptionFilter) error {
	if f.State != "" && !f.State.Valid() {
		names := make([]string, len(domain.LifecycleStates))
		for i, s := range domain.LifecycleStates {
			names[i] = string(s)
		}
		return domain.Errorf(domain.CodeBadRequest, "state %q: want one of %s", f.State, strings.Join(names, ", "))
	}
	return nil
}

// ListSubscriptions returns the page of subscriptions matching f after
// cursor, at most limit, in (provider, id) order. The page is chosen by
// the index; records that changed since so that they no longer match are
// left out of it, so a page may hold fewer than limit.
func (q *Query) ListSubscriptions(ctx context.Context, f SubscriptionFilter, limit int, cursor string) (Page, error) {
	if err := ValidateFilter(f); err != nil {
		return Page{}, err
	}
	v, after, err := q.listView(ctx, limit, cursor)
	if err != nil {
		return Page{}, err
	}
	entries, more := v.subs.List(index.Filter{State: f.State, Provider: f.Provider, Customer: f.Customer}, limit, after)
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = subscriptionKey(e)
	}
	// The index chose the page; a record that changed since so that it
	// no longer matches is left out rather than shown under the filter.
	items, err := v.readMany(ctx, domain.ProjectionSubscriptions, keys, func(r reducers.Indexed) bool {
		return (f.State == "" || r.State == string(f.State)) && (f.Provider == "" || r.Provider == f.Provider) &&
			(f.Customer == "" || r.CustomerID == f.Customer) && (f.Account == "" || r.Account == f.Account)
	})
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: items}
	if more && len(entries) > 0 {
		page.NextCursor = encodeCursor(entries[len(entries)-1].Pos())
	}
	return page, nil
}

// Counts returns the number of subscriptions in each lifecycle state,
// every state present.
func (q *Query) Counts(ctx context.Context) (map[domain.LifecycleState]int, error) {
	v, err := q.loadedView(ctx)
	if err != nil {
		return nil, err
	}
	return v.subs.Counts(), nil
}

// CustomerSubscriptions returns the subscriptions of a customer and of
// every identity linked to it (sharing a link, transitively: a Stripe
// customer whose metadata names user_1 and the Clerk user user_1), in
// (provider, id) order: at most limit after cursor, with the next page's
// cursor, or every one when limit is 0 (the /v1 API's answer). The list is
// chosen from the indexes, which hold ids; only the page's records are
// read.
func (q *Query) CustomerSubscriptions(ctx context.Context, provider, id string, limit int, cursor string) (Page, error) {
	v, err := q.loadedView(ctx)
	if err != nil {
		return Page{}, err
	}
	group, known := v.people.Identities(index.Customer{Provider: provider, ID: id}, maxLinkedIdentities)
	var keys []keyAt
	for _, e := range v.subs.OfCustomers(group) {
		keys = append(keys, keyAt{key: subscriptionKey(e), pos: e.Pos()})
	}
	return v.customerPage(ctx, domain.ProjectionSubscriptions, keys, known, provider, id, limit, cursor)
}

// CustomerOrders returns the orders of a customer and of every identity
// linked to it, and the orders whose own links are among theirs, in
// (provider, id) order, paged as CustomerSubscriptions.
func (q *Query) CustomerOrders(ctx context.Context, provider, id string, limit int, cursor string) (Page, error) {
	v, err := q.loadedView(ctx)
	if err != nil {
		return Page{}, err
	}
	group, known := v.people.Identities(index.Customer{Provider: provider, ID: id}, maxLinkedIdentities)
	orders := v.people.OrdersAt(group)
	keys := make([]keyAt, len(orders))
	for i, o := range orders {
		keys[i] = keyAt{key: domain.RecordKey(domain.KindOrder, o.Key), pos: o.Pos}
	}
	return v.customerPage(ctx, domain.ProjectionOrders, keys, known, provider, id, limit, cursor)
}

// keyAt is an indexed record's store key and its place in a list.
type keyAt struct {
	key string
	pos index.Position
}

// subscriptionKey is the store key of an indexed subscription.
func subscriptionKey(s index.Subscription) string {
	return domain.RecordKey(domain.KindSubscription, s.Key)
}

// customerPage reads the page of keys (in position order) after cursor,
// at most limit (0: all).
func (v *queryView) customerPage(ctx context.Context, projection string, keys []keyAt, known bool, provider, id string, limit int, cursor string) (Page, error) {
	if !known && len(keys) == 0 {
		return Page{}, domain.Errorf(domain.CodeNotFound, "no customer %s/%s", provider, id)
	}
	if limit < 0 || limit > httpapi.MaxListLimit {
		return Page{}, domain.Errorf(domain.CodeBadRequest, "limit %d: want 1 to %d", limit, httpapi.MaxListLimit)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	if after != nil {
		i, found := slices.BinarySearchFunc(keys, *after, func(k keyAt, p index.Position) int { return index.ComparePositions(k.pos, p) })
		if found {
			i++
		}
		keys = keys[i:]
	}
	var next string
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
		next = encodeCursor(keys[limit-1].pos)
	}
	storeKeys := make([]string, len(keys))
	for i, k := range keys {
		storeKeys[i] = k.key
	}
	records, err := v.readMany(ctx, projection, storeKeys, nil)
	if err != nil {
		return Page{}, err
	}
	if records == nil {
		records = []json.RawMessage{}
	}
	return Page{Items: records, NextCursor: next}, nil
}
