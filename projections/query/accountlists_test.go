package query

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/looplab/eventhorizon/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/index"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// pageRecords pages through a customers or orders list with limit and
// returns the (provider, id) of every item in order.
func pageRecords(t *testing.T, list func(context.Context, RecordFilter, int, string) (Page, error), f RecordFilter, limit int) []subID {
	t.Helper()
	var out []subID
	cursor := ""
	for range 10_000 {
		p, err := list(context.Background(), f, limit, cursor)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Items), limit)
		for _, raw := range p.Items {
			var r subID
			require.NoError(t, json.Unmarshal(raw, &struct {
				Provider *string `json:"provider"`
				ID       *string `json:"id"`
			}{&r.Provider, &r.ID}))
			out = append(out, r)
		}
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
	}
	t.Fatal("the list never ends")
	return nil
}

// Customers and orders are listed by provider and Connect account, every
// match once, in (provider, id) order, whatever the page size; a record
// whose account changes moves, a deleted one leaves.
func TestListCustomersAndOrdersByAccount(t *testing.T) {
	f := newQueryFixture(t)
	rng := rand.New(rand.NewPCG(3, 4))
	accounts := []string{"", "", "acct_1One", "acct_2Two"}
	providers := []domain.Provider{domain.Stripe, domain.Clerk, domain.PactaPay}
	type rec struct {
		provider domain.Provider
		id       string
		account  string
	}
	var customers, orders []rec
	seen := map[subID]bool{}
	for range 180 {
		r := rec{providers[rng.IntN(len(providers))], fmt.Sprintf("id_%04d", rng.IntN(10_000)), accounts[rng.IntN(len(accounts))]}
		if seen[subID{string(r.provider), r.id}] {
			continue
		}
		seen[subID{string(r.provider), r.id}] = true
		meta := domain.RecordMeta{Version: 1, Account: r.account}
		if rng.IntN(2) == 0 {
			customers = append(customers, r)
			f.put(domain.ProjectionCustomers, reducers.CustomerKey(string(r.provider), r.id), domain.CustomerRecord{Provider: r.provider, ID: r.id, RecordMeta: meta})
		} else {
			orders = append(orders, r)
			f.put(domain.ProjectionOrders, reducers.OrderKey(string(r.provider), r.id), domain.OrderRecord{Provider: r.provider, ID: r.id, Status: domain.OrderPaid, RecordMeta: meta})
		}
	}
	expect := func(all []rec, flt RecordFilter) []subID {
		var out []subID
		for _, r := range all {
			if (flt.Provider == "" || string(r.provider) == flt.Provider) && (flt.Account == "" || r.account == flt.Account) {
				out = append(out, subID{string(r.provider), r.id})
			}
		}
		slices.SortFunc(out, func(a, b subID) int { return index.ComparePositions(index.Position(a), index.Position(b)) })
		return out
	}
	require.Eventually(t, func() bool {
		return len(pageRecords(t, f.q.ListCustomers, RecordFilter{}, 1000)) == len(customers) &&
			len(pageRecords(t, f.q.ListOrders, RecordFilter{}, 1000)) == len(orders)
	}, 10*time.Second, 20*time.Millisecond)

	filters := []RecordFilter{{}, {Account: "acct_1One"}, {Account: "acct_2Two", Provider: "stripe"}, {Provider: "clerk"}, {Account: "acct_9None"}, {Provider: "nobody"}}
	for _, flt := range filters {
		for _, limit := range []int{1, 3, 100} {
			assert.Equal(t, expect(customers, flt), pageRecords(t, f.q.ListCustomers, flt, limit), "customers %+v limit %d", flt, limit)
			assert.Equal(t, expect(orders, flt), pageRecords(t, f.q.ListOrders, flt, limit), "orders %+v limit %d", flt, limit)
		}
	}

	// An account filter pages exactly: every page but the last is full.
	p, err := f.q.ListCustomers(context.Background(), RecordFilter{Account: "acct_1One"}, 2, "")
	require.NoError(t, err)
	if len(expect(customers, RecordFilter{Account: "acct_1One"})) > 2 {
		assert.Len(t, p.Items, 2)
		assert.NotEmpty(t, p.NextCursor)
	}

	// The account of a record changes: it moves between the lists.
	moved := customers[0]
	f.put(domain.ProjectionCustomers, reducers.CustomerKey(string(moved.provider), moved.id),
		domain.CustomerRecord{Provider: moved.provider, ID: moved.id, RecordMeta: domain.RecordMeta{Version: 2, Account: "acct_3Moved"}})
	want := []subID{{string(moved.provider), moved.id}}
	require.Eventually(t, func() bool {
		return slices.Equal(want, pageRecords(t, f.q.ListCustomers, RecordFilter{Account: "acct_3Moved"}, 10))
	}, 5*time.Second, 10*time.Millisecond)
	if moved.account != "" {
		assert.NotContains(t, pageRecords(t, f.q.ListCustomers, RecordFilter{Account: moved.account}, 1000), want[0])
	}
	// A deleted order leaves its list.
	gone := orders[0]
	require.NoError(t, f.bucket(domain.ProjectionOrders).Delete(context.Background(), reducers.OrderKey(string(gone.provider), gone.id)))
	require.Eventually(t, func() bool {
		return !slices.Contains(pageRecords(t, f.q.ListOrders, RecordFilter{}, 1000), subID{string(gone.provider), gone.id})
	}, 5*time.Second, 10*time.Millisecond)
}

