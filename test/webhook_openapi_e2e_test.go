package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
)

// webhookAnswer is one answer of the public listener's webhook route.
type webhookAnswer struct {
	method string
	status int
	body   string
	header http.Header
}

// askWebhook sends method to the public listener's path and returns the
// answer.
func askWebhook(t *testing.T, srv *server, method, path string, body []byte, headers map[string]string) webhookAnswer {
	t.Helper()
	req, err := http.NewRequest(method, srv.public+path, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return webhookAnswer{method: method, status: resp.StatusCode, body: strings.TrimSpace(string(b)), header: resp.Header}
}

// webhookConfig writes a config file of endpoints for the test.
func webhookConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "billfold.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

// Every answer the webhook route gives, driven out of the real binary
// cause by cause (accepted, duplicate, ignored, each 400, 404, 405, 413,
// 429, 500, both 503s, the Braintree challenge's 200 and 400), is in
// docs/openapi.json under /webhooks/{endpoint} with its method, status,
// body (as an example) and headers; and the document lists no status the
// receiver never gives.
func TestWebhookRouteInOpenAPI(t *testing.T) {
	const (
		secret   = "whsec_openapi_e2e_0123456789"
		btSecret = "bt_public_openapi:bt_private_openapi"
		limit    = 4096
	)
	var answers []webhookAnswer
	note := func(a webhookAnswer, wantStatus int, what string) {
		t.Helper()
		assert.Equal(t, wantStatus, a.status, "%s: %s", what, a.body)
		answers = append(answers, a)
	}
	stripeEvent := func(id string, live bool) (body []byte, headers map[string]string) {
		s, err := samples.Sign(domain.Stripe, secret, samples.Stripe{EventID: id, Type: "customer.created", CustomerID: "cus_openapi", Livemode: live}.Event(), time.Now())
		require.NoError(t, err)
		return s.Body, s.Headers
	}

	config := webhookConfig(t, fmt.Sprintf(`endpoints:
  - {name: stripe, provider: stripe, secrets: [%q], livemode: false, max_body_bytes: %d}
  - {name: braintree, provider: braintree, secrets: [%q]}
  - {name: stripe-nosecret, provider: stripe, secrets: ["${BILLFOLD_OPENAPI_TEST_UNSET}"]}
  - {name: braintree-nosecret, provider: braintree, secrets: ["${BILLFOLD_OPENAPI_TEST_UNSET}"]}
`, secret, limit, btSecret))
	// The smallest intake budget: the largest body (braintree's default 1 MiB).
	const budget = 1 << 20
	srv := startServer(t, t.TempDir(), nil, "--config", config, "--intake-budget", strconv.Itoa(budget))

	body, h := stripeEvent("evt_openapi_1", false)
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe", body, h), 200, "accepted")
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe", body, h), 200, "duplicate")
	live, lh := stripeEvent("evt_openapi_live", true)
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe", live, lh), 200, "ignored: livemode")
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe", append(body, ' '), h), 400, "signature")
	notEvent, err := samples.Sign(domain.Stripe, secret, []byte(`[1,2]`), time.Now())
	require.NoError(t, err)
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe", notEvent.Body, notEvent.Headers), 400, "malformed event")
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/nobody", body, h), 404, "unknown endpoint")
	note(askWebhook(t, srv, http.MethodGet, "/webhooks/nobody?bt_challenge=0123456789abcdef0123", nil, nil), 404, "unknown endpoint, GET")
	note(askWebhook(t, srv, http.MethodPut, "/webhooks/stripe", body, h), 405, "PUT")
	note(askWebhook(t, srv, http.MethodGet, "/webhooks/stripe", nil, nil), 405, "GET on a Stripe endpoint")
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe", bytes.Repeat([]byte("x"), limit+1), h), 413, "too large")
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe-nosecret", body, h), 500, "no secret")
	note(askWebhook(t, srv, http.MethodGet, "/webhooks/braintree-nosecret?bt_challenge=0123456789abcdef0123", nil, nil), 500, "no secret, GET")
	note(askWebhook(t, srv, http.MethodGet, "/webhooks/braintree?bt_challenge=0123456789abcdef0123", nil, nil), 200, "challenge")
	note(askWebhook(t, srv, http.MethodGet, "/webhooks/braintree", nil, nil), 400, "challenge missing")

	// A sender that holds the whole intake budget with a body it sends
	// slowly (once the server has reserved it: a delivery reserving first
	// would get the budget instead): the next delivery is 503 intake busy.
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.public, "http://"))
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "POST /webhooks/braintree HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\nbt", budget)
	require.NoError(t, err)
	reserved := fmt.Sprintf("billfold_intake_bytes_reserved %g\n", float64(budget))
	require.Eventually(t, func() bool {
		_, metrics := srv.get("/metrics")
		return strings.Contains(string(metrics), reserved)
	}, 10*time.Second, 20*time.Millisecond, "the slow delivery holds the budget")
	note(askWebhook(t, srv, http.MethodPost, "/webhooks/stripe", body, h), 503, "intake busy")
	conn.Close()

	// A journal that cannot acknowledge within the append timeout, and a
	// source over its rate: the same route's 503 and 429.
	slow := startServer(t, t.TempDir(), nil, "--config", config, "--append-timeout", "1ns", "--rate-limit", "0.001", "--rate-burst", "1")
	note(askWebhook(t, slow, http.MethodPost, "/webhooks/stripe", body, h), 503, "journal unavailable")
	note(askWebhook(t, slow, http.MethodPost, "/webhooks/stripe", body, h), 429, "rate limited")
	note(askWebhook(t, slow, http.MethodGet, "/webhooks/braintree?bt_challenge=0123456789abcdef0123", nil, nil), 429, "rate limited, GET")

	checkAnswersDocumented(t, answers)
}

