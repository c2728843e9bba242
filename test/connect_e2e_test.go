package test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/ledger"
)

const connectSecret = "whsec_connect_e2e_0123456789"

// startConnectServer runs billfold with a platform Stripe endpoint and a
// Connect endpoint, each with its own secret, as Stripe gives them.
func startConnectServer(t *testing.T) *server {
	dir := t.TempDir()
	config := writeConfig(t, dir, fmt.Sprintf(`
endpoints:
  - name: stripe
    provider: stripe
    secrets: [%s]
  - name: stripe-connect
    provider: stripe
    connect: true
    secrets: [%s]
`, stripeSecret, connectSecret))
	return startServer(t, filepath.Join(dir, "data"), nil, "--config", config)
}

// Stripe Connect at intake: a connected account's event on the Connect
// endpoint is journaled with its account; a platform event there (no
// account) belongs to the platform; a connected account's event on the
// platform endpoint is answered ignored with BILLFOLD-ACCOUNT-MISMATCH and
// not journaled.
func TestConnectEventsKeepTheirAccount(t *testing.T) {
	srv := startConnectServer(t)
	at := time.Now().Truncate(time.Second)
	send := func(endpoint, secret string, ev samples.Stripe) string {
		body := ev.Event()
		code, answer, _ := srv.post(endpoint, body, stripeSig(body, time.Now(), secret))
		require.Equal(t, http.StatusOK, code, answer)
		return answer
	}
	send("stripe-connect", connectSecret, samples.Stripe{EventID: "evt_connect_1", Type: "customer.created", Created: at, CustomerID: "cus_connect_1", Account: "acct_1Connected"})
	send("stripe-connect", connectSecret, samples.Stripe{EventID: "evt_connect_platform", Type: "customer.created", Created: at, CustomerID: "cus_platform_1"})
	answer := send("stripe", stripeSecret, samples.Stripe{EventID: "evt_connect_astray", Type: "customer.created", Created: at, CustomerID: "cus_astray", Account: "acct_1Connected"})
	assert.JSONEq(t, `{"received":true,"status":"ignored"}`, answer)

	var e ledger.EventEntry
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/events/stripe/evt_connect_1", &e))
	require.NotNil(t, e.Journal)
	assert.Equal(t, "acct_1Connected", e.Journal.Account)
	assert.Equal(t, "stripe-connect", e.Journal.Endpoint)
	var platform ledger.EventEntry
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/events/stripe/evt_connect_platform", &platform))
	require.NotNil(t, platform.Journal)
	assert.Empty(t, platform.Journal.Account, "an event without account is the platform's")

	require.Eventually(t, func() bool {
		e = ledger.EventEntry{}
		return srv.getJSON("/v1/events/stripe/evt_connect_astray", &e) == http.StatusOK && e.Deliveries.Count == 1
	}, 10*time.Second, 50*time.Millisecond)
	assert.Nil(t, e.Journal, "not journaled")
	d := e.Deliveries.Deliveries[0]
	assert.Equal(t, domain.OutcomeIgnored, d.Outcome)
	assert.Equal(t, domain.CodeAccountMismatch, d.ReasonCode)
	assert.Contains(t, d.Reason, "acct_1Connected")

	// The account is kept on the records the events touch, and selects
	// subscriptions in the API and the CLI.
	send("stripe-connect", connectSecret, samples.Stripe{EventID: "evt_connect_sub", Type: "customer.subscription.created", Created: at,
		CustomerID: "cus_connect_1", SubscriptionID: "sub_connect_1", Status: "active", Account: "acct_1Connected"})
	send("stripe-connect", connectSecret, samples.Stripe{EventID: "evt_platform_sub", Type: "customer.subscription.created", Created: at,
		CustomerID: "cus_platform_1", SubscriptionID: "sub_platform_1", Status: "active"})
	var sub, platformSub, cus domain.SubscriptionRecord
	require.Eventually(t, func() bool {
		return srv.getJSON("/v1/subscriptions/stripe/sub_connect_1", &sub) == http.StatusOK &&
			srv.getJSON("/v1/subscriptions/stripe/sub_platform_1", &platformSub) == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)
	assert.Equal(t, "acct_1Connected", sub.Account)
	assert.Empty(t, platformSub.Account)

	// The ledger says when each projection stored the event's fold.
	var entry ledger.EventEntry
	require.Eventually(t, func() bool {
		entry = ledger.EventEntry{}
		return srv.getJSON("/v1/events/stripe/evt_connect_sub", &entry) == http.StatusOK &&
			entry.Projections[domain.ProjectionSubscriptions].Status == ledger.StatusProcessed
	}, 20*time.Second, 50*time.Millisecond)
	processed := entry.Projections[domain.ProjectionSubscriptions].ProcessedAt
	require.NotNil(t, processed, "processed_at of the subscription's write")
	assert.False(t, processed.Before(entry.Journal.Received.Truncate(time.Millisecond)), "stored after it was received")
	assert.Nil(t, entry.Projections[domain.ProjectionWallets].ProcessedAt, "wallets skips a subscription event")
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/customers/stripe/cus_connect_1", &cus))
	assert.Equal(t, "acct_1Connected", cus.Account)

	var page struct{ Items []domain.SubscriptionRecord }
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/subscriptions?account=acct_1Connected", &page))
	require.Len(t, page.Items, 1)
	assert.Equal(t, "sub_connect_1", page.Items[0].ID)
	out, code := runBillfold(t, "list", "subscriptions", "--account", "acct_1Connected", "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "sub_connect_1")
	assert.NotContains(t, out, "sub_platform_1")

	// Customers and orders select by account too, in the API and the CLI.
	send("stripe-connect", connectSecret, samples.Stripe{EventID: "evt_connect_pi", Type: "payment_intent.succeeded", Created: at,
		CustomerID: "cus_connect_1", Account: "acct_1Connected", Object: map[string]any{"id": "pi_connect_1"}})
	send("stripe-connect", connectSecret, samples.Stripe{EventID: "evt_platform_pi", Type: "payment_intent.succeeded", Created: at,
		CustomerID: "cus_platform_1", Object: map[string]any{"id": "pi_platform_1"}})
	var customers struct{ Items []domain.CustomerRecord }
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/customers?account=acct_1Connected", &customers))
	require.Len(t, customers.Items, 1)
	assert.Equal(t, "cus_connect_1", customers.Items[0].ID)
	var orders struct{ Items []domain.OrderRecord }
	require.Eventually(t, func() bool {
		orders.Items = nil
		return srv.getJSON("/v1/orders?account=acct_1Connected", &orders) == http.StatusOK && len(orders.Items) == 1
	}, 20*time.Second, 50*time.Millisecond)
	assert.Equal(t, "pi_connect_1", orders.Items[0].ID)
	out, code = runBillfold(t, "list", "customers", "--account", "acct_1Connected", "--server", srv.admin)
	require.Equal(t, 0, code, out)
	assert.Regexp(t, `stripe\s+cus_connect_1\s.*acct_1Connected`, out)
	assert.NotContains(t, out, "cus_platform_1")
	out, code = runBillfold(t, "list", "orders", "--account", "acct_1Connected", "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "pi_connect_1")
	assert.NotContains(t, out, "pi_platform_1")
	out, code = runBillfold(t, "list", "orders", "--account", "cus_connect_1", "--server", srv.admin)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "BILLFOLD-BAD-REQUEST")
}
