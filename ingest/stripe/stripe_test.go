package stripe_test

import (
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v84/webhook"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/ingest/stripe"
)

// Known answers from ../shared/testvectors.md, checked against stripe-go.
const (
	vecSecret  = "whsec_test_secret"
	vecRolled  = "whsec_test_secret_rolled_key"
	vecT       = 1700000000
	vecBody    = `{"id":"evt_1","object":"event"}`
	vecSig     = "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"
	vecRolledS = "29389d710f70245bf8fe4fa9cd26f8dd72223b86a7ef711a29c7c7196f3ff08d"
)

var vecNow = time.Unix(vecT, 0)

func header(v string) http.Header {
	h := http.Header{}
	if v != "" {
		h.Set(stripe.SignatureHeader, v)
	}
	return h
}

func TestSignKnownAnswers(t *testing.T) {
	assert.Equal(t, vecSig, stripe.Sign(vecSecret, vecT, []byte(vecBody)))
	assert.Equal(t, vecRolledS, stripe.Sign(vecRolled, vecT, []byte(vecBody)))
}

func TestVerify(t *testing.T) {
	both := "t=1700000000,v1=" + vecSig + ",v1=" + vecRolledS
	cases := []struct {
		name    string
		secrets []string
		header  string
		body    string
		now     time.Time
		want    domain.Code // empty: verifies
	}{
		{"known answer", []string{vecSecret}, "t=1700000000,v1=" + vecSig, vecBody, vecNow, ""},
		{"rotation: both signatures, old secret", []string{vecSecret}, both, vecBody, vecNow, ""},
		{"rotation: both signatures, new secret", []string{vecRolled}, both, vecBody, vecNow, ""},
		{"rotation: both signatures, other secret", []string{"whsec_other"}, both, vecBody, vecNow, domain.CodeSigMismatch},
		{"several configured secrets, one matches", []string{"whsec_other", vecRolled}, "t=1700000000,v1=" + vecRolledS, vecBody, vecNow, ""},
		{"extra bad v1 beside a good one", []string{vecSecret}, "t=1700000000,v1=bad_signature,v1=" + vecSig, vecBody, vecNow, ""},
		{"v0 entries are ignored", []string{vecSecret}, "t=1700000000,v0=" + vecSig + ",v1=" + vecSig, vecBody, vecNow, ""},
		{"only a v0 signature", []string{vecSecret}, "t=1700000000,v0=" + vecSig, vecBody, vecNow, domain.CodeSigMalformed},
		{"tampered body", []string{vecSecret}, "t=1700000000,v1=" + vecSig, vecBody + " ", vecNow, domain.CodeSigMismatch},
		{"wrong secret", []string{"whsec_other"}, "t=1700000000,v1=" + vecSig, vecBody, vecNow, domain.CodeSigMismatch},
		{"signature for another timestamp", []string{vecSecret}, "t=1700000001,v1=" + vecSig, vecBody, vecNow, domain.CodeSigMismatch},
		{"empty header", []string{vecSecret}, "", vecBody, vecNow, domain.CodeSigMissing},
		{"entry without '='", []string{vecSecret}, "v1,t=1", vecBody, vecNow, domain.CodeSigMalformed},
		{"empty timestamp", []string{vecSecret}, "t=", vecBody, vecNow, domain.CodeSigMalformed},
		{"no timestamp", []string{vecSecret}, "v1=" + vecSig, vecBody, vecNow, domain.CodeSigMalformed},
		{"299 s old passes", []string{vecSecret}, "t=1700000000,v1=" + vecSig, vecBody, vecNow.Add(299 * time.Second), ""},
		{"300 s old passes", []string{vecSecret}, "t=1700000000,v1=" + vecSig, vecBody, vecNow.Add(300 * time.Second), ""},
		{"300.001 s old fails", []string{vecSecret}, "t=1700000000,v1=" + vecSig, vecBody, vecNow.Add(300*time.Second + time.Millisecond), domain.CodeSigTooOld},
		{"300.001 s in the future fails", []string{vecSecret}, "t=1700000000,v1=" + vecSig, vecBody, vecNow.Add(-300*time.Second - time.Millisecond), domain.CodeSigTooNew},
		{"forged old header is a mismatch, not too old", []string{vecSecret}, "t=1,v1=" + vecSig, vecBody, vecNow, domain.CodeSigMismatch},
		{"no secrets configured", nil, "t=1700000000,v1=" + vecSig, vecBody, vecNow, domain.CodeSigMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := stripe.Verifier{Secrets: c.secrets}.Verify(header(c.header), []byte(c.body), c.now)
			if c.want == "" {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, c.want, domain.ErrorCode(err), "err: %v", err)
			}
		})
	}
}