// openAPIResponse is a response of docs/openapi.json.
type openAPIResponse struct {
	Headers map[string]json.RawMessage `json:"headers"`
	Content map[string]struct {
		Examples map[string]struct {
			Value json.RawMessage `json:"value"`
		} `json:"examples"`
	} `json:"content"`
}

// checkAnswersDocumented checks each answer against the webhook route of
// docs/openapi.json, and that the document lists only statuses seen.
func checkAnswersDocumented(t *testing.T, answers []webhookAnswer) {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.json")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	route, ok := doc.Paths["/webhooks/{endpoint}"]
	require.True(t, ok, "docs/openapi.json has the webhook route")
	seen := map[string][]string{}
	for _, a := range answers {
		method := strings.ToLower(a.method)
		if a.method == http.MethodPut {
			method = "post" // any method but POST and GET: documented as POST's 405
		}
		status := strconv.Itoa(a.status)
		seen[method] = append(seen[method], status)
		var op struct {
			Responses map[string]openAPIResponse `json:"responses"`
		}
		if !assert.Contains(t, route, method, "%s is documented", a.method) {
			continue
		}
		require.NoError(t, json.Unmarshal(route[method], &op))
		resp, ok := op.Responses[status]
		if !assert.True(t, ok, "%s %d (%s) is in docs/openapi.json", a.method, a.status, a.body) {
			continue
		}
		for _, name := range []string{"Retry-After", "Allow", "X-Request-Id"} {
			if a.header.Get(name) != "" {
				_, documented := resp.Headers[name]
				assert.True(t, documented, "%s %d: the %s header is documented", a.method, a.status, name)
			}
		}
		if strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
			assert.Contains(t, resp.Content, "text/plain", "%s %d", a.method, a.status)
			assert.Regexp(t, `^bt_public_openapi\|[0-9a-f]{40}$`, a.body, "the challenge's answer is <public key>|<hmac>")
			continue
		}
		found := false
		for _, ex := range resp.Content["application/json"].Examples {
			found = found || jsonEqual(ex.Value, []byte(a.body))
		}
		assert.True(t, found, "%s %d: the body %s is an example in docs/openapi.json", a.method, a.status, a.body)
	}
	for method, raw := range route {
		var op struct {
			Responses map[string]json.RawMessage `json:"responses"`
		}
		if json.Unmarshal(raw, &op) != nil || op.Responses == nil {
			continue // summary, servers
		}
		for status := range op.Responses {
			assert.True(t, slices.Contains(seen[method], status), "docs/openapi.json: %s /webhooks/{endpoint} %s is never answered", method, status)
		}
	}
}

// jsonEqual says whether two JSON texts are the same value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
