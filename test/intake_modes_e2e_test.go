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
	"github.com/billfold/billfold/projections"
)

const unsignedName = "in-3f9a1c7be2d84056af19c2e7b5d0e813"

// An unsigned endpoint exists only by explicit config with a long random
// name; its deliveries are journaled flagged unsigned, counted and logged at
// warn. A signed endpoint never falls back to unsigned. Its name, its only
// secret, is shown nowhere: metric labels, log lines and the event ledger
// show its label.
func TestUnsignedIntakeIsExplicitAndFlagged(t *testing.T) {
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
	srv := startServer(t, filepath.Join(dir, "data"), nil, "--config", config)

	body := stripeBody("evt_unsigned_1", "customer.created", false)
	code, answer, _ := srv.post(unsignedName, body, nil)
	require.Equal(t, 200, code, answer)
	code, _, _ = srv.post("stripe", stripeBody("evt_unsigned_2", "customer.created", false), nil)
	assert.Equal(t, 400, code, "a signed endpoint never falls back to unsigned")

	var e projections.EventEntry
	require.Equal(t, 200, srv.getJSON("/v1/events/stripe/evt_unsigned_1", &e))
	require.NotNil(t, e.Journal)
	assert.Equal(t, "unsigned", string(e.Journal.Verification))
	label := domain.UnsignedLabel(unsignedName)
	assert.Equal(t, label, e.Journal.Endpoint)
	require.NotEmpty(t, e.Deliveries.Deliveries)
	assert.Equal(t, label, e.Deliveries.Deliveries[0].Endpoint)
	_, metrics := srv.get("/metrics")
	assert.Contains(t, string(metrics), `billfold_unsigned_deliveries_total{endpoint="`+label+`"} 1`)
	assert.Regexp(t, `"level":"WARN","msg":"delivery".*"verification":"unsigned"`, srv.logs.String())
	_, list := srv.get("/v1/events?limit=100")
	_, entry := srv.get("/v1/events/stripe/evt_unsigned_1")
	for what, text := range map[string]string{"metrics": string(metrics), "logs": srv.logs.String(), "event list": string(list), "event": string(entry)} {
		assert.NotContains(t, text, unsignedName, "the unsigned endpoint's name in the %s", what)
	}
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

	var e projections.EventEntry
	require.Equal(t, 200, srv.getJSON("/v1/events/stripe/evt_bypass_1", &e))
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
