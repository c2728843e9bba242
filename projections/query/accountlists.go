package query

import (
	"context"
	"net/http"
	"strings"

	"github.com/looplab/eventhorizon/uuid"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/index"
	"github.com/billfold/billfold/reducers"
)

// Lists of customers and of orders, by provider and Stripe Connect
// account, in (provider, id) order with cursors.

// RecordFilter selects customers or orders; empty fields match all.
type RecordFilter struct {
	Provider string
	// Account is a Stripe Connect account (acct_...): only the records its
	// events made.
	Account string
}

// recordList indexes the records of one kind for lists. index.Subscriptions
// is the ordered (provider, id) index with one secondary key whose
// records are listed exactly and in order; here that key is the record's
// Connect account, and no record has a state. It holds ids, not records,
// with the same pointer-free layout as the subscriptions index.
type recordList struct{ x *index.Subscriptions }

func newRecordList() *recordList { return &recordList{x: index.NewSubscriptions()} }

// apply puts the record r under key id, or removes it when the stored
// value holds none (ok false: a deletion).
func (l *recordList) apply(id uuid.UUID, r indexedRecord, ok bool) {
	if !ok {
		l.x.Delete(id)
		return
	}
	l.x.Put(index.Subscription{Key: id, Provider: r.Record.Provider, ID: r.Record.ID, Customer: r.Record.Account})
}

// startListLoad and finishListLoad bracket the initial load of the
// customers and orders lists, as for the subscriptions index: the records
// are sorted once when every bucket has delivered them.
func (v *queryView) startListLoad() {
	v.customerList.x.StartLoad()
	v.orderList.x.StartLoad()
}

func (v *queryView) finishListLoad() {
	v.customerList.x.FinishLoad()
	v.orderList.x.FinishLoad()
}

// ValidateRecordFilter checks a filter: an account is a Connect account
// id.
func ValidateRecordFilter(f RecordFilter) error {
	if f.Account != "" && !strings.HasPrefix(f.Account, "acct_") {
		return domain.Errorf(domain.CodeBadRequest, "account %q: want a Stripe Connect account id (acct_...)", f.Account)
	}
	return nil
}

// ListCustomers returns the page of customers matching f after cursor, at
// most limit, in (provider, id) order.
func (q *Query) ListCustomers(ctx context.Context, f RecordFilter, limit int, cursor string) (Page, error) {
	return q.listRecords(ctx, domain.ProjectionCustomers, domain.KindCustomer, f, limit, cursor)
}

// ListOrders returns the page of orders matching f after cursor, at most
// limit, in (provider, id) order.
func (q *Query) ListOrders(ctx context.Context, f RecordFilter, limit int, cursor string) (Page, error) {
	return q.listRecords(ctx, domain.ProjectionOrders, domain.KindOrder, f, limit, cursor)
}

// listRecords pages through one kind's list. The page is chosen by the
// index; records that changed since so that they no longer match are left
// out of it, so a page may hold fewer than limit.
func (q *Query) listRecords(ctx context.Context, projection, kind string, f RecordFilter, limit int, cursor string) (Page, error) {
	if err := ValidateRecordFilter(f); err != nil {
		return Page{}, err
	}
	v, after, err := q.listView(ctx, limit, cursor)
	if err != nil {
		return Page{}, err
	}
	list := v.customerList
	if kind == domain.KindOrder {
		list = v.orderList
	}
	entries, more := list.x.List(index.Filter{Provider: f.Provider, Customer: f.Account}, limit, after)
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = domain.RecordKey(kind, e.Key)
	}
	items, err := v.readMany(ctx, projection, keys, func(r reducers.Indexed) bool {
		return (f.Provider == "" || r.Provider == f.Provider) && (f.Account == "" || r.Account == f.Account)
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

// serveRecordList answers GET /v1/customers and GET /v1/orders.
func (q *Query) serveRecordList(list func(*Query, context.Context, RecordFilter, int, string) (Page, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		limit, err := httpapi.ParseLimit(v.Get("limit"))
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		page, err := list(q, r.Context(), RecordFilter{Provider: v.Get("provider"), Account: v.Get("account")}, limit, v.Get("cursor"))
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		httpapi.WritePage(w, page.Items, page.NextCursor)
	}
}
