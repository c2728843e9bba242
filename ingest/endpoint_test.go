package ingest_test

import (
	"bytes"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/svix"
)

// omniSnippet returns the YAML example of docs/providers.md that configures
// the Omni-Signature scheme, exactly as the docs show it.
func omniSnippet(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("../docs/providers.md")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1) {
		if bytes.Contains(m[1], []byte("signature_header: Omni-Signature")) {
			return m[1]
		}
	}
	t.Fatal("docs/providers.md has no yaml block with the Omni-Signature scheme")
	return nil
}

// The docs' Omni-Signature example is expressible in YAML alone: it loads
// with unknown keys refused, and the endpoint verifies deliveries signed
// with either of its two secrets, within 300 s.
func TestEndpointOmniSignatureFromDocs(t *testing.T) {
	var fc struct {
		Endpoints []ingest.EndpointConfig `yaml:"endpoints"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(omniSnippet(t)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&fc))
	require.Len(t, fc.Endpoints, 1)
	c := fc.Endpoints[0]
	require.NotNil(t, c.HMAC)
	assert.Equal(t, 300*time.Second, c.Tolerance)
	assert.Equal(t, []string{"${OMNI_WEBHOOK_SECRET}", "${OMNI_WEBHOOK_SECRET_PREVIOUS}"}, c.Secrets)
	// What serve's loadConfig does with ${NAME}.
	env := strings.NewReplacer("${OMNI_WEBHOOK_SECRET}", "omni_new_secret", "${OMNI_WEBHOOK_SECRET_PREVIOUS}", "omni_old_secret")
	for i := range c.Secrets {
		c.Secrets[i] = env.Replace(c.Secrets[i])
	}

	e, err := ingest.NewEndpoint(c)
	require.NoError(t, err)
	require.Nil(t, e.Misconfigured)
	assert.Equal(t, domain.HMAC, e.Provider)

	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"omni_evt_1","type":"order.paid","created":1699999990,"data":{"id":"ord_1"}}`)
	for _, secret := range []string{"omni_new_secret", "omni_old_secret"} {
		h := http.Header{}
		for k, v := range hmacsig.Sign(*c.HMAC, secret, now, body) {
			h.Set(k, v)
		}
		assert.NotEmpty(t, h.Get("Omni-Signature"))
		assert.Equal(t, "1700000000", h.Get("Omni-Timestamp"))
		assert.NoError(t, e.Verifier.Verify(h, body, now), secret)
		assert.NoError(t, e.Verifier.Verify(h, body, now.Add(300*time.Second)), secret)
		assert.Equal(t, domain.CodeSigTooOld, domain.ErrorCode(e.Verifier.Verify(h, body, now.Add(301*time.Second))), secret)
		assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(e.Verifier.Verify(h, append([]byte(" "), body...), now)), secret)
	}
	h := http.Header{}
	for k, v := range hmacsig.Sign(*c.HMAC, "omni_third_secret", now, body) {
		h.Set(k, v)
	}
	assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(e.Verifier.Verify(h, body, now)))

	env2, err := e.Parser.Parse(h, body)
	require.NoError(t, err)
	assert.Equal(t, "omni_evt_1", env2.EventID)
	assert.Equal(t, "order.paid", env2.EventType)
	assert.Equal(t, time.Unix(1699999990, 0).UTC(), env2.Created)
}

