package samples_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/ingest/stripe"
	"github.com/billfold/billfold/ingest/svix"
)

type scheme interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

type parser interface {
	Parse(h http.Header, body []byte) (domain.Envelope, error)
}

// Every built-in sample, signed by samples.Sign, verifies with billfold's
// own verifier for its provider and parses to its type: what `billfold
// sign` and `send` rely on.
func TestEverySampleSignsAndVerifies(t *testing.T) {
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	providers := map[domain.Provider]struct {
		secret string
		verify scheme
		parse  parser
	}{
		domain.Stripe:    {"whsec_stripe_sample", stripe.Verifier{Secrets: []string{"whsec_stripe_sample"}, Tolerance: time.Minute}, stripe.Parser{}},
		domain.Clerk:     {whsec, svix.Verifier{Secrets: []string{whsec}, Tolerance: time.Minute}, svix.ClerkParser{}},
		domain.PactaPay:  {"pp_secret", hmacsig.Verifier{Config: hmacsig.PactaPay(), Secrets: []string{"pp_secret"}}, hmacsig.PactaPayParser{}},
		domain.Braintree: {"pub:priv", braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: "pub", PrivateKey: "priv"}}}, braintree.Parser{}},
	}
	now := time.Now()
	types := samples.Types()
	for p, c := range providers {
		require.NotEmpty(t, types[p], p)
		for _, typ := range types[p] {
			body, err := samples.Sample(p, typ, now)
			require.NoError(t, err, "%s %s", p, typ)
			signed, err := samples.Sign(p, c.secret, body, now)
			require.NoError(t, err)
			h := http.Header{}
			for k, v := range signed.Headers {
				h.Set(k, v)
			}
			require.NoError(t, c.verify.Verify(h, signed.Body, now), "%s %s", p, typ)
			env, err := c.parse.Parse(h, signed.Body)
			require.NoError(t, err, "%s %s", p, typ)
			assert.Equal(t, typ, env.EventType)
			tampered := bytes.Replace(signed.Body, []byte("a"), []byte("b"), 1)
			assert.Error(t, c.verify.Verify(h, tampered, now), "%s %s tampered", p, typ)
		}
	}
	_, err := samples.Sample(domain.Clerk, "session.created", now)
	assert.Error(t, err)
}
