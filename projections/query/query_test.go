package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// queryFixture is a Query over a real embedded NATS whose stores the test
// writes directly.
type queryFixture struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	engine *projections.Engine
	q      *Query
}

func newQueryFixture(t *testing.T) *queryFixture {
	t.Helper()
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{}))
	projs := reducers.All(reducers.DefaultOptions())
	engine, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{})
	require.NoError(t, err)
	q := New(engine, projs, "")
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &queryFixture{t: t, nc: nc, js: js, engine: engine, q: q}
}

func (f *queryFixture) put(projection, key string, record any) {
	f.t.Helper()
	b, err := json.Marshal(map[string]any{"record": record})
	require.NoError(f.t, err)
	_, err = f.bucket(projection).Put(context.Background(), key, b)
	require.NoError(f.t, err)
}

// bucket is the KV bucket of projection's current store, written directly.
func (f *queryFixture) bucket(projection string) jetstream.KeyValue {
	f.t.Helper()
	kv, err := f.js.KeyValue(context.Background(), f.engine.Store(projection).Bucket())
	require.NoError(f.t, err)
	return kv
}

func (f *queryFixture) putSub(s domain.SubscriptionRecord) {
	f.put(domain.ProjectionSubscriptions, reducers.SubscriptionKey(string(s.Provider), s.ID), s)
}

// waitCount waits until the index holds n subscriptions.
func (f *queryFixture) waitCount(n int) {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		return f.q.view.Load().subs.Len() == n
	}, 10*time.Second, 10*time.Millisecond)
}

type subID struct{ Provider, ID string }

// pageAll pages through a filter with limit and returns the ids in order.
func pageAll(t *testing.T, q *Query, f SubscriptionFilter, limit int) []subID {
	t.Helper()
	var out []subID
	cursor := ""
	for range 10_000 {
		p, err := q.ListSubscriptions(context.Background(), f, limit, cursor)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Items), limit)
		for _, raw := range p.Items {
			var s domain.SubscriptionRecord
			require.NoError(t, json.Unmarshal(raw, &s))
			out = append(out, subID{string(s.Provider), s.ID})
		}
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
	}
	t.Fatal("paging did not end")
	return nil
}

func TestQueryListFiltersPagingAndCounts(t *testing.T) {
	f := newQueryFixture(t)
	rng := rand.New(rand.NewPCG(1, 2))
	providers := []domain.Provider{domain.Stripe, domain.Braintree}
	var all []domain.SubscriptionRecord
	for i := range 237 {
		s := domain.SubscriptionRecord{
			Provider:   providers[rng.IntN(2)],
			ID:         fmt.Sprintf("sub_%04d", rng.IntN(100_000)),
			CustomerID: fmt.Sprintf("cus_%d", i%20),
			State:      domain.LifecycleStates[rng.IntN(len(domain.LifecycleStates))],
		}
		if slices.ContainsFunc(all, func(o domain.SubscriptionRecord) bool { return o.Provider == s.Provider && o.ID == s.ID }) {
			continue
		}
		all = append(all, s)
		f.putSub(s)
	}
	f.waitCount(len(all))

	expect := func(flt SubscriptionFilter) []subID {
		var out []subID
		for _, s := range all {
			if (flt.State == "" || s.State == flt.State) && (flt.Provider == "" || string(s.Provider) == flt.Provider) &&
				(flt.Customer == "" || s.CustomerID == flt.Customer) {
				out = append(out, subID{string(s.Provider), s.ID})
			}
		}
		sort.Slice(out, func(i, j int) bool {
			return index.ComparePositions(index.Position(out[i]), index.Position(out[j])) < 0
		})
		return out
	}
	filters := []SubscriptionFilter{
		{},
		{State: domain.StateActive},
		{State: domain.StatePastDue, Provider: "stripe"},
		{Provider: "braintree"},
		{Customer: "cus_3"},
		{Customer: "cus_3", State: domain.StateEnded},
		{Customer: "cus_4", Provider: "stripe"},
		{Provider: "nobody"},
	}
	for _, flt := range filters {
		for _, limit := range []int{1, 7, 100, 1000} {
			got := pageAll(t, f.q, flt, limit)
			assert.Equal(t, expect(flt), got, "filter %+v limit %d", flt, limit)
		}
	}

	counts, err := f.q.Counts(context.Background())
	require.NoError(t, err)
	require.Len(t, counts, len(domain.LifecycleStates))
	total := 0
	for _, s := range domain.LifecycleStates {
		assert.Equal(t, len(expect(SubscriptionFilter{State: s})), counts[s], "count %s", s)
		total += counts[s]
	}
	assert.Equal(t, len(all), total)

	// A state change moves the record; a deletion removes it.
	moved := all[0]
	moved.State = domain.StatePaused
	if all[0].State == domain.StatePaused {
		moved.State = domain.StateActive
	}
	f.putSub(moved)
	require.Eventually(t, func() bool {
		return slices.Contains(pageAll(t, f.q, SubscriptionFilter{State: moved.State}, 1000), subID{string(moved.Provider), moved.ID})
	}, 5*time.Second, 10*time.Millisecond)
	assert.NotContains(t, pageAll(t, f.q, SubscriptionFilter{State: all[0].State}, 1000), subID{string(moved.Provider), moved.ID})
	require.NoError(t, f.bucket(domain.ProjectionSubscriptions).Delete(context.Background(), reducers.SubscriptionKey(string(moved.Provider), moved.ID)))
	f.waitCount(len(all) - 1)
	assert.NotContains(t, pageAll(t, f.q, SubscriptionFilter{}, 1000), subID{string(moved.Provider), moved.ID})
}

