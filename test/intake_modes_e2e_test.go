package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/ledger"
)

const unsignedName = "in-3f9a1c7be2d84056af19c2e7b5d0e813"

// startUnsignedServer runs billfold with env and two Stripe endpoints: the
// unsigned one named unsignedName and a signed one, "stripe".
func startUnsignedServer(t *testing.T, env []string) *server {
	t.Helper()
	dir := t.TempDir()
	config := writeConfig(t, dir, fmt.Sprintf(`
endpoints:
  - name: %s
    provider: stripe
    unsigned: true
  - name: stripe
    provider: stripe
    secrets: [%s]
`, unsignedName, stripeSecret))
	return startServer(t, filepath.Join(dir, "data"), env, "--config", config)
}

// An unsigned endpoint exists only by explicit config with a long random
// name; its deliveries are journaled flagged unsigned, counted and logged at
// warn. A signed endpoint never falls back to unsigned. Its name, its only
// secret, is shown nowhere: metric labels, log lines and the event ledger
// show its label.
func TestUnsignedIntakeIsExplicitAndFlagged(t *testing.T) {
	srv := startUnsignedServer(t, nil)

	body := stripeBody("evt_unsigned_1", "customer.created", false)
	code, answer, _ := srv.post(unsignedName, body, nil)
	require.Equal(t, 200, code, answer)
	code, _, _ = srv.post("stripe", stripeBody("evt_unsigned_2", "customer.created", false), nil)
	assert.Equal(t, 400, code, "a signed endpoint never falls back to unsigned")

	var e ledger.EventEntry
	require.Equal(t, 200, srv.getJSON("/v1/events/stripe~unsigned/evt_unsigned_1", &e), "unsigned events have a namespace of their own")
	require.NotNil(t, e.Journal)
	assert.Equal(t, "unsigned", string(e.Journal.Verification))
	assert.Equal(t, 404, srv.getJSON("/v1/events/stripe/evt_unsigned_1", nil), "never in the signed namespace")
	label := domain.UnsignedLabel(unsignedName)
	assert.Equal(t, label, e.Journal.Endpoint)
	require.NotEmpty(t, e.Deliveries.Deliveries)
	assert.Equal(t, label, e.Deliveries.Deliveries[0].Endpoint)
	_, metrics := srv.get("/metrics")
	assert.Contains(t, string(metrics), `billfold_unsigned_deliveries_total{endpoint="`+label+`"} 1`)
	assert.Regexp(t, `"level":"WARN","msg":"delivery".*"verification":"unsigned"`, srv.logs.String())
	_, list := srv.get("/v1/events?limit=100")
	_, entry := srv.get("/v1/events/stripe~unsigned/evt_unsigned_1")
	for what, text := range map[string]string{"metrics": string(metrics), "logs": srv.logs.String(), "event list": string(list), "event": string(entry)} {
		assert.NotContains(t, text, unsignedName, "the unsigned endpoint's name in the %s", what)
	}
}

// The attack of issue 17: an unsigned endpoint for the same provider as a
// signed one. Unsigned evt_shared1 (a customer update with the attacker's
// email, an hour later than the genuine event) comes first; Stripe's own,
// signed evt_shared1 is still accepted, not a duplicate, and wins on the
// record, which says that unsigned input contributed. An unsigned checkout
// top-up credits nothing, unless the endpoint allows it (unsigned_credits).
func TestUnsignedInputNeverPreemptsSignedEvents(t *testing.T) {
	const allowed = "in-7c2e9b4f1a8d3065be17c4a9f2d8e0b6"
	dir := t.TempDir()
	config := writeConfig(t, dir, fmt.Sprintf(`
endpoints:
  - name: %s
    provider: stripe
    unsigned: true
  - name: %s
    provider: stripe
    unsigned: true
    unsigned_credits: true
  - name: stripe
    provider: stripe
    secrets: [%s]
`, unsignedName, allowed, stripeSecret))
	srv := startServer(t, filepath.Join(dir, "data"), nil, "--config", config)

	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	forged := samples.Stripe{EventID: "evt_shared1", Type: "customer.updated", Created: at.Add(time.Hour), CustomerID: "cus_shared",
		Object: map[string]any{"email": "attacker@example.net"}}.Event()
	code, answer, _ := srv.post(unsignedName, forged, nil)
	require.Equal(t, 200, code)
	assert.JSONEq(t, `{"received":true,"status":"accepted"}`, answer)
	genuine := samples.Stripe{EventID: "evt_shared1", Type: "customer.created", Created: at, CustomerID: "cus_shared",
		Object: map[string]any{"email": "ana@example.com"}}.Event()
	code, answer, _ = srv.post("stripe", genuine, stripeSig(genuine, time.Now(), stripeSecret))
	require.Equal(t, 200, code)
	assert.JSONEq(t, `{"received":true,"status":"accepted"}`, answer, "the signed event is not a duplicate of the unsigned one")

	var cus domain.CustomerRecord
	require.Eventually(t, func() bool {
		return srv.getJSON("/v1/customers/stripe/cus_shared", &cus) == 200 && cus.Version == 2
	}, 20*time.Second, 50*time.Millisecond, "both events folded")
	assert.Equal(t, "ana@example.com", cus.Email, "the signed event wins over later unsigned input")
	assert.Equal(t, domain.VerifiedUnsigned, cus.Verification, "the record says unsigned input contributed")
	var e ledger.EventEntry
	require.Equal(t, 200, srv.getJSON("/v1/events/stripe/evt_shared1", &e))
	assert.Equal(t, domain.VerifiedSignature, e.Journal.Verification)
	require.Equal(t, 200, srv.getJSON("/v1/events/stripe~unsigned/evt_shared1", &e))
	assert.Equal(t, domain.VerifiedUnsigned, e.Journal.Verification)

	topUp := func(id, user string) []byte {
		return samples.Stripe{EventID: id, Type: "checkout.session.completed", Created: at, CustomerID: "cus_" + user,
			Object: map[string]any{"metadata": map[string]any{"user_id": user, "credits": "999999"}}}.Event()
	}
	code, _, _ = srv.post(unsignedName, topUp("evt_forged_topup", "user_victim"), nil)
	require.Equal(t, 200, code)
	code, _, _ = srv.post(allowed, topUp("evt_allowed_topup", "user_allowed"), nil)
	require.Equal(t, 200, code)
	// The wallets projector folds in journal order: once the allowed
	// top-up is in, the forged one before it was folded too.
	var w domain.WalletRecord
	require.Eventually(t, func() bool { return srv.getJSON("/v1/wallets/user_allowed", &w) == 200 },
		20*time.Second, 50*time.Millisecond, "the endpoint with unsigned_credits credits")
	assert.Equal(t, int64(999999), w.Balance)
	assert.Equal(t, domain.VerifiedUnsigned, w.Verification)
	assert.Equal(t, 404, srv.getJSON("/v1/wallets/user_victim", nil), "an unsigned top-up credits nothing")
	var orders struct{ Items []domain.OrderRecord }
	require.Equal(t, 200, srv.getJSON("/v1/customers/stripe/cus_user_victim/orders", &orders))
	require.Len(t, orders.Items, 1, "the order itself is recorded")
	assert.Equal(t, domain.VerifiedUnsigned, orders.Items[0].Verification, "and flagged")
}

