package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// billfold sign prints what makes a body verify; billfold send delivers it
// and exits non-zero when the server refuses.
func TestSignAndSend(t *testing.T) {
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret})

	out, code := runBillfold(t, "sign", "--list-samples")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "stripe     customer.subscription.updated")

	// sign -o json over a file: its headers and body verify on the server.
	file := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(file, stripeBody("evt_signed_file", "customer.created", false), 0o600))
	out, code = runBillfold(t, "sign", "--secret", stripeSecret, "--file", file, "-o", "json", "--server", srv.public)
	require.Equal(t, 0, code, out)
	var signed struct {
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		Curl    string            `json:"curl"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &signed))
	assert.Equal(t, srv.public+"/webhooks/stripe", signed.URL)
	assert.Contains(t, signed.Curl, "Stripe-Signature: "+signed.Headers["Stripe-Signature"])
	status, answer, _ := srv.post("stripe", []byte(signed.Body), signed.Headers)
	assert.Equal(t, 200, status, answer)

	// send a sample, twice: accepted then duplicate, both exit 0.
	out, code = runBillfold(t, "send", "--server", srv.public, "--type", "customer.subscription.updated", "--secret", stripeSecret, "-o", "json")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, `"status": "accepted"`)

	// A wrong secret: the server refuses, send exits 1 and says why.
	out, code = runBillfold(t, "send", "--server", srv.public, "--type", "invoice.paid", "--secret", "whsec_wrong")
	assert.Equal(t, 1, code)
	assert.True(t, strings.Contains(out, "400") && strings.Contains(out, "signature verification failed"), out)

	// The secret comes from the environment when not given.
	t.Setenv("STRIPE_WEBHOOK_SECRET", stripeSecret)
	out, code = runBillfold(t, "send", "--server", srv.public, "--type", "invoice.payment_failed")
	assert.Equal(t, 0, code, out)
}
