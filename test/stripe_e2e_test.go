package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v84/webhook"

	"github.com/billfold/billfold/projections/ledger"
)

const (
	stripeSecret      = "whsec_e2e_current_secret_do_not_log"
	stripeSecretOld   = "whsec_e2e_previous_secret_do_not_log"
	stripeSecretWrong = "whsec_e2e_wrong"
)

func stripeBody(id, typ string, livemode bool) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2025-03-31.basil","type":%q,"created":%d,"livemode":%t,"pending_webhooks":1,"data":{"object":{"id":"cus_%s","object":"customer","email":"a@example.com"}}}`,
		id, typ, time.Now().Unix(), livemode, id)
}

func stripeSig(body []byte, at time.Time, secret string) map[string]string {
	p := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return map[string]string{"Stripe-Signature": p.Header, "Content-Type": "application/json"}
}

// writeConfig writes a YAML config file into dir and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, "billfold.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

// The foundation's "done when": the real binary, stripe-go-signed events
// over HTTP, every row of the answers table, then SIGKILL and a restart on
// the same data dir that still knows every accepted event and every
// duplicate.
func TestStripeIntakeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, `
endpoints:
  - name: stripe
    provider: stripe
    secrets: ["${E2E_STRIPE_SECRET}", "${E2E_STRIPE_SECRET_OLD}"]
  - name: stripe-live
    provider: stripe
    secrets: ["${E2E_STRIPE_SECRET}"]
    livemode: true
  - name: stripe-unset
    provider: stripe
    secrets: ["${E2E_NOT_SET_ANYWHERE}"]
  - name: stripe-small
    provider: stripe
    secrets: ["${E2E_STRIPE_SECRET}"]
    max_body_bytes: 512
    tolerance: 30s
`)
	env := []string{"E2E_STRIPE_SECRET=" + stripeSecret, "E2E_STRIPE_SECRET_OLD=" + stripeSecretOld}
	srv := startServer(t, filepath.Join(dir, "data"), env, "--config", config)
	assert.Contains(t, srv.logs.String(), "BILLFOLD-CONFIG-NO-SECRET", "serve warns at start about an endpoint without secret")

	now := time.Now()
	var accepted []string
	send := func(endpoint string, body []byte, h map[string]string) (int, string) {
		code, answer, _ := srv.post(endpoint, body, h)
		return code, answer
	}

	// Row: verified, new event, journaled.
	for i := range 5 {
		id := fmt.Sprintf("evt_e2e_%d", i)
		body := stripeBody(id, "customer.created", false)
		code, answer := send("stripe", body, stripeSig(body, now, stripeSecret))
		require.Equal(t, 200, code, answer)
		assert.JSONEq(t, `{"received":true,"status":"accepted"}`, answer)
		accepted = append(accepted, id)
	}
	// A delivery signed with the previous secret passes while both are configured.
	oldBody := stripeBody("evt_e2e_rotated", "customer.updated", false)
	code, answer := send("stripe", oldBody, stripeSig(oldBody, now, stripeSecretOld))
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"received":true,"status":"accepted"}`, answer)
	accepted = append(accepted, "evt_e2e_rotated")
	// Unknown event types are journaled, never 4xx.
	newType := stripeBody("evt_e2e_newtype", "v2.core.something_new", false)
	code, answer = send("stripe", newType, stripeSig(newType, now, stripeSecret))
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"received":true,"status":"accepted"}`, answer)
	accepted = append(accepted, "evt_e2e_newtype")

	// Row: verified, event id already journaled.
	first := stripeBody("evt_e2e_0", "customer.created", false)
	code, answer = send("stripe", first, stripeSig(first, now, stripeSecret))
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"received":true,"status":"duplicate"}`, answer)

	// Row: livemode differs from the endpoint's.
	testMode := stripeBody("evt_e2e_testmode", "customer.created", false)
	code, answer = send("stripe-live", testMode, stripeSig(testMode, now, stripeSecret))
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"received":true,"status":"ignored"}`, answer)

	// Row: missing / invalid / expired signature, one body for every cause.
	bad := stripeBody("evt_e2e_bad", "customer.created", false)
	for name, h := range map[string]map[string]string{
		"missing":      {},
		"garbage":      {"Stripe-Signature": "t=abc,v1=zz"},
		"wrong secret": stripeSig(bad, now, stripeSecretWrong),
		"expired":      stripeSig(bad, now.Add(-time.Hour), stripeSecret),
		"future":       stripeSig(bad, now.Add(time.Hour), stripeSecret),
	} {
		code, answer = send("stripe", bad, h)
		assert.Equal(t, 400, code, name)
		assert.JSONEq(t, `{"error":"signature verification failed"}`, answer, name)
	}
	tampered := append([]byte(nil), bad...)
	tampered[len(tampered)-3] = ' '
	code, answer = send("stripe", tampered, stripeSig(bad, now, stripeSecret))
	assert.Equal(t, 400, code)
	assert.JSONEq(t, `{"error":"signature verification failed"}`, answer)

	// Row: verified but not a JSON event with id and type.
	for _, body := range []string{`{"id":"evt_1","object":"event"}`, `{"type":"customer.created"}`, `not json`} {
		code, answer = send("stripe", []byte(body), stripeSig([]byte(body), now, stripeSecret))
		assert.Equal(t, 400, code, body)
		assert.JSONEq(t, `{"error":"malformed event"}`, answer, body)
	}

	// Row: body over the limit.
	big := stripeBody("evt_e2e_big", "customer.created", false)
	big = append(big[:len(big)-1], []byte(`,"pad":"`+strings.Repeat("x", 600)+`"}`)...)
	code, _ = send("stripe-small", big, stripeSig(big, now, stripeSecret))
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)

	// The endpoint whose secret is missing answers 500 with its code.
	code, answer = send("stripe-unset", first, stripeSig(first, now, stripeSecret))
	assert.Equal(t, 500, code)
	assert.JSONEq(t, `{"error":"BILLFOLD-CONFIG-NO-SECRET"}`, answer)

	// Rows: unknown endpoint, wrong method.
	code, _ = send("nope", first, stripeSig(first, now, stripeSecret))
	assert.Equal(t, 404, code)
	resp, err := client.Get(srv.public + "/webhooks/stripe")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 405, resp.StatusCode)
	// The public listener exposes webhooks and health only.
	for _, path := range []string{"/metrics", "/readyz", "/v1/events/stripe/evt_e2e_0"} {
		resp, err := client.Get(srv.public + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 404, resp.StatusCode, path)
	}

	// The ledger knows the duplicate and the delivery log has both deliveries.
	var entry ledger.EventEntry
	require.Eventually(t, func() bool {
		return srv.getJSON("/v1/events/stripe/evt_e2e_0", &entry) == 200 && entry.Deliveries.Count == 2
	}, 5*time.Second, 50*time.Millisecond)
	require.NotNil(t, entry.Journal)
	assert.Equal(t, "customer.created", entry.Journal.EventType)
	assert.Equal(t, 1, entry.Deliveries.Duplicates)
	assert.Equal(t, "duplicate", string(entry.Deliveries.LastOutcome))
	var ignored ledger.EventEntry
	srv.getJSON("/v1/events/stripe/evt_e2e_testmode", &ignored)
	assert.Nil(t, ignored.Journal, "an ignored event is not journaled")

	// Metrics count what happened.
	_, metrics := srv.get("/metrics")
	for _, want := range []string{
		`billfold_deliveries_total{endpoint="stripe",outcome="accepted"} 7`,
		`billfold_deliveries_total{endpoint="stripe",outcome="duplicate"} 1`,
		`billfold_deliveries_total{endpoint="stripe-live",outcome="ignored"} 1`,
		`billfold_signature_failures_total{code="BILLFOLD-SIG-TOO-OLD",endpoint="stripe"} 1`,
		`billfold_signature_failures_total{code="BILLFOLD-SIG-TOO-NEW",endpoint="stripe"} 1`,
		`billfold_duplicate_deliveries_total{endpoint="stripe"} 1`,
		`billfold_ack_duration_seconds_count{endpoint="stripe"}`,
	} {
		assert.Contains(t, string(metrics), want)
	}

	// SIGKILL, restart on the same data dir: everything accepted is still
	// journaled, and every accepted event is still a duplicate.
	srv.restart()
	for _, id := range accepted {
		var e ledger.EventEntry
		require.Equal(t, 200, srv.getJSON("/v1/events/stripe/"+id, &e), id)
		require.NotNil(t, e.Journal, id)
		body := stripeBody(id, "customer.created", false)
		code, answer := send("stripe", body, stripeSig(body, time.Now(), stripeSecret))
		assert.Equal(t, 200, code, id)
		assert.JSONEq(t, `{"received":true,"status":"duplicate"}`, answer, id)
	}

	// Secrets never reach the logs.
	logs := srv.logs.String()
	for _, s := range []string{stripeSecret, stripeSecretOld} {
		assert.NotContains(t, logs, s)
		assert.NotContains(t, string(metrics), s)
	}
	assert.Equal(t, 0, srv.stop(), "SIGTERM is a clean shutdown")
	assert.Contains(t, srv.logs.String(), `"msg":"stopped"`)
}

// Without a config file STRIPE_WEBHOOK_SECRET enables /webhooks/stripe, and
// a comma-separated list means several secrets are valid.
func TestStripeEndpointFromEnvironment(t *testing.T) {
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret + "," + stripeSecretOld})
	for i, secret := range []string{stripeSecret, stripeSecretOld} {
		body := stripeBody(fmt.Sprintf("evt_env_%d", i), "customer.created", false)
		code, answer, _ := srv.post("stripe", body, stripeSig(body, time.Now(), secret))
		assert.Equal(t, 200, code, answer)
	}
	body := stripeBody("evt_env_x", "customer.created", false)
	code, _, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecretWrong))
	assert.Equal(t, 400, code)
}