func TestQueryValidatesLimitCursorState(t *testing.T) {
	f := newQueryFixture(t)
	ctx := context.Background()
	for _, s := range []string{"0", "1001", "-1", "ten"} {
		_, err := httpapi.ParseLimit(s)
		assert.Equal(t, domain.CodeBadRequest, domain.ErrorCode(err), s)
	}
	n, err := httpapi.ParseLimit("")
	require.NoError(t, err)
	assert.Equal(t, httpapi.DefaultListLimit, n)
	_, err = f.q.ListSubscriptions(ctx, SubscriptionFilter{}, 0, "")
	assert.Equal(t, domain.CodeBadRequest, domain.ErrorCode(err))
	for _, c := range []string{"!!!", "eHl6", "%%"} {
		_, err = f.q.ListSubscriptions(ctx, SubscriptionFilter{}, 10, c)
		assert.Equal(t, domain.CodeBadRequest, domain.ErrorCode(err), c)
	}
	_, err = f.q.ListSubscriptions(ctx, SubscriptionFilter{State: "overdue"}, 10, "")
	assert.Equal(t, domain.CodeBadRequest, domain.ErrorCode(err))

	// Through HTTP: stable codes and the reason.
	mux := http.NewServeMux()
	f.q.Register(mux, httpapi.RequireToken("s3cret"))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path, token string) (int, httpapi.APIError) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e httpapi.APIError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	code, e := get("/v1/subscriptions?limit=5000", "s3cret")
	assert.Equal(t, 400, code)
	assert.Equal(t, httpapi.APIError{Error: "bad_request", Code: domain.CodeBadRequest, Message: `limit "5000": want an integer from 1 to 1000`}, e)
	code, e = get("/v1/subscriptions?state=overdue", "s3cret")
	assert.Equal(t, 400, code)
	assert.Contains(t, e.Message, "past_due")
	code, e = get("/v1/subscriptions/stripe/sub_none", "s3cret")
	assert.Equal(t, 404, code)
	assert.Equal(t, "not_found", e.Error)
	assert.Equal(t, domain.CodeNotFound, e.Code)
	code, e = get("/v1/subscriptions/counts", "")
	assert.Equal(t, 401, code)
	assert.Equal(t, domain.CodeUnauthorized, e.Code)
	code, _ = get("/v1/subscriptions/counts", "wrong")
	assert.Equal(t, 401, code)
	code, _ = get("/v1/subscriptions/counts", "s3cret")
	assert.Equal(t, 200, code)
	code, _ = get("/v1/openapi.json", "")
	assert.Equal(t, 200, code)
}

