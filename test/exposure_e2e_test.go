package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// adminPaths are the admin listener's routes as docs/openapi.json lists
// them (a test in cmd/billfold keeps that document and the routes in
// step), with example values for their parameters.
func adminPaths(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.json")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]struct {
			Servers []json.RawMessage `json:"servers"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	param := regexp.MustCompile(`\{[a-z_]+\}`)
	var out []string
	for p, item := range doc.Paths {
		if len(item.Servers) > 0 {
			continue // another listener's route: the webhook route is the public listener's
		}
		out = append(out, param.ReplaceAllStringFunc(p, func(s string) string {
			return map[string]string{"{provider}": "stripe", "{event_id}": "evt_1", "{id}": "x_1", "{user_id}": "user_1"}[s]
		}))
	}
	slices.Sort(out)
	require.NotEmpty(t, out)
	return out
}

// do sends a request with no body to base+path and returns the status
// and, unless the answer is a stream, the body.
func do(t *testing.T, method, base, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, "(stream)"
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// The public listener serves webhooks and health only: every admin route
// (queries, events, the change feed, metrics, readiness, OpenAPI), with
// any method, and anything else is the receiver's generic 404 there, while
// the admin listener does serve them. The admin listener, and the embedded
// NATS server's client port, default to loopback.
func TestPublicListenerExposesOnlyWebhooksAndHealth(t *testing.T) {
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret})
	const notFound = `{"error":"not found"}`

	code, body := do(t, http.MethodGet, srv.public, "/healthz")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)
	code, _ = do(t, http.MethodGet, srv.public, "/webhooks/stripe")
	assert.Equal(t, 405, code, "the webhook route exists, for POST only")

	paths := append(adminPaths(t), "/", "/v1", "/v1/", "/debug/pprof/", "/debug/vars", "/webhooks", "/webhooks/",
		"/webhooks/stripe/extra", "/admin", "/v1/events/stripe/evt_1/../../../metrics")
	for _, p := range paths {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if p == "/healthz" && method == http.MethodGet {
				continue
			}
			code, body := do(t, method, srv.public, p)
			assert.Equal(t, 404, code, "public %s %s", method, p)
			assert.JSONEq(t, notFound, body, "public %s %s", method, p)
		}
	}
	// The same routes are served on the admin listener: none of them is
	// the public listener's 404.
	for _, p := range adminPaths(t) {
		code, body := do(t, http.MethodGet, srv.admin, p)
		assert.NotEqual(t, notFound, body, "admin GET %s (%d)", p, code)
		assert.Less(t, code, 500, "admin GET %s: %s", p, body)
	}

	// Defaults, as serve documents them: the admin listener and the
	// embedded NATS server listen on loopback; only the webhook listener
	// is on every interface.
	out, _ := runBillfold(t, "serve", "-h")
	defaults := map[string]string{}
	flag := regexp.MustCompile(`(?m)^  -([a-z-]+) string\n(?:[ ]*\t.*\n)*?[ ]*\t.*\(default "([^"]*)"\)`)
	for _, m := range flag.FindAllStringSubmatch(out, -1) {
		defaults[m[1]] = m[2]
	}
	assert.Equal(t, "127.0.0.1:8081", defaults["admin-listen"], "serve -h:\n%s", out)
	assert.Equal(t, "127.0.0.1:4222", defaults["nats-listen"], "serve -h:\n%s", out)
	assert.Equal(t, ":8080", defaults["listen"], "serve -h:\n%s", out)
}
