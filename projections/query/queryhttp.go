package query

import (
	"context"
	_ "embed"
	"net/http"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
)

// Register adds the query API's routes to mux, each wrapped in auth
// (httpapi.RequireToken), and the OpenAPI document, which needs no token.
func (q *Query) Register(mux httpapi.Mux, auth func(http.Handler) http.Handler) {
	if auth == nil {
		auth = func(h http.Handler) http.Handler { return h }
	}
	route := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, auth(h)) }
	route("GET /v1/customers/{provider}/{id}", q.serveRecord(domain.KindCustomer))
	route("GET /v1/subscriptions/{provider}/{id}", q.serveRecord(domain.KindSubscription))
	route("GET /v1/orders/{provider}/{id}", q.serveRecord(domain.KindOrder))
	route("GET /v1/wallets/{user_id}", q.serveRecord(domain.KindWallet))
	route("GET /v1/subscriptions", q.serveList)
	route("GET /v1/subscriptions/counts", q.serveCounts)
	route("GET /v1/customers", q.serveRecordList((*Query).ListCustomers))
	route("GET /v1/orders", q.serveRecordList((*Query).ListOrders))
	route("GET /v1/customers/{provider}/{id}/subscriptions", q.serveCustomerSubscriptions)
	route("GET /v1/customers/{provider}/{id}/orders", q.serveCustomerOrders)
	mux.Handle("GET /v1/openapi.json", http.HandlerFunc(ServeOpenAPI))
}

func (q *Query) serveRecord(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		provider, id := r.PathValue("provider"), r.PathValue("id")
		if kind == domain.KindWallet {
			id = r.PathValue("user_id")
		}
		var (
			rec  []byte
			err  error
			asOf *time.Time
		)
		if s := r.URL.Query().Get("as_of"); s != "" {
			t, perr := time.Parse(time.RFC3339, s)
			if perr != nil {
				httpapi.WriteError(w, domain.Errorf(domain.CodeBadRequest, "as_of %q: want an RFC 3339 time such as 2026-06-01T12:00:00Z", s))
				return
			}
			asOf = &t
		}
		switch {
		case asOf != nil: // a fold of the journal: a bounded job
			err = q.FoldJobs.Run(r.Context(), "as_of", func(ctx context.Context) (ferr error) {
				if kind == domain.KindOrder {
					rec, ferr = q.Order(ctx, provider, id, asOf) // by any of its ids
				} else {
					rec, ferr = q.AsOf(ctx, kind, provider, id, *asOf)
				}
				return ferr
			})
		case kind == domain.KindOrder:
			rec, err = q.Order(r.Context(), provider, id, nil) // by any of its ids
		default:
			rec, err = q.Record(r.Context(), kind, provider, id)
		}
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		writeRaw(w, rec)
	}
}

// writeRaw answers a stored record's JSON as it is.
func writeRaw(w http.ResponseWriter, raw []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
	_, _ = w.Write([]byte("\n"))
}

func (q *Query) serveList(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	limit, err := httpapi.ParseLimit(v.Get("limit"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	f := SubscriptionFilter{State: domain.LifecycleState(strings.TrimSpace(v.Get("state"))), Provider: v.Get("provider"), Customer: v.Get("customer"), Account: v.Get("account")}
	page, err := q.ListSubscriptions(r.Context(), f, limit, v.Get("cursor"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WritePage(w, page.Items, page.NextCursor)
}

func (q *Query) serveCounts(w http.ResponseWriter, r *http.Request) {
	counts, err := q.Counts(r.Context())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, counts)
}

func (q *Query) serveCustomerSubscriptions(w http.ResponseWriter, r *http.Request) {
	page, err := q.CustomerSubscriptions(r.Context(), r.PathValue("provider"), r.PathValue("id"), 0, "")
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WritePage(w, page.Items, page.NextCursor)
}

func (q *Query) serveCustomerOrders(w http.ResponseWriter, r *http.Request) {
	page, err := q.CustomerOrders(r.Context(), r.PathValue("provider"), r.PathValue("id"), 0, "")
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WritePage(w, page.Items, page.NextCursor)
}

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document of the admin API.
func OpenAPI() []byte { return openAPIDoc }

// ServeOpenAPI is the handler of GET /v1/openapi.json.
func ServeOpenAPI(w http.ResponseWriter, _ *http.Request) {
	writeRaw(w, openAPIDoc)
}