func TestEndpointProviders(t *testing.T) {
	omni := &hmacsig.Config{SignatureHeader: "Omni-Signature", TimestampHeader: "Omni-Timestamp", Template: "{timestamp}.{body}", EventIDField: "id"}
	cases := []struct {
		name string
		c    ingest.EndpointConfig
		want string // substring of a BILLFOLD-CONFIG-INVALID error; empty: builds
	}{
		{"braintree", ingest.EndpointConfig{Name: "braintree", Provider: domain.Braintree, Secrets: []string{"pub:priv", "pub2:priv2"}}, ""},
		{"braintree secret without private key", ingest.EndpointConfig{Name: "braintree", Provider: domain.Braintree, Secrets: []string{"pub_only"}}, "public_key:private_key"},
		{"clerk", ingest.EndpointConfig{Name: "clerk", Provider: domain.Clerk, Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, ""},
		{"clerk secret not base64", ingest.EndpointConfig{Name: "clerk", Provider: domain.Clerk, Secrets: []string{"whsec_not base64!"}}, "whsec_"},
		{"standard with type_field", ingest.EndpointConfig{Name: "acme", Provider: domain.Standard, Secrets: []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, TypeField: "event_type"}, ""},
		{"type_field elsewhere", ingest.EndpointConfig{Name: "clerk", Provider: domain.Clerk, Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, TypeField: "kind"}, "type_field"},
		{"stripe connect", ingest.EndpointConfig{Name: "stripe-connect", Provider: domain.Stripe, Secrets: []string{"whsec_c"}, Connect: true}, ""},
		{"connect elsewhere", ingest.EndpointConfig{Name: "pactapay", Provider: domain.PactaPay, Secrets: []string{"pp"}, Connect: true}, "connect"},
		{"pactapay", ingest.EndpointConfig{Name: "pactapay", Provider: domain.PactaPay, Secrets: []string{"hmac_secret_value"}}, ""},
		{"hmac", ingest.EndpointConfig{Name: "omni", Provider: domain.HMAC, Secrets: []string{"hmac_secret_value"}, HMAC: omni}, ""},
		{"hmac without block", ingest.EndpointConfig{Name: "omni", Provider: domain.HMAC, Secrets: []string{"hmac_secret_value"}}, "hmac block"},
		{"hmac block invalid", ingest.EndpointConfig{Name: "omni", Provider: domain.HMAC, Secrets: []string{"hmac_secret_value"}, HMAC: &hmacsig.Config{SignatureHeader: "X", Digest: "md5", EventIDField: "id"}}, "digest"},
		{"hmac block elsewhere", ingest.EndpointConfig{Name: "pactapay", Provider: domain.PactaPay, Secrets: []string{"hmac_secret_value"}, HMAC: omni}, "hmac block"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := ingest.NewEndpoint(c.c)
			if c.want != "" {
				require.Error(t, err)
				assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err))
				assert.Contains(t, err.Error(), c.want)
				for _, s := range c.c.Secrets {
					assert.NotContains(t, err.Error(), s, "config errors never repeat a secret")
				}
				return
			}
			require.NoError(t, err)
			assert.Nil(t, e.Misconfigured)
			assert.NotNil(t, e.Verifier)
			assert.NotNil(t, e.Parser)
		})
	}
	// No secret: built, but misconfigured, for every provider.
	for _, p := range []domain.Provider{domain.Braintree, domain.Clerk, domain.Standard, domain.PactaPay} {
		e, err := ingest.NewEndpoint(ingest.EndpointConfig{Name: string(p), Provider: p, Secrets: []string{""}})
		require.NoError(t, err, p)
		assert.Equal(t, domain.CodeConfigNoSecret, domain.ErrorCode(e.Misconfigured), p)
	}
}

// Each provider's endpoint verifies its own signature and parses its own
// payload, end to end through NewEndpoint.
func TestEndpointVerifiesAndParses(t *testing.T) {
	now := time.Now()
	t.Run("braintree", func(t *testing.T) {
		e, err := ingest.NewEndpoint(ingest.EndpointConfig{Name: "braintree", Provider: domain.Braintree, Secrets: []string{"pub_a:priv_a", "pub_b:priv_b"}})
		require.NoError(t, err)
		payload := braintree.EncodePayload([]byte(`<notification><timestamp type="datetime">2024-01-02T03:04:05Z</timestamp><kind>subscription_went_active</kind><subject><subscription><id>sub_1</id><status>Active</status></subscription></subject></notification>`))
		for _, k := range []braintree.KeyPair{{PublicKey: "pub_a", PrivateKey: "priv_a"}, {PublicKey: "pub_b", PrivateKey: "priv_b"}} {
			body := braintree.Sign(k, payload)
			require.NoError(t, e.Verifier.Verify(nil, body, now))
			env, err := e.Parser.Parse(nil, body)
			require.NoError(t, err)
			assert.Equal(t, "subscription_went_active:sub_1:2024-01-02T03:04:05Z", env.EventID)
		}
		body := braintree.Sign(braintree.KeyPair{PublicKey: "pub_a", PrivateKey: "wrong"}, payload)
		assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(e.Verifier.Verify(nil, body, now)))
	})
	t.Run("clerk", func(t *testing.T) {
		secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		e, err := ingest.NewEndpoint(ingest.EndpointConfig{Name: "clerk", Provider: domain.Clerk, Secrets: []string{secret}})
		require.NoError(t, err)
		body := []byte(`{"type":"user.created","data":{"id":"user_1","object":"user"}}`)
		sig, err := svix.Sign(secret, "msg_1", now, body)
		require.NoError(t, err)
		h := http.Header{}
		h.Set("svix-id", "msg_1")
		h.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("svix-signature", sig)
		require.NoError(t, e.Verifier.Verify(h, body, now))
		env, err := e.Parser.Parse(h, body)
		require.NoError(t, err)
		assert.Equal(t, domain.Envelope{EventID: "msg_1", ProviderRequestID: "msg_1", EventType: "user.created", Created: time.Unix(now.Unix(), 0).UTC(), ObjectKind: "user", ObjectID: "user_1"}, env)
	})
	t.Run("pactapay", func(t *testing.T) {
		e, err := ingest.NewEndpoint(ingest.EndpointConfig{Name: "pactapay", Provider: domain.PactaPay, Secrets: []string{"test_secret"}})
		require.NoError(t, err)
		h := http.Header{}
		h.Set("X-Pactapay-Signature", "sha256=b7b1e7e190c7aace9efb076f2394f2408bf389ed0398c526b97101ab2c84fed3")
		require.NoError(t, e.Verifier.Verify(h, []byte(`{"hello":"world"}`), now))
		_, err = e.Parser.Parse(h, []byte(`{"hello":"world"}`))
		assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
	})
}