func TestQueryLinkedIdentities(t *testing.T) {
	f := newQueryFixture(t)
	ctx := context.Background()
	f.put(domain.ProjectionCustomers, reducers.CustomerKey("stripe", "cus_1"), domain.CustomerRecord{
		Provider: domain.Stripe, ID: "cus_1", Links: []domain.Link{{Kind: "user_id", Value: "user_1"}}})
	f.put(domain.ProjectionCustomers, reducers.CustomerKey("clerk", "user_1"), domain.CustomerRecord{Provider: domain.Clerk, ID: "user_1"})
	f.put(domain.ProjectionCustomers, reducers.CustomerKey("stripe", "cus_2"), domain.CustomerRecord{Provider: domain.Stripe, ID: "cus_2"})
	f.putSub(domain.SubscriptionRecord{Provider: domain.Stripe, ID: "sub_b", CustomerID: "cus_1", State: domain.StateActive})
	f.putSub(domain.SubscriptionRecord{Provider: domain.Stripe, ID: "sub_a", CustomerID: "cus_1", State: domain.StatePastDue})
	f.putSub(domain.SubscriptionRecord{Provider: domain.Stripe, ID: "sub_c", CustomerID: "cus_2", State: domain.StateActive})
	f.putSub(domain.SubscriptionRecord{Provider: domain.Braintree, ID: "sub_d", CustomerID: "cus_1", State: domain.StateActive})
	f.put(domain.ProjectionOrders, reducers.OrderKey("stripe", "pi_1"), domain.OrderRecord{Provider: domain.Stripe, ID: "pi_1", CustomerID: "cus_1"})
	f.put(domain.ProjectionOrders, reducers.OrderKey("stripe", "cs_2"), domain.OrderRecord{Provider: domain.Stripe, ID: "cs_2",
		Links: []domain.Link{{Kind: "user_id", Value: "user_1"}}})
	f.put(domain.ProjectionOrders, reducers.OrderKey("stripe", "pi_3"), domain.OrderRecord{Provider: domain.Stripe, ID: "pi_3", CustomerID: "cus_2"})
	f.waitCount(4)

	ids := func(p Page) []string {
		var out []string
		for _, raw := range p.Items {
			var r struct{ ID string }
			require.NoError(t, json.Unmarshal(raw, &r))
			out = append(out, r.ID)
		}
		return out
	}
	require.Eventually(t, func() bool {
		p, err := f.q.CustomerOrders(ctx, "clerk", "user_1", 0, "")
		return err == nil && len(p.Items) == 2
	}, 5*time.Second, 10*time.Millisecond)
	for _, who := range [][2]string{{"stripe", "cus_1"}, {"clerk", "user_1"}} {
		p, err := f.q.CustomerSubscriptions(ctx, who[0], who[1], 0, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"sub_a", "sub_b"}, ids(p), "%v", who)
		p, err = f.q.CustomerOrders(ctx, who[0], who[1], 0, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"cs_2", "pi_1"}, ids(p), "%v", who)
	}
	// Paged: one at a time, each page's cursor leading to the next.
	for _, list := range []struct {
		name string
		page func(limit int, cursor string) (Page, error)
		want []string
	}{
		{"subscriptions", func(limit int, cursor string) (Page, error) {
			return f.q.CustomerSubscriptions(ctx, "clerk", "user_1", limit, cursor)
		}, []string{"sub_a", "sub_b"}},
		{"orders", func(limit int, cursor string) (Page, error) {
			return f.q.CustomerOrders(ctx, "clerk", "user_1", limit, cursor)
		}, []string{"cs_2", "pi_1"}},
	} {
		var got []string
		cursor := ""
		for range 3 {
			p, err := list.page(1, cursor)
			require.NoError(t, err, list.name)
			require.LessOrEqual(t, len(p.Items), 1, list.name)
			got = append(got, ids(p)...)
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		assert.Equal(t, list.want, got, list.name)
		assert.Empty(t, cursor, "%s: the last page has no next cursor", list.name)
		_, err := list.page(1, "not-a-cursor")
		assert.Equal(t, domain.CodeBadRequest, domain.ErrorCode(err), list.name)
	}
	p, err := f.q.CustomerSubscriptions(ctx, "stripe", "cus_2", 0, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"sub_c"}, ids(p))
	// A customer known only from its subscriptions (Braintree) still lists them.
	p, err = f.q.CustomerSubscriptions(ctx, "braintree", "cus_1", 0, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"sub_d"}, ids(p))
	_, err = f.q.CustomerSubscriptions(ctx, "stripe", "cus_nobody", 0, "")
	assert.Equal(t, domain.CodeNotFound, domain.ErrorCode(err))
}