func TestUnsignedEndpointNeedsALongRandomName(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, `
endpoints:
  - name: open
    provider: stripe
    unsigned: true
`)
	out, code := runBillfold(t, "serve", "--data-dir", filepath.Join(dir, "data"), "--config", config,
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--nats-listen", "")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "BILLFOLD-CONFIG-INVALID")
	assert.Contains(t, out, "at least 32 random characters")
}

// The test bypass starts only on a fresh data dir, prints a banner, and
// marks what it lets through; such a data dir is never served without it.
func TestInsecureTestBypass(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startServer(t, data, []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--insecure-test-bypass")
	assert.Contains(t, srv.logs.String(), "Never run this in production")

	unsigned := stripeBody("evt_bypass_1", "customer.created", false)
	code, answer, _ := srv.post("stripe", unsigned, nil)
	require.Equal(t, 200, code, answer)
	good := stripeBody("evt_bypass_2", "customer.created", false)
	code, _, _ = srv.post("stripe", good, stripeSig(good, time.Now(), stripeSecret))
	require.Equal(t, 200, code)

	var e ledger.EventEntry
	require.Equal(t, 200, srv.getJSON("/v1/events/stripe~bypass/evt_bypass_1", &e), "bypassed events have a namespace of their own")
	assert.Equal(t, "bypass", string(e.Journal.Verification))
	require.Equal(t, 200, srv.getJSON("/v1/events/stripe/evt_bypass_2", &e))
	assert.Equal(t, "signature", string(e.Journal.Verification), "a delivery that verifies is not marked bypass")
	_, metrics := srv.get("/metrics")
	assert.Contains(t, string(metrics), `billfold_bypassed_deliveries_total{endpoint="stripe"} 1`)
	assert.Contains(t, string(metrics), `billfold_deliveries_total{endpoint="stripe",outcome="accepted"} 2`)
	srv.kill()

	out, code := runBillfold(t, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--nats-listen", "")
	assert.Equal(t, 1, code, "a bypass data dir is never served without bypass")
	assert.Contains(t, out, "created by --insecure-test-bypass")

	// A data dir with a real journal refuses bypass.
	real := filepath.Join(dir, "real")
	startServer(t, real, nil).kill()
	out, code = runBillfold(t, "serve", "--data-dir", real, "--insecure-test-bypass", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--nats-listen", "")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "not fresh")
}

func TestRateLimitPerSource(t *testing.T) {
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--rate-limit", "1", "--rate-burst", "3")
	var codes []int
	for i := range 6 {
		body := stripeBody(fmt.Sprintf("evt_rl_%d", i), "customer.created", false)
		code, _, h := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
		codes = append(codes, code)
		if code == 429 {
			assert.Equal(t, "1", h.Get("Retry-After"))
		}
	}
	assert.Equal(t, []int{200, 200, 200}, codes[:3])
	assert.Contains(t, codes[3:], 429)
	_, metrics := srv.get("/metrics")
	assert.True(t, strings.Contains(string(metrics), `outcome="rate_limited"`))
}