func TestVerifyCustomTolerance(t *testing.T) {
	v := stripe.Verifier{Secrets: []string{vecSecret}, Tolerance: 10 * time.Second}
	h := header("t=1700000000,v1=" + vecSig)
	assert.NoError(t, v.Verify(h, []byte(vecBody), vecNow.Add(10*time.Second)))
	assert.Equal(t, domain.CodeSigTooOld, domain.ErrorCode(v.Verify(h, []byte(vecBody), vecNow.Add(11*time.Second))))
}

// The official library's signer and ours agree both ways.
func TestAgreesWithStripeGo(t *testing.T) {
	body := []byte(`{"id":"evt_3","object":"event","type":"customer.created","created":1700000000}`)
	now := time.Now()
	signed := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: vecSecret, Timestamp: now})
	require.NoError(t, stripe.Verifier{Secrets: []string{vecSecret}}.Verify(header(signed.Header), body, now))
	assert.Error(t, stripe.Verifier{Secrets: []string{"whsec_other"}}.Verify(header(signed.Header), body, now))

	ours := "t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + stripe.Sign(vecSecret, now.Unix(), body)
	assert.NoError(t, stripewebhook.ValidatePayload(body, ours, vecSecret))
}

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    domain.Envelope
		wantErr string // substring of the message naming the field
	}{
		{"subscription event",
			`{"id":"evt_1","object":"event","type":"customer.subscription.updated","created":1700000000,"livemode":false,"data":{"object":{"id":"sub_1","object":"subscription","status":"active"}}}`,
			domain.Envelope{EventID: "evt_1", EventType: "customer.subscription.updated", Created: time.Unix(1700000000, 0).UTC(), Livemode: ptr(false), ObjectKind: "subscription", ObjectID: "sub_1"}, ""},
		{"no created, no livemode, no data",
			`{"id":"evt_2","type":"ping"}`,
			domain.Envelope{EventID: "evt_2", EventType: "ping"}, ""},
		{"unknown types are fine", `{"id":"evt_3","type":"some.future.type"}`, domain.Envelope{EventID: "evt_3", EventType: "some.future.type"}, ""},
		{"object id of the wrong type", `{"id":"evt_3","type":"x","data":{"object":{"id":42}}}`, domain.Envelope{}, "decode"},
		{"no type", `{"id":"evt_1","object":"event"}`, domain.Envelope{}, "type"},
		{"no id", `{"type":"customer.created"}`, domain.Envelope{}, "id"},
		{"id not a string", `{"id":1,"type":"customer.created"}`, domain.Envelope{}, "decode"},
		{"truncated", `{"id":"evt_1","type":"cust`, domain.Envelope{}, "decode"},
		{"array", `[{"id":"evt_1","type":"x"}]`, domain.Envelope{}, "object"},
		{"empty", ``, domain.Envelope{}, "object"},
		{"id too long", `{"id":"` + strings.Repeat("a", 256) + `","type":"x"}`, domain.Envelope{}, "id"},
		{"invalid UTF-8 in id", "{\"id\":\"evt_\xff\",\"type\":\"x\"}", domain.Envelope{}, "id"},
		{"request id (object form, API 2017-05-25 on)",
			`{"id":"evt_4","type":"customer.created","request":{"id":"req_abc123","idempotency_key":"k1"}}`,
			domain.Envelope{EventID: "evt_4", EventType: "customer.created", ProviderRequestID: "req_abc123"}, ""},
		{"request id (bare string, older API versions)",
			`{"id":"evt_5","type":"customer.created","request":"req_old"}`,
			domain.Envelope{EventID: "evt_5", EventType: "customer.created", ProviderRequestID: "req_old"}, ""},
		{"automatic event: request null", `{"id":"evt_6","type":"invoice.paid","request":{"id":null,"idempotency_key":null}}`,
			domain.Envelope{EventID: "evt_6", EventType: "invoice.paid"}, ""},
		{"request id that cannot be journaled is dropped, not fatal", `{"id":"evt_7","type":"x","request":{"id":" req "}}`,
			domain.Envelope{EventID: "evt_7", EventType: "x"}, ""},
		{"Connect event keeps its account",
			`{"id":"evt_8","type":"customer.subscription.created","account":"acct_1Abc","data":{"object":{"id":"sub_8","object":"subscription"}}}`,
			domain.Envelope{EventID: "evt_8", EventType: "customer.subscription.created", Account: "acct_1Abc", ObjectKind: "subscription", ObjectID: "sub_8"}, ""},
		{"account that cannot be journaled", "{\"id\":\"evt_9\",\"type\":\"x\",\"account\":\"acct\\n1\"}", domain.Envelope{}, "account"},
		{"account not a string", `{"id":"evt_9","type":"x","account":1}`, domain.Envelope{}, "decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := stripe.Parser{}.Parse(nil, []byte(c.body))
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

func ptr[T any](v T) *T { return &v }

// FuzzVerify feeds arbitrary headers and bodies to the verifier: it must
// never panic, and whatever it accepts must carry a v1 that really is the
// HMAC of the body at the header's timestamp.
func FuzzVerify(f *testing.F) {
	f.Add("t=1700000000,v1="+vecSig, vecBody)
	f.Add("t=1700000000,v1="+vecSig+",v1="+vecRolledS, vecBody)
	f.Add("v1,t=1", "")
	f.Add("t=", "{}")
	f.Add("t=-1,v1=00,v0=zz,,=,t=99999999999999999999", "x")
	f.Add("t=100000000000,v1="+stripe.Sign(vecSecret, 1e11, []byte(vecBody)), vecBody)
	f.Add("t=9223372036854775807,v1="+stripe.Sign(vecSecret, math.MaxInt64, []byte(vecBody)), vecBody)
	v := stripe.Verifier{Secrets: []string{vecSecret}, Tolerance: 1 << 62}
	f.Fuzz(func(t *testing.T, hdr, body string) {
		err := v.Verify(header(hdr), []byte(body), vecNow)
		if err != nil {
			assert.Contains(t, []domain.Code{domain.CodeSigMissing, domain.CodeSigMalformed, domain.CodeSigMismatch, domain.CodeSigTooOld, domain.CodeSigTooNew}, domain.ErrorCode(err))
			return
		}
		sig, perr := stripe.ParseHeader(hdr)
		require.NoError(t, perr)
		require.LessOrEqual(t, new(big.Int).Abs(big.NewInt(0).Sub(big.NewInt(sig.Timestamp), big.NewInt(vecT))).Uint64(), uint64(v.Tolerance/time.Second),
			"accepted timestamp %d outside the tolerance", sig.Timestamp)
		want := stripe.Sign(vecSecret, sig.Timestamp, []byte(body))
		assert.Contains(t, strings.ToLower(hdr), "v1="+want, "hex is case-insensitive, as in stripe-go")
	})
}

// FuzzParse feeds arbitrary verified bodies to the envelope parser: no
// panic, and an accepted envelope has a valid id and a type.
func FuzzParse(f *testing.F) {
	f.Add(`{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}}}`)
	f.Add(`{"id":"evt_1"}`)
	f.Add(`[]`)
	f.Add(`{"id":"` + strings.Repeat("[", 100) + `"}`)
	f.Add(`{"id":"evt_1","type":"x","account":"acct_1","request":{"id":"req_1"}}`)
	f.Add(`{"id":"evt_1","type":"x","request":"req_\u0000"}`)
	f.Fuzz(func(t *testing.T, body string) {
		env, err := stripe.Parser{}.Parse(nil, []byte(body))
		if err != nil {
			assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
			return
		}
		assert.NoError(t, domain.CheckEventID("id", env.EventID))
		assert.NotEmpty(t, env.EventType)
		// Account and request id go into journal headers: each is empty
		// or journalable as it is.
		for _, v := range []string{env.Account, env.ProviderRequestID} {
			if v != "" {
				assert.NoError(t, domain.CheckEventID("header", v))
			}
		}
	})
}

// benchEvent is a realistic Stripe delivery: a subscription update as the
// bench workload sends it (about 2.5 KB).
func benchEvent() []byte {
	return samples.Stripe{EventID: "evt_1Q8wXrBench", Type: "customer.subscription.updated", Created: vecNow,
		Previous: map[string]any{"status": "trialing"}}.Event()
}

func BenchmarkVerify(b *testing.B) {
	body := benchEvent()
	h := header("t=1700000000,v1=" + stripe.Sign(vecSecret, vecT, body))
	v := stripe.Verifier{Secrets: []string{vecSecret}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, body, vecNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse is the envelope read at intake: the JSON decoding of a
// provider payload on the delivery's path.
func BenchmarkParse(b *testing.B) {
	body := benchEvent()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (stripe.Parser{}).Parse(nil, body); err != nil {
			b.Fatal(err)
		}
	}
}

// A genuinely signed timestamp far in the future (10^11 is year 5138,
// math.MaxInt64 the largest the header can carry) is refused as too new,
// never taken as within tolerance.
func TestVerifyFarFutureTimestamp(t *testing.T) {
	for _, ts := range []int64{1e11, math.MaxInt64, math.MaxInt64 - 299} {
		h := header("t=" + strconv.FormatInt(ts, 10) + ",v1=" + stripe.Sign(vecSecret, ts, []byte(vecBody)))
		err := stripe.Verifier{Secrets: []string{vecSecret}}.Verify(h, []byte(vecBody), vecNow)
		assert.Equal(t, domain.CodeSigTooNew, domain.ErrorCode(err), "t=%d: %v", ts, err)
	}
}