// Bad input to the lists is a 400 with BILLFOLD-BAD-REQUEST and the
// reason, as JSON; a good request is a page.
func TestListCustomersAndOrdersHTTP(t *testing.T) {
	f := newQueryFixture(t)
	f.put(domain.ProjectionCustomers, reducers.CustomerKey("stripe", "cus_http"),
		domain.CustomerRecord{Provider: domain.Stripe, ID: "cus_http", RecordMeta: domain.RecordMeta{Version: 1, Account: "acct_1Http"}})
	mux := http.NewServeMux()
	f.q.Register(mux, httpapi.RequireToken("s3cret"))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path, token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	for _, c := range []struct{ path, message string }{
		{"/v1/customers?account=cus_123", `account "cus_123": want a Stripe Connect account id (acct_...)`},
		{"/v1/orders?account=acct", `account "acct": want a Stripe Connect account id (acct_...)`},
		{"/v1/customers?limit=0", `limit "0": want an integer from 1 to 1000`},
		{"/v1/orders?limit=1001", `limit "1001": want an integer from 1 to 1000`},
		{"/v1/customers?cursor=%25%25", `cursor "%%" is not a cursor this API returned`},
	} {
		code, b := get(c.path, "s3cret")
		assert.Equal(t, http.StatusBadRequest, code, c.path)
		var e httpapi.APIError
		require.NoError(t, json.Unmarshal(b, &e), "%s: %s", c.path, b)
		assert.Equal(t, httpapi.APIError{Error: "bad_request", Code: domain.CodeBadRequest, Message: c.message}, e, c.path)
	}
	code, _ := get("/v1/customers", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	require.Eventually(t, func() bool {
		code, b := get("/v1/customers?account=acct_1Http", "s3cret")
		var p struct {
			Items []domain.CustomerRecord `json:"items"`
		}
		return code == http.StatusOK && json.Unmarshal(b, &p) == nil && len(p.Items) == 1 && p.Items[0].ID == "cus_http"
	}, 5*time.Second, 10*time.Millisecond)
	code, b := get("/v1/orders?account=acct_1Http", "s3cret")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"items":[]}`, string(b))
}

// Records folded from a connected account's events are listed under that
// account; the platform's are not.
func TestConnectedAccountListsFromTheFold(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i, s := range []samples.Stripe{
		{EventID: "evt_c1", Type: "customer.created", CustomerID: "cus_conn", Account: "acct_1Fold"},
		{EventID: "evt_c2", Type: "customer.created", CustomerID: "cus_plat"},
		{EventID: "evt_o1", Type: "payment_intent.succeeded", CustomerID: "cus_conn", Account: "acct_1Fold", Object: map[string]any{"id": "pi_conn"}},
		{EventID: "evt_o2", Type: "payment_intent.succeeded", CustomerID: "cus_plat", Object: map[string]any{"id": "pi_plat"}},
	} {
		s.Created = base.Add(time.Duration(i) * time.Second)
		_, err := j.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type, Created: s.Created,
			Received: time.Now(), Verification: domain.VerifiedSignature, Account: s.Account, Body: s.Event()})
		require.NoError(t, err)
	}
	projs := reducers.All(reducers.DefaultOptions())
	engine, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1})
	require.NoError(t, err)
	q := New(engine, projs, "")
	done := make(chan struct{}, 2)
	go func() { engine.Run(ctx); done <- struct{}{} }()
	go func() { q.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	require.Eventually(t, func() bool {
		return len(pageRecords(t, q.ListCustomers, RecordFilter{}, 10)) == 2 && len(pageRecords(t, q.ListOrders, RecordFilter{}, 10)) == 2
	}, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, []subID{{"stripe", "cus_conn"}}, pageRecords(t, q.ListCustomers, RecordFilter{Account: "acct_1Fold"}, 10))
	assert.Equal(t, []subID{{"stripe", "pi_conn"}}, pageRecords(t, q.ListOrders, RecordFilter{Account: "acct_1Fold"}, 10))
	assert.Empty(t, pageRecords(t, q.ListOrders, RecordFilter{Account: "acct_2Other"}, 10))
}

// BenchmarkAccountListPage chooses a first page of 100 from a list of
// 1,000,000 customers: of one Connect account among 100 (10,000 records
// each, half of the list), and of the whole list.
func BenchmarkAccountListPage(b *testing.B) {
	l := newRecordList()
	l.x.StartLoad()
	for i := range 1_000_000 {
		var r indexedRecord
		r.Record.Provider, r.Record.ID = "stripe", fmt.Sprintf("cus_%07d", i)
		if i%2 == 0 {
			r.Record.Account = fmt.Sprintf("acct_%03d", i%200/2)
		}
		l.apply(uuid.New(), r, true)
	}
	l.x.FinishLoad()
	for _, c := range []struct {
		name string
		f    index.Filter
	}{{"account", index.Filter{Customer: "acct_042"}}, {"all", index.Filter{}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if page, more := l.x.List(c.f, 100, nil); len(page) != 100 || !more {
					b.Fatal("not a full page")
				}
			}
		})
	}
}
