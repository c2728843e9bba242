package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/query"
)

const queryToken = "query-e2e-token"

// apiGet GETs path on the admin listener with the read token (none when
// token is "") and returns status and body.
func (s *server) apiGet(path, token string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.admin+path, nil)
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decodeAs[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(b, &v), "%s", b)
	return v
}

type listPage struct {
	Items []struct {
		Provider string                `json:"provider"`
		ID       string                `json:"id"`
		State    domain.LifecycleState `json:"state"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// The query API's "done when": the real binary, signed Stripe and Clerk
// deliveries, then every projection read through HTTP and through the CLI,
// linked identities, as_of, errors, and a filtered list paged through while
// more deliveries arrive.
func TestQueryAPIEndToEnd(t *testing.T) {
	t.Setenv("BILLFOLD_API_TOKEN", queryToken) // the server and every CLI run
	srv := startServer(t, t.TempDir(), []string{
		"STRIPE_WEBHOOK_SECRET=" + stripeSecret, "CLERK_WEBHOOK_SECRET=" + scenarioClerkSecret,
	}, "--rate-limit", "100000", "--rate-burst", "100000")

	day := 24 * time.Hour
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	s := &scenario{}
	sub := func(typ, cus, id, status string, at time.Time, prev map[string]any) {
		s.stripe(samples.Stripe{Type: typ, Created: at, CustomerID: cus, SubscriptionID: id, Status: status, Previous: prev})
	}
	s.stripe(samples.Stripe{Type: "customer.created", Created: t0, CustomerID: "cus_q1",
		Object: map[string]any{"email": "q1@example.com", "metadata": map[string]any{"user_id": "user_q1"}}})
	s.clerk("user.created", "user_q1", t0)
	sub("customer.subscription.created", "cus_q1", "sub_q1", "active", t0, nil)
	sub("customer.subscription.updated", "cus_q1", "sub_q1", "past_due", t0.Add(30*day), map[string]any{"status": "active"})
	sub("customer.subscription.created", "cus_q1", "sub_q2", "trialing", t0.Add(time.Hour), nil)
	sub("customer.subscription.created", "cus_q2", "sub_q3", "active", t0.Add(time.Hour), nil)
	s.stripe(samples.Stripe{Type: "checkout.session.completed", Created: t0.Add(2 * time.Hour), CustomerID: "cus_q1", Status: "paid",
		Object: map[string]any{"id": "cs_q1", "payment_intent": "pi_q1", "amount_total": 1000, "metadata": map[string]any{"user_id": "user_q1", "credits": "100"}}})
	s.stripe(samples.Stripe{Type: "checkout.session.completed", Created: t0.Add(3 * time.Hour), CustomerID: "cus_q2", Status: "paid",
		Object: map[string]any{"id": "cs_q9", "payment_intent": "pi_q9", "amount_total": 1000, "metadata": map[string]any{}}})
	s.stripe(samples.Stripe{Type: "charge.refunded", Created: t0.Add(4 * time.Hour), CustomerID: "cus_q2",
		Object: map[string]any{"id": "ch_q9", "payment_intent": "pi_q9", "amount_refunded": 300, "refunded": false}})
	for i := range 30 {
		sub("customer.subscription.created", fmt.Sprintf("cus_p%02d", i), fmt.Sprintf("sub_p%02d", i), "active", t0.Add(time.Duration(i)*time.Minute), nil)
	}
	deliver := func(ds []scenarioDelivery) {
		for _, d := range ds {
			code, answer, _ := srv.post(d.endpoint, d.body, d.sign(d.body))
			require.Equal(t, 200, code, answer)
		}
	}
	deliver(s.deliveries)

	// Wait until every projection has caught up and the index has them.
	require.Eventually(t, func() bool {
		code, b := srv.apiGet("/v1/subscriptions/counts", queryToken)
		if code != 200 {
			return false
		}
		c := decodeAs[map[string]int](t, b)
		w, _ := srv.apiGet("/v1/wallets/user_q1", queryToken)
		return c["active"] == 31 && c["past_due"] == 1 && c["trialing"] == 1 && w == 200
	}, 30*time.Second, 50*time.Millisecond)
	code, b := srv.apiGet("/v1/subscriptions/counts", queryToken)
	require.Equal(t, 200, code)
	counts := decodeAs[map[string]int](t, b)
	assert.Len(t, counts, len(domain.LifecycleStates), "every state present: %s", b)
	assert.Equal(t, 0, counts["ended"])

	// Each projection through HTTP.
	code, b = srv.apiGet("/v1/subscriptions/stripe/sub_q1", queryToken)
	require.Equal(t, 200, code, "%s", b)
	subRec := decodeAs[domain.SubscriptionRecord](t, b)
	assert.Equal(t, domain.StatePastDue, subRec.State)
	assert.Equal(t, "cus_q1", subRec.CustomerID)
	code, b = srv.apiGet("/v1/customers/stripe/cus_q1", queryToken)
	require.Equal(t, 200, code, "%s", b)
	assert.Equal(t, []domain.Link{{Kind: "user_id", Value: "user_q1"}}, decodeAs[domain.CustomerRecord](t, b).Links)
	code, b = srv.apiGet("/v1/customers/clerk/user_q1", queryToken)
	require.Equal(t, 200, code, "%s", b)
	assert.Equal(t, "user_q1@example.com", decodeAs[domain.CustomerRecord](t, b).Email)
	code, b = srv.apiGet("/v1/orders/stripe/pi_q1", queryToken)
	require.Equal(t, 200, code, "%s", b)
	assert.Equal(t, domain.OrderPaid, decodeAs[domain.OrderRecord](t, b).Status)
	code, b = srv.apiGet("/v1/wallets/user_q1", queryToken)
	require.Equal(t, 200, code, "%s", b)
	assert.Equal(t, int64(140), decodeAs[domain.WalletRecord](t, b).Available)

	// An order by any id the merchant holds (issue 17): its checkout
	// session and its charge resolve to the order, keyed by the payment
	// intent, and the answer says so.
	type resolvedOrder struct {
		domain.OrderRecord
		KeyID        string                 `json:"key_id"`
		ResolvedFrom *query.OrderResolution `json:"resolved_from"`
	}
	require.Eventually(t, func() bool {
		code, b := srv.apiGet("/v1/orders/stripe/ch_q9", queryToken)
		return code == 200 && decodeAs[resolvedOrder](t, b).AmountRefunded == 300
	}, 30*time.Second, 50*time.Millisecond, "the refund is folded")
	for id, kind := range map[string]string{"cs_q9": "session", "ch_q9": "charge"} {
		code, b = srv.apiGet("/v1/orders/stripe/"+id, queryToken)
		require.Equal(t, 200, code, "%s", b)
		o := decodeAs[resolvedOrder](t, b)
		assert.Equal(t, "pi_q9", o.ID, id)
		assert.Equal(t, "pi_q9", o.KeyID, id)
		assert.Equal(t, &query.OrderResolution{Kind: kind, ID: id}, o.ResolvedFrom)
		assert.Equal(t, domain.OrderPartiallyRefunded, o.Status)
		assert.Equal(t, "cs_q9", o.SessionID)
	}
	code, b = srv.apiGet("/v1/orders/stripe/pi_q9", queryToken)
	require.Equal(t, 200, code, "%s", b)
	assert.Nil(t, decodeAs[resolvedOrder](t, b).ResolvedFrom, "asked by its key")
	assert.NotContains(t, string(b), "key_id")
	code, _ = srv.apiGet("/v1/orders/stripe/cs_unknown", queryToken)
	assert.Equal(t, 404, code)
	code, b = srv.apiGet("/v1/orders/stripe/cs_q9?as_of="+t0.Add(3*time.Hour+time.Minute).Format(time.RFC3339), queryToken)
	require.Equal(t, 200, code, "%s", b)
	assert.Equal(t, domain.OrderPaid, decodeAs[resolvedOrder](t, b).Status, "as_of finds the order by its session too")

	// Each projection through the CLI, as JSON and as a table.
	getJSON := func(args ...string) []byte {
		out, code := runBillfold(t, append(append([]string{"get"}, args...), "--server", srv.admin, "-o", "json")...)
		require.Equal(t, 0, code, out)
		return []byte(out)
	}
	assert.Equal(t, domain.StatePastDue, decodeAs[domain.SubscriptionRecord](t, getJSON("subscription", "stripe", "sub_q1")).State)
	assert.Equal(t, "q1@example.com", decodeAs[domain.CustomerRecord](t, getJSON("customer", "stripe", "cus_q1")).Email)
	assert.Equal(t, domain.OrderPaid, decodeAs[domain.OrderRecord](t, getJSON("order", "stripe", "pi_q1")).Status)
	assert.Equal(t, int64(140), decodeAs[domain.WalletRecord](t, getJSON("wallet", "user_q1")).Balance)
	out, rc := runBillfold(t, "get", "subscription", "stripe", "sub_q1", "--server", srv.admin)
	require.Equal(t, 0, rc, out)
	assert.Regexp(t, `(?m)^state\s+past_due$`, out)
	out, rc = runBillfold(t, "get", "wallet", "user_q1", "--server", srv.admin)
	require.Equal(t, 0, rc, out)
	assert.Regexp(t, `(?m)^available\s+140$`, out)
	o := decodeAs[resolvedOrder](t, getJSON("order", "stripe", "cs_q9"))
	assert.Equal(t, "pi_q9", o.KeyID)
	out, rc = runBillfold(t, "get", "order", "stripe", "cs_q9", "--server", srv.admin)
	require.Equal(t, 0, rc, out)
	assert.Regexp(t, `(?m)^id\s+pi_q9$`, out)
	assert.Regexp(t, `(?m)^resolved_from\s+session cs_q9$`, out)
	out, rc = runBillfold(t, "list", "subscriptions", "--state", "past_due", "--server", srv.admin)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "PROVIDER")
	assert.Regexp(t, `(?m)^stripe\s+sub_q1\s+cus_q1\s+past_due\s`, out)

	// Linked identities: the Clerk user and the Stripe customer whose
	// metadata names it are one person.
	for _, who := range []string{"clerk/user_q1", "stripe/cus_q1"} {
		code, b = srv.apiGet("/v1/customers/"+who+"/subscriptions", queryToken)
		require.Equal(t, 200, code, "%s", b)
		p := decodeAs[listPage](t, b)
		var ids []string
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
		assert.Equal(t, []string{"sub_q1", "sub_q2"}, ids, who)
		code, b = srv.apiGet("/v1/customers/"+who+"/orders", queryToken)
		require.Equal(t, 200, code, "%s", b)
		p = decodeAs[listPage](t, b)
		require.Len(t, p.Items, 1, who)
		assert.Equal(t, "pi_q1", p.Items[0].ID)
	}

	// Time travel: before the renewal failed, sub_q1 was active.
	asOf := t0.Add(day).Format(time.RFC3339)
	code, b = srv.apiGet("/v1/subscriptions/stripe/sub_q1?as_of="+asOf, queryToken)
	require.Equal(t, 200, code, "%s", b)
	old := decodeAs[domain.SubscriptionRecord](t, b)
	assert.Equal(t, domain.StateActive, old.State)
	assert.Less(t, old.Version, subRec.Version)
	assert.Equal(t, domain.StateActive, decodeAs[domain.SubscriptionRecord](t, getJSON("subscription", "stripe", "sub_q1", "--as-of", asOf)).State)
	code, b = srv.apiGet("/v1/wallets/user_q1?as_of="+t0.Add(-time.Hour).Format(time.RFC3339), queryToken)
	assert.Equal(t, 404, code, "%s", b)

	// Errors: stable codes and a reason.
	apiErr := func(path string) (int, httpapi.APIError) {
		code, b := srv.apiGet(path, queryToken)
		return code, decodeAs[httpapi.APIError](t, b)
	}
	code, e := apiErr("/v1/subscriptions/stripe/sub_missing")
	assert.Equal(t, 404, code)
	assert.Equal(t, "not_found", e.Error)
	assert.Equal(t, domain.CodeNotFound, e.Code)
	for _, path := range []string{"/v1/subscriptions?limit=0", "/v1/subscriptions?limit=abc", "/v1/subscriptions?limit=1001",
		"/v1/subscriptions?cursor=not-a-cursor", "/v1/subscriptions?state=overdue", "/v1/subscriptions/stripe/sub_q1?as_of=yesterday"} {
		code, e = apiErr(path)
		assert.Equal(t, 400, code, path)
		assert.Equal(t, "bad_request", e.Error, path)
		assert.Equal(t, domain.CodeBadRequest, e.Code, path)
		assert.NotEmpty(t, e.Message, path)
	}
	code, b = srv.apiGet("/v1/subscriptions/stripe/sub_q1", "")
	assert.Equal(t, 401, code)
	assert.Equal(t, domain.CodeUnauthorized, decodeAs[httpapi.APIError](t, b).Code)
	code, _ = srv.apiGet("/v1/events/stripe/evt_scn_00001", "")
	assert.Equal(t, 401, code, "the event ledger needs the read token too")
	code, _ = srv.apiGet("/v1/events/stripe/evt_scn_00001", queryToken)
	assert.Equal(t, 200, code)
	out, rc = runBillfold(t, "get", "subscription", "stripe", "sub_missing", "--server", srv.admin)
	assert.Equal(t, 1, rc)
	assert.Contains(t, out, "BILLFOLD-NOT-FOUND")
	out, rc = runBillfold(t, "list", "subscriptions", "--limit", "5", "--cursor", "bogus", "--server", srv.admin)
	assert.Equal(t, 1, rc)
	assert.Contains(t, out, "BILLFOLD-BAD-REQUEST")
	code, b = srv.apiGet("/v1/openapi.json", "")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, string(query.OpenAPI()), string(b))

	// Page through the active subscriptions, 7 at a time through the CLI,
	// while 20 more active subscriptions arrive: none twice, none of those
	// there before paging began missed.
	code, b = srv.apiGet("/v1/subscriptions?state=active&limit=1000", queryToken)
	require.Equal(t, 200, code)
	before := decodeAs[listPage](t, b)
	require.Len(t, before.Items, 31)
	require.Empty(t, before.NextCursor)
	more := &scenario{n: s.n}
	for i := range 20 {
		// Ids that sort among the existing ones (sub_p..) and after them.
		id := fmt.Sprintf("sub_p%02d_new", i)
		if i%2 == 1 {
			id = fmt.Sprintf("sub_z%02d", i)
		}
		more.stripe(samples.Stripe{Type: "customer.subscription.created", Created: t0, CustomerID: "cus_new", SubscriptionID: id, Status: "active"})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, d := range more.deliveries {
			code, answer, _ := srv.post(d.endpoint, d.body, d.sign(d.body))
			assert.Equal(t, 200, code, answer)
			time.Sleep(20 * time.Millisecond)
		}
	})
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100)
		args := []string{"list", "subscriptions", "--state", "active", "--limit", "7", "--server", srv.admin, "-o", "json"}
		if cursor != "" {
			args = append(args, "--cursor", cursor)
		}
		out, rc := runBillfold(t, args...)
		require.Equal(t, 0, rc, out)
		p := decodeAs[listPage](t, []byte(out))
		require.LessOrEqual(t, len(p.Items), 7)
		for _, it := range p.Items {
			assert.Equal(t, domain.StateActive, it.State)
			seen = append(seen, it.Provider+"/"+it.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	wg.Wait()
	dup := map[string]bool{}
	for _, id := range seen {
		assert.False(t, dup[id], "%s listed twice", id)
		dup[id] = true
	}
	for _, it := range before.Items {
		assert.True(t, dup[it.Provider+"/"+it.ID], "%s/%s existed before paging and was missed", it.Provider, it.ID)
	}
	assert.True(t, slices.IsSortedFunc(seen, strings.Compare), "stable (provider, id) order")

	// Once the deliveries are folded, the whole list (the CLI following
	// next_cursor) has all 51.
	require.Eventually(t, func() bool {
		out, rc := runBillfold(t, "list", "subscriptions", "--state", "active", "--server", srv.admin, "-o", "json")
		return rc == 0 && len(decodeAs[listPage](t, []byte(out)).Items) == 51
	}, 30*time.Second, 100*time.Millisecond)
}