func TestQueryAsOf(t *testing.T) {
	f := newQueryFixture(t)
	ctx := context.Background()
	j := ingest.NewJournal(f.nc, f.js)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, ev := range []samples.Stripe{
		{EventID: "evt_a", Type: "customer.subscription.created", Created: t0, Status: "active"},
		{EventID: "evt_b", Type: "customer.subscription.updated", Created: t0.Add(time.Hour), Status: "past_due", Previous: map[string]any{"status": "active"}},
	} {
		ev.CustomerID, ev.SubscriptionID = "cus_1", "sub_1"
		_, err := j.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: ev.EventID, EventType: ev.Type,
			Created: ev.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: ev.Event()})
		require.NoError(t, err, i)
	}
	state := func(at time.Time) domain.LifecycleState {
		raw, err := f.q.AsOf(ctx, domain.KindSubscription, "stripe", "sub_1", at)
		require.NoError(t, err)
		var s domain.SubscriptionRecord
		require.NoError(t, json.Unmarshal(raw, &s))
		return s.State
	}
	assert.Equal(t, domain.StateActive, state(t0.Add(time.Minute)))
	assert.Equal(t, domain.StatePastDue, state(t0.Add(2*time.Hour)))
	_, err := f.q.AsOf(ctx, domain.KindSubscription, "stripe", "sub_1", t0.Add(-time.Minute))
	assert.Equal(t, domain.CodeNotFound, domain.ErrorCode(err))
}

// A page is chosen by the index, which may lag the store: a record whose
// stored state no longer matches the filter is left out of the page
// rather than shown under it, and shown under the filter it now matches.
func TestQueryListLeavesOutRecordsChangedUnderTheIndex(t *testing.T) {
	f := newQueryFixture(t)
	subs := []domain.SubscriptionRecord{
		{Provider: domain.Stripe, ID: "sub_a", CustomerID: "cus_1", State: domain.StateActive},
		{Provider: domain.Stripe, ID: "sub_b", CustomerID: "cus_1", State: domain.StateActive},
		{Provider: domain.Braintree, ID: "sub_c", CustomerID: "cus_2", State: domain.StateActive},
	}
	for _, s := range subs {
		f.putSub(s)
	}
	f.waitCount(len(subs))
	changed := subs[1]
	changed.State = domain.StateEnded
	f.putSub(changed)
	require.Eventually(t, func() bool {
		c, err := f.q.Counts(context.Background())
		return err == nil && c[domain.StateEnded] == 1
	}, 10*time.Second, 10*time.Millisecond)

	// The index as a lagging one would have it: sub_b still active.
	v := f.q.view.Load()
	stale, _ := v.subs.List(index.Filter{State: domain.StateEnded}, 10, nil)
	require.Len(t, stale, 1)
	stale[0].State = domain.StateActive
	v.subs.Put(stale[0])

	assert.Equal(t, []subID{{"braintree", "sub_c"}, {"stripe", "sub_a"}},
		pageAll(t, f.q, SubscriptionFilter{State: domain.StateActive}, 10))
	assert.Equal(t, []subID{{"stripe", "sub_a"}}, pageAll(t, f.q, SubscriptionFilter{State: domain.StateActive, Provider: "stripe"}, 10))
	assert.Equal(t, []subID{{"braintree", "sub_c"}, {"stripe", "sub_a"}, {"stripe", "sub_b"}},
		pageAll(t, f.q, SubscriptionFilter{}, 10), "no filter: every record, as stored")
}
