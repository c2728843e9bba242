package ingest_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify/btfixtures"
	"github.com/billfold/billfold/ingest"
)

func get(t *testing.T, method, rawURL string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// GET /webhooks/braintree?bt_challenge=... answers as Braintree's library
// does, with the endpoint's current (first) key pair; anything else on
// that GET is 400 with its code.
func TestBraintreeChallengeRoute(t *testing.T) {
	set := btfixtures.Load()
	in := newIntake(t,
		ingest.EndpointConfig{Name: "braintree", Provider: domain.Braintree, Secrets: []string{set.Secret(), "old_public:old_private"}},
		ingest.EndpointConfig{Name: "braintree-nokey", Provider: domain.Braintree},
	)
	base := in.srv.URL + "/webhooks/braintree"
	for _, c := range set.Challenges {
		status, body, h := get(t, http.MethodGet, base+"?bt_challenge="+c.Challenge)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, c.Response, body, "the library's webhookNotification.verify answer")
		assert.Equal(t, "text/plain; charset=utf-8", h.Get("Content-Type"))
	}
	c := set.Challenges[0].Challenge
	for name, query := range map[string]string{
		"no challenge":        "",
		"empty challenge":     "?bt_challenge=",
		"two challenges":      "?bt_challenge=" + c + "&bt_challenge=" + c,
		"not hex":             "?bt_challenge=" + strings.Repeat("z", 32),
		"too long":            "?bt_challenge=" + c + "0",
		"other parameter":     "?challenge=" + c,
		"escaped non-hex too": "?bt_challenge=" + url.QueryEscape(c[:20]+"|x"),
	} {
		status, body, _ := get(t, http.MethodGet, base+query)
		assert.Equal(t, http.StatusBadRequest, status, name)
		assert.JSONEq(t, `{"error":"invalid challenge","code":"BILLFOLD-CHALLENGE-INVALID"}`, body, name)
	}
	status, body, _ := get(t, http.MethodGet, in.srv.URL+"/webhooks/braintree-nokey?bt_challenge="+c)
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.JSONEq(t, `{"error":"BILLFOLD-CONFIG-NO-SECRET"}`, body)

	status, _, h := get(t, http.MethodPut, base)
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	assert.Equal(t, "POST, GET", h.Get("Allow"))
}

// Every notification Braintree's library signed is journaled once: two
// notifications of one kind about different objects in the same second are
// both accepted (issue 21: transaction_reviewed, payment method, merchant
// and local payment kinds collapsed into one), and each again is a
// duplicate.
func TestBraintreeLibraryDeliveriesJournaledOnce(t *testing.T) {
	set := btfixtures.Load()
	in := newIntake(t, ingest.EndpointConfig{Name: "braintree", Provider: domain.Braintree, Secrets: []string{set.Secret()}})
	for _, round := range []string{"accepted", "duplicate"} {
		for _, n := range set.Notifications {
			status, body, _ := in.post(t, "/webhooks/braintree", n.Body(), "")
			assert.Equal(t, http.StatusOK, status, n.Name)
			assert.JSONEq(t, `{"received":true,"status":"`+round+`"}`, body, n.Name)
		}
	}
	tampered := set.Named("transaction_reviewed/obj_b")
	tampered.Signature = set.Named("transaction_reviewed/obj_a").Signature
	status, body, _ := in.post(t, "/webhooks/braintree", tampered.Body(), "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.JSONEq(t, `{"error":"signature verification failed"}`, body)
}
