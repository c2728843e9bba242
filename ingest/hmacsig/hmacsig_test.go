package hmacsig_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/samples"
)

// Known answers from ../shared/testvectors.md (plain HMAC, HMAC over
// timestamp and body), Slack's documented example, and openssl for the
// digest and encoding variants.
const (
	ghSecret = "It's a Secret to Everybody"
	ghBody   = "Hello, World!"
	ghSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	testSecret = "test_secret"
	helloBody  = `{"hello":"world"}`
	helloSig   = "sha256=b7b1e7e190c7aace9efb076f2394f2408bf389ed0398c526b97101ab2c84fed3"
	helloTSHex = "a5d9de1d23a233e086ce2cd0940311c91c3039e7d92c0d96a82fda4881746747"
	helloTS    = "1700000000"

	helloSHA1Hex      = "3cf4f6de54c71fe21f03b5918c4b48bb83e3897a"
	helloSHA1Base64   = "PPT23lTHH+IfA7WRjEtIu4PjiXo="
	helloSHA512Base64 = "6NE9yyhVRll04+3+LUQh5qGy+lsKBw7FGhdyOMYsnEjr7fokr4wwoLHlz4CpBWXrBU0LKtEP/reMZvVYxEbo9A=="

	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackTS     = "1531420618"
	slackBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

var (
	helloNow = time.Unix(1700000000, 0)
	slackNow = time.Unix(1531420618, 0)
)

func github() hmacsig.Config {
	return hmacsig.Config{SignatureHeader: "X-Hub-Signature-256", Prefix: "sha256=", EventIDHeader: "X-GitHub-Delivery", EventTypeField: "action"}
}

func timestamped() hmacsig.Config {
	return hmacsig.Config{SignatureHeader: "Omni-Signature", TimestampHeader: "Omni-Timestamp", Template: "{timestamp}.{body}", EventIDField: "id"}
}

func slack() hmacsig.Config {
	return hmacsig.Config{SignatureHeader: "X-Slack-Signature", TimestampHeader: "X-Slack-Request-Timestamp", Template: "v0:{timestamp}:{body}", Prefix: "v0=", EventIDField: "event_id"}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestSignKnownAnswers(t *testing.T) {
	assert.Equal(t, map[string]string{"X-Hub-Signature-256": ghSig}, hmacsig.Sign(github(), ghSecret, time.Time{}, []byte(ghBody)))
	assert.Equal(t, map[string]string{"X-Pactapay-Signature": helloSig}, hmacsig.Sign(hmacsig.PactaPay(), testSecret, time.Time{}, []byte(helloBody)))
	assert.Equal(t, map[string]string{"Omni-Signature": helloTSHex, "Omni-Timestamp": helloTS}, hmacsig.Sign(timestamped(), testSecret, helloNow, []byte(helloBody)))
	assert.Equal(t, map[string]string{"X-Slack-Signature": slackSig, "X-Slack-Request-Timestamp": slackTS}, hmacsig.Sign(slack(), slackSecret, slackNow, []byte(slackBody)))

	c := hmacsig.Config{SignatureHeader: "Sig", Digest: "sha1", EventIDField: "id"}
	assert.Equal(t, helloSHA1Hex, hmacsig.Sign(c, testSecret, time.Time{}, []byte(helloBody))["Sig"])
	c.Encoding = "base64"
	assert.Equal(t, helloSHA1Base64, hmacsig.Sign(c, testSecret, time.Time{}, []byte(helloBody))["Sig"])
	c.Digest = "SHA512"
	assert.Equal(t, helloSHA512Base64, hmacsig.Sign(c, testSecret, time.Time{}, []byte(helloBody))["Sig"])
}

func TestVerify(t *testing.T) {
	sha1b64 := hmacsig.Config{SignatureHeader: "Sig", Digest: "sha1", Encoding: "base64", EventIDField: "id"}
	sha512b64 := hmacsig.Config{SignatureHeader: "Sig", Digest: "sha512", Encoding: "base64", EventIDField: "id"}
	rotated := hmacsig.Sign(timestamped(), "second_secret", helloNow, []byte(helloBody))["Omni-Signature"]
	cases := []struct {
		name    string
		c       hmacsig.Config
		secrets []string
		h       http.Header
		body    string
		now     time.Time
		want    domain.Code
	}{
		{"github known answer", github(), []string{ghSecret}, hdr("X-Hub-Signature-256", ghSig), ghBody, helloNow, ""},
		{"pactapay known answer", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", helloSig), helloBody, helloNow, ""},
		{"upper-case hex", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", "sha256="+strings.ToUpper(strings.TrimPrefix(helloSig, "sha256="))), helloBody, helloNow, ""},
		{"tampered body", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", helloSig), helloBody + " ", helloNow, domain.CodeSigMismatch},
		{"wrong secret", hmacsig.PactaPay(), []string{"other"}, hdr("X-Pactapay-Signature", helloSig), helloBody, helloNow, domain.CodeSigMismatch},
		{"dual secrets, second matches", hmacsig.PactaPay(), []string{"other", testSecret}, hdr("X-Pactapay-Signature", helloSig), helloBody, helloNow, ""},
		{"no prefix", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", strings.TrimPrefix(helloSig, "sha256=")), helloBody, helloNow, domain.CodeSigMalformed},
		{"not hex", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", "sha256=zz"), helloBody, helloNow, domain.CodeSigMalformed},
		{"short hex", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", helloSig[:40]), helloBody, helloNow, domain.CodeSigMalformed},
		{"missing header", hmacsig.PactaPay(), []string{testSecret}, hdr(), helloBody, helloNow, domain.CodeSigMissing},
		{"repeated header", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", helloSig, "X-Pactapay-Signature", helloSig), helloBody, helloNow, domain.CodeSigMalformed},
		{"several signatures in one header", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", "sha256=00, "+helloSig), helloBody, helloNow, ""},
		{"no secrets", hmacsig.PactaPay(), nil, hdr("X-Pactapay-Signature", helloSig), helloBody, helloNow, domain.CodeSigMismatch},
		{"no timestamp in the scheme: any clock", hmacsig.PactaPay(), []string{testSecret}, hdr("X-Pactapay-Signature", helloSig), helloBody, helloNow.Add(1000 * time.Hour), ""},

		{"timestamp.body known answer", timestamped(), []string{testSecret}, hdr("Omni-Signature", helloTSHex, "Omni-Timestamp", helloTS), helloBody, helloNow, ""},
		{"timestamp.body, rotated secret", timestamped(), []string{testSecret, "second_secret"}, hdr("Omni-Signature", rotated, "Omni-Timestamp", helloTS), helloBody, helloNow, ""},
		{"timestamp.body, other timestamp", timestamped(), []string{testSecret}, hdr("Omni-Signature", helloTSHex, "Omni-Timestamp", "1700000001"), helloBody, helloNow, domain.CodeSigMismatch},
		{"timestamp missing", timestamped(), []string{testSecret}, hdr("Omni-Signature", helloTSHex), helloBody, helloNow, domain.CodeSigMissing},
		{"timestamp not a number", timestamped(), []string{testSecret}, hdr("Omni-Signature", helloTSHex, "Omni-Timestamp", "-1"), helloBody, helloNow, domain.CodeSigMalformed},
		{"stale", timestamped(), []string{testSecret}, hdr("Omni-Signature", helloTSHex, "Omni-Timestamp", helloTS), helloBody, helloNow.Add(5*time.Minute + time.Second), domain.CodeSigTooOld},
		{"future", timestamped(), []string{testSecret}, hdr("Omni-Signature", helloTSHex, "Omni-Timestamp", helloTS), helloBody, helloNow.Add(-5*time.Minute - time.Second), domain.CodeSigTooNew},
		{"forged and stale is a mismatch", timestamped(), []string{"other"}, hdr("Omni-Signature", helloTSHex, "Omni-Timestamp", helloTS), helloBody, helloNow.Add(time.Hour), domain.CodeSigMismatch},

		{"slack known answer", slack(), []string{slackSecret}, hdr("X-Slack-Signature", slackSig, "X-Slack-Request-Timestamp", slackTS), slackBody, slackNow, ""},
		{"slack tampered", slack(), []string{slackSecret}, hdr("X-Slack-Signature", slackSig, "X-Slack-Request-Timestamp", slackTS), slackBody + "&x=1", slackNow, domain.CodeSigMismatch},

		{"sha1 base64", sha1b64, []string{testSecret}, hdr("Sig", helloSHA1Base64), helloBody, helloNow, ""},
		{"sha1 base64 given a sha256 length", sha1b64, []string{testSecret}, hdr("Sig", helloSHA512Base64), helloBody, helloNow, domain.CodeSigMalformed},
		{"sha512 base64", sha512b64, []string{testSecret}, hdr("Sig", helloSHA512Base64), helloBody, helloNow, ""},
		{"sha512 base64, wrong secret", sha512b64, []string{"nope"}, hdr("Sig", helloSHA512Base64), helloBody, helloNow, domain.CodeSigMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, c.c.Validate())
			err := hmacsig.Verifier{Config: c.c, Secrets: c.secrets}.Verify(c.h, []byte(c.body), c.now)
			if c.want == "" {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, c.want, domain.ErrorCode(err), "err: %v", err)
			}
		})
	}
}

func TestVerifyCustomTolerance(t *testing.T) {
	v := hmacsig.Verifier{Config: timestamped(), Secrets: []string{testSecret}, Tolerance: 300 * time.Second}
	h := hdr("Omni-Signature", helloTSHex, "Omni-Timestamp", helloTS)
	assert.NoError(t, v.Verify(h, []byte(helloBody), helloNow.Add(300*time.Second)))
	v.Tolerance = 10 * time.Second
	assert.Equal(t, domain.CodeSigTooOld, domain.ErrorCode(v.Verify(h, []byte(helloBody), helloNow.Add(11*time.Second))))
}

func TestValidate(t *testing.T) {
	base := func(mod func(*hmacsig.Config)) hmacsig.Config {
		c := timestamped()
		mod(&c)
		return c
	}
	cases := []struct {
		name string
		c    hmacsig.Config
		want string // substring; empty: valid
	}{
		{"timestamped", timestamped(), ""},
		{"github", github(), ""},
		{"slack", slack(), ""},
		{"pactapay", hmacsig.PactaPay(), ""},
		{"no signature header", base(func(c *hmacsig.Config) { c.SignatureHeader = "" }), "signature_header"},
		{"unknown digest", base(func(c *hmacsig.Config) { c.Digest = "md5" }), "digest"},
		{"unknown encoding", base(func(c *hmacsig.Config) { c.Encoding = "base32" }), "encoding"},
		{"template without body", base(func(c *hmacsig.Config) { c.Template = "{timestamp}" }), "{body}"},
		{"template with body twice", base(func(c *hmacsig.Config) { c.Template = "{timestamp}.{body}{body}" }), "{body}"},
		{"unknown placeholder", base(func(c *hmacsig.Config) { c.Template = "{timestamp}.{id}.{body}" }), "placeholders"},
		{"timestamp without header", base(func(c *hmacsig.Config) { c.TimestampHeader = "" }), "timestamp_header"},
		{"timestamp header not signed", base(func(c *hmacsig.Config) { c.Template = "{body}" }), "does not sign"},
		{"no id", base(func(c *hmacsig.Config) { c.EventIDField = "" }), "event_id_field"},
		{"two ids", base(func(c *hmacsig.Config) { c.EventIDHeader = "X-Id" }), "only one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.c.Validate()
			if c.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err))
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestParse(t *testing.T) {
	withCreated := timestamped()
	withCreated.CreatedField = "meta.created"
	withCreated.EventIDField = "data.id"
	cases := []struct {
		name    string
		c       hmacsig.Config
		h       http.Header
		body    string
		want    domain.Envelope
		wantErr string
	}{
		{"id and type fields", timestamped(), nil, `{"id":"evt_1","type":"order.paid"}`, domain.Envelope{EventID: "evt_1", EventType: "order.paid"}, ""},
		{"integer id", timestamped(), nil, `{"id":12345,"type":"order.paid"}`, domain.Envelope{EventID: "12345", EventType: "order.paid"}, ""},
		{"fractional id", timestamped(), nil, `{"id":1.5,"type":"order.paid"}`, domain.Envelope{}, "field id"},
		{"id header", github(), hdr("X-GitHub-Delivery", "72d3162e-cc78"), `{"action":"opened"}`, domain.Envelope{EventID: "72d3162e-cc78", EventType: "opened"}, ""},
		{"id header missing", github(), hdr(), `{"action":"opened"}`, domain.Envelope{}, "X-GitHub-Delivery"},
		{"dotted paths, created in seconds", withCreated, nil, `{"data":{"id":"d_1"},"type":"x","meta":{"created":1700000000}}`,
			domain.Envelope{EventID: "d_1", EventType: "x", Created: time.Unix(1700000000, 0).UTC()}, ""},
		{"created as RFC 3339", withCreated, nil, `{"data":{"id":"d_1"},"type":"x","meta":{"created":"2024-01-02T03:04:05Z"}}`,
			domain.Envelope{EventID: "d_1", EventType: "x", Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}, ""},
		{"created absent", withCreated, nil, `{"data":{"id":"d_1"},"type":"x"}`, domain.Envelope{EventID: "d_1", EventType: "x"}, ""},
		{"created garbage", withCreated, nil, `{"data":{"id":"d_1"},"type":"x","meta":{"created":"yesterday"}}`, domain.Envelope{}, "meta.created"},
		{"created negative", withCreated, nil, `{"data":{"id":"d_1"},"type":"x","meta":{"created":-5}}`, domain.Envelope{}, "meta.created"},
		{"no type", timestamped(), nil, `{"id":"evt_1"}`, domain.Envelope{}, "field type"},
		{"type not a string", timestamped(), nil, `{"id":"evt_1","type":["a"]}`, domain.Envelope{}, "field type"},
		{"no id", timestamped(), nil, `{"type":"x"}`, domain.Envelope{}, "field id"},
		{"not an object", timestamped(), nil, `["x"]`, domain.Envelope{}, "object"},
		{"truncated", timestamped(), nil, `{"id":"evt_1","type":"x"`, domain.Envelope{}, "decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := hmacsig.Parser{Config: c.c}.Parse(c.h, []byte(c.body))
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
				assert.Contains(t, err.Error(), c.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestPactaPayParse(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    domain.Envelope
		wantErr string
	}{
		{"payment.completed",
			`{"id":"evt_pp_1","event":"payment.completed","payment_id":"pay_1","amount":4999,"currency":"EUR","timestamp":1700000000,"metadata":{"order":"o_1"}}`,
			domain.Envelope{EventID: "evt_pp_1", EventType: "payment.completed", Created: time.Unix(1700000000, 0).UTC(), ObjectKind: "payment", ObjectID: "pay_1"}, ""},
		{"payment.refunded without timestamp",
			`{"id":"evt_pp_2","event":"payment.refunded","payment_id":"pay_1","amount":0,"currency":"EUR"}`,
			domain.Envelope{EventID: "evt_pp_2", EventType: "payment.refunded", ObjectKind: "payment", ObjectID: "pay_1"}, ""},
		{"other types need only id and event",
			`{"id":"evt_pp_3","event":"payout.sent"}`,
			domain.Envelope{EventID: "evt_pp_3", EventType: "payout.sent"}, ""},
		{"a payment of another type is still its object",
			`{"id":"evt_pp_4","event":"payment.disputed","payment_id":"pay_1","amount":"any"}`,
			domain.Envelope{EventID: "evt_pp_4", EventType: "payment.disputed", ObjectKind: "payment", ObjectID: "pay_1"}, ""},
		{"a payment_id that is not a string names no object",
			`{"id":"evt_pp_5","event":"payout.sent","payment_id":7}`,
			domain.Envelope{EventID: "evt_pp_5", EventType: "payout.sent"}, ""},
		// Every required field's error is in domain/pactapaywire's tests;
		// these show intake applies the check.
		{"amount a string", `{"id":"e","event":"payment.failed","payment_id":"p","amount":"10","currency":"EUR"}`, domain.Envelope{}, "field amount"},
		{"payment_id missing", `{"id":"e","event":"payment.completed","amount":1,"currency":"EUR"}`, domain.Envelope{}, "field payment_id"},
		{"id a number on a payment type", `{"id":7,"event":"payment.completed","payment_id":"p","amount":1,"currency":"EUR"}`, domain.Envelope{}, "field id"},
		{"no id", `{"event":"payment.completed","payment_id":"p","amount":1,"currency":"EUR"}`, domain.Envelope{}, "field id"},
		{"no event", `{"id":"e","payment_id":"p","amount":1,"currency":"EUR"}`, domain.Envelope{}, "field event"},
		{"timestamp garbage", `{"id":"e","event":"x","timestamp":true}`, domain.Envelope{}, "field timestamp"},
		{"not JSON", `id=e&event=payment.completed`, domain.Envelope{}, "object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := hmacsig.PactaPayParser{}.Parse(nil, []byte(c.body))
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
				assert.Contains(t, err.Error(), c.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

// FuzzVerify feeds arbitrary headers and bodies to the timestamped
// verifier: it must never panic, and whatever it accepts must carry the hex
// HMAC of "<timestamp>.<body>".
func FuzzVerify(f *testing.F) {
	f.Add(helloTSHex, helloTS, []byte(helloBody))
	f.Add("00,"+helloTSHex, helloTS, []byte(helloBody))
	f.Add(strings.ToUpper(helloTSHex), "01700000000", []byte(helloBody))
	f.Add("", "", []byte{})
	f.Add(timestampedHex("100000000000", helloBody), "100000000000", []byte(helloBody))
	f.Add(timestampedHex("9223372036854775807", helloBody), "9223372036854775807", []byte(helloBody))
	v := hmacsig.Verifier{Config: timestamped(), Secrets: []string{testSecret}}
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte) {
		h := http.Header{}
		h.Set("Omni-Signature", sig)
		h.Set("Omni-Timestamp", ts)
		err := v.Verify(h, body, helloNow)
		if err != nil {
			if domain.ErrorCode(err) == domain.CodeInternal {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		m := hmac.New(sha256.New, []byte(testSecret))
		m.Write([]byte(ts + "."))
		m.Write(body)
		if !strings.Contains(strings.ToLower(sig), hex.EncodeToString(m.Sum(nil))) {
			t.Fatalf("accepted %q without the signature", sig)
		}
		if n, perr := strconv.ParseInt(ts, 10, 64); perr != nil || n < helloNow.Unix()-300 || n > helloNow.Unix()+300 {
			t.Fatalf("accepted timestamp %q outside the tolerance", ts)
		}
	})
}

// FuzzTemplate signs and verifies under arbitrary templates: a template
// Validate accepts must round-trip through Sign and Verify, and must not
// verify a different body.
func FuzzTemplate(f *testing.F) {
	f.Add("{timestamp}.{body}", "sha256", "hex", "", []byte(helloBody))
	f.Add("v0:{timestamp}:{body}", "sha256", "hex", "v0=", []byte(slackBody))
	f.Add("{body}", "sha1", "base64", "sha1=", []byte{})
	f.Add("{ {timestamp}{body}}", "sha512", "base64", "{", []byte("{}"))
	f.Fuzz(func(t *testing.T, template, digest, encoding, prefix string, body []byte) {
		c := hmacsig.Config{SignatureHeader: "Sig", Template: template, Digest: digest, Encoding: encoding, Prefix: prefix, EventIDField: "id"}
		if strings.Contains(template, "{timestamp}") {
			c.TimestampHeader = "Ts"
		}
		if c.Validate() != nil || strings.ContainsAny(prefix, ", \r\n\t") || prefix != strings.TrimSpace(prefix) {
			return
		}
		v := hmacsig.Verifier{Config: c, Secrets: []string{"s"}}
		h := http.Header{}
		for k, val := range hmacsig.Sign(c, "s", helloNow, body) {
			h.Set(k, val)
		}
		if err := v.Verify(h, body, helloNow); err != nil {
			t.Fatalf("own signature does not verify: %v", err)
		}
		if err := v.Verify(h, append(body, 'x'), helloNow); domain.ErrorCode(err) != domain.CodeSigMismatch {
			t.Fatalf("tampered body: %v", err)
		}
	})
}

// FuzzPactaPayParse feeds arbitrary bodies to the PactaPay parser: it must
// never panic, every error must be BILLFOLD-EVENT-MALFORMED, and every
// accepted payment event must have its required fields.
func FuzzPactaPayParse(f *testing.F) {
	f.Add([]byte(`{"id":"evt_pp_1","event":"payment.completed","payment_id":"pay_1","amount":4999,"currency":"EUR","timestamp":1700000000}`))
	f.Add([]byte(`{"id":"e","event":"payment.failed","payment_id":"p","amount":1e3,"currency":"EUR"}`))
	f.Add([]byte(`{"id":"e","event":"x","timestamp":"2024-01-02T03:04:05Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := hmacsig.PactaPayParser{}.Parse(nil, body)
		if err != nil {
			if domain.ErrorCode(err) != domain.CodeEventMalformed {
				t.Fatalf("error code %s: %v", domain.ErrorCode(err), err)
			}
			return
		}
		if domain.CheckEventID("id", env.EventID) != nil || env.EventType == "" {
			t.Fatalf("accepted an envelope without id or type: %+v", env)
		}
		if strings.HasPrefix(env.EventType, "payment.") && env.ObjectID == "" {
			for _, pt := range hmacsig.PactaPayPaymentTypes {
				if env.EventType == pt {
					t.Fatalf("accepted %s without payment_id", pt)
				}
			}
		}
	})
}

// FuzzParse feeds arbitrary verified bodies and id headers to the generic
// parser, configured with dotted paths and with an id header: no panic,
// only BILLFOLD-EVENT-MALFORMED, and an accepted envelope has a valid id
// and type and a provider time that is zero or after the epoch, in UTC.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"order.paid","created":1700000000,"data":{"id":"d_1","kind":"k"},"meta":{"at":"2024-01-02T03:04:05Z"}}`), "dlv_1")
	f.Add([]byte(`{"id":12345678901234567890,"type":"x"}`), "")
	f.Add([]byte(`{"id":"e","type":"x","created":"yesterday"}`), "a\xffb")
	f.Add([]byte(`{"id":" e ","type":"a\r\nb","created":-1}`), " x ")
	f.Add([]byte(`{"data":{"id":1.5},"type":"x","meta":{"at":1e99}}`), "d")
	f.Add([]byte(`[]`), "")
	parsers := []hmacsig.Parser{
		{Config: hmacsig.Config{SignatureHeader: "S", EventIDField: "id", CreatedField: "created"}},
		{Config: hmacsig.Config{SignatureHeader: "S", EventIDField: "data.id", EventTypeField: "data.kind", CreatedField: "meta.at"}},
		{Config: hmacsig.Config{SignatureHeader: "S", EventIDHeader: "X-Delivery"}},
	}
	f.Fuzz(func(t *testing.T, body []byte, idHeader string) {
		h := http.Header{}
		h.Set("X-Delivery", idHeader)
		for i, p := range parsers {
			env, err := p.Parse(h, body)
			if err != nil {
				require.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err), "parser %d: %v", i, err)
				continue
			}
			require.NoError(t, domain.CheckEventID("id", env.EventID), "parser %d", i)
			require.NoError(t, domain.CheckEventType("type", env.EventType), "parser %d", i)
			if !env.Created.IsZero() {
				require.Positive(t, env.Created.Unix(), "parser %d", i)
				require.Equal(t, env.Created, env.Created.UTC(), "parser %d", i)
			}
		}
	})
}

// BenchmarkVerify verifies a PactaPay payment delivery (HMAC-SHA256 of the
// body) and a timestamped scheme's (HMAC of "<timestamp>.<body>").
func BenchmarkVerify(b *testing.B) {
	body := samples.PactaPayPayment("payment.completed", "pay_bench_42", 4200, helloNow)
	for name, c := range map[string]hmacsig.Config{"pactapay": hmacsig.PactaPay(), "timestamped": timestamped()} {
		b.Run(name, func(b *testing.B) {
			h := http.Header{}
			for k, v := range hmacsig.Sign(c.WithDefaults(), testSecret, helloNow, body) {
				h.Set(k, v)
			}
			v := hmacsig.Verifier{Config: c, Secrets: []string{testSecret}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(h, body, helloNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPactaPayParse reads a PactaPay payment delivery's envelope and
// checks its payment fields, as intake does after the signature.
func BenchmarkPactaPayParse(b *testing.B) {
	body := samples.PactaPayPayment("payment.completed", "pay_bench_42", 4200, helloNow)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (hmacsig.PactaPayParser{}).Parse(nil, body); err != nil {
			b.Fatal(err)
		}
	}
}

// A genuinely signed timestamp far in the future (10^11 is year 5138,
// math.MaxInt64 the largest the header can carry) is refused as too new.
func TestVerifyFarFutureTimestamp(t *testing.T) {
	v := hmacsig.Verifier{Config: timestamped(), Secrets: []string{testSecret}}
	for _, ts := range []string{"100000000000", "9223372036854775807", "9223372036854775000"} {
		h := hdr("Omni-Signature", timestampedHex(ts, helloBody), "Omni-Timestamp", ts)
		err := v.Verify(h, []byte(helloBody), helloNow)
		assert.Equal(t, domain.CodeSigTooNew, domain.ErrorCode(err), "t=%s: %v", ts, err)
	}
}

// timestampedHex is the timestamped() scheme's signature of body at the
// timestamp string ts, computed by hand (hmacsig.Sign takes a time.Time,
// which cannot hold the largest timestamps a header can carry).
func timestampedHex(ts, body string) string {
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(ts + "." + body))
	return hex.EncodeToString(m.Sum(nil))
}

// PactaPay's signature covers the body's timestamp, so a verified payload
// older (or newer) than the endpoint's tolerance is refused with its own
// code, as PactaPay's guide asks: default five minutes, either way.
func TestPactaPayPayloadTimestamp(t *testing.T) {
	at := time.Unix(1700000000, 0)
	signed := func(body []byte) http.Header {
		h := http.Header{}
		for k, v := range hmacsig.Sign(hmacsig.PactaPay(), testSecret, time.Time{}, body) {
			h.Set(k, v)
		}
		return h
	}
	payment := samples.PactaPayPayment("payment.completed", "pay_ts_1", 4999, at)
	rfc3339 := []byte(`{"id":"evt_pp_rfc","event":"payment.completed","payment_id":"p","amount":1,"currency":"EUR","timestamp":"2023-11-14T22:13:20Z"}`)
	cases := []struct {
		name      string
		body      []byte
		now       time.Time
		tolerance time.Duration
		want      domain.Code
	}{
		{"fresh", payment, at, 0, ""},
		{"five minutes old", payment, at.Add(5 * time.Minute), 0, ""},
		{"an hour old", payment, at.Add(time.Hour), 0, domain.CodeEventTooOld},
		{"just past the default tolerance", payment, at.Add(5*time.Minute + 2*time.Second), 0, domain.CodeEventTooOld},
		{"just past the default tolerance, in the future", payment, at.Add(-5*time.Minute - 2*time.Second), 0, domain.CodeEventTooNew},
		{"a day ahead", payment, at.Add(-24 * time.Hour), 0, domain.CodeEventTooNew},
		{"an hour old within an endpoint's 2h tolerance", payment, at.Add(time.Hour), 2 * time.Hour, ""},
		{"11s old past an endpoint's 10s tolerance", payment, at.Add(11 * time.Second), 10 * time.Second, domain.CodeEventTooOld},
		{"RFC 3339 timestamp, an hour old", rfc3339, at.Add(time.Hour), 0, domain.CodeEventTooOld},
		{"RFC 3339 timestamp, fresh", rfc3339, at, 0, ""},
		{"no timestamp: not held to a window", []byte(helloBody), at.Add(1000 * time.Hour), 0, ""},
		{"unreadable timestamp: left to the parser", []byte(`{"id":"e","event":"x","timestamp":"yesterday"}`), at, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := hmacsig.Verifier{Config: hmacsig.PactaPay(), Secrets: []string{testSecret}, Tolerance: c.tolerance}
			err := v.Verify(signed(c.body), c.body, c.now)
			if c.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, c.want, domain.ErrorCode(err), "err: %v", err)
			assert.Contains(t, domain.ErrorMessage(err), "payload timestamp", "the reason names the field")
		})
	}

	// The signature is judged first: a forged stale body is a mismatch, so
	// a forger learns nothing about billfold's clock.
	v := hmacsig.Verifier{Config: hmacsig.PactaPay(), Secrets: []string{"other"}}
	assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(v.Verify(signed(payment), payment, at.Add(time.Hour))))
}

// FuzzPactaPayVerify verifies arbitrary bodies signed with the right
// secret: no panic, every refusal has a code, and an accepted body whose
// timestamp is integer Unix seconds (read here with encoding/json, not by
// the verifier's own reader) lies within five minutes of now.
func FuzzPactaPayVerify(f *testing.F) {
	f.Add([]byte(`{"id":"evt_pp_1","event":"payment.completed","payment_id":"pay_1","amount":4999,"currency":"EUR","timestamp":1700000000}`))
	f.Add([]byte(`{"id":"e","event":"x","timestamp":1699996399}`))
	f.Add([]byte(`{"id":"e","event":"x","timestamp":9223372036854775807}`))
	f.Add([]byte(`{"id":"e","event":"x","timestamp":"2023-11-14T22:13:20Z"}`))
	f.Add([]byte(`{"id":"e","event":"x","timestamp":null}`))
	f.Add([]byte(`not json`))
	v := hmacsig.Verifier{Config: hmacsig.PactaPay(), Secrets: []string{testSecret}}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := http.Header{}
		for k, val := range hmacsig.Sign(hmacsig.PactaPay(), testSecret, time.Time{}, body) {
			h.Set(k, val)
		}
		err := v.Verify(h, body, helloNow)
		if err != nil {
			switch domain.ErrorCode(err) {
			case domain.CodeEventTooOld, domain.CodeEventTooNew:
				return
			}
			t.Fatalf("a correctly signed body refused with %s: %v", domain.ErrorCode(err), err)
		}
		var m map[string]json.RawMessage
		var n json.Number
		if json.Unmarshal(body, &m) != nil || json.Unmarshal(m["timestamp"], &n) != nil {
			return
		}
		if ts, perr := n.Int64(); perr == nil && ts > 0 && ts <= 1<<40 && (ts < helloNow.Unix()-301 || ts > helloNow.Unix()+301) {
			t.Fatalf("accepted payload timestamp %d, %ds from now", ts, ts-helloNow.Unix())
		}
	})
}
