package braintree_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/samples"
)

// Known answers from ../shared/testvectors.md, section Braintree.
var (
	vecIntegration = braintree.KeyPair{PublicKey: "integration_public_key", PrivateKey: "integration_private_key"}
	vecJKQ         = braintree.KeyPair{PublicKey: "jkq28pcxj4r85dwr", PrivateKey: "66062a3876e2dc298f2195f0bf173f5a"}
	vecMy          = braintree.KeyPair{PublicKey: "my_public_key", PrivateKey: "my_private_key"}
)

const (
	vecChallenge     = "20f9f8ed05f77439fe955c977e4c8a53"
	vecChallengeResp = "integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4"

	// vecCheckPayload ends in "\n" and is signed as is.
	vecCheckPayload = "PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0iVVRGLTgiPz4KPG5vdGlm\naWNhdGlvbj4KICA8a2luZD5jaGVjazwva2luZD4KICA8dGltZXN0YW1wIHR5\ncGU9ImRhdGV0aW1lIj4yMDE3LTA0LTI0VDA0OjI1OjEwWjwvdGltZXN0YW1w\nPgogIDxzdWJqZWN0PgogICAgPGNoZWNrIHR5cGU9ImJvb2xlYW4iPnRydWU8\nL2NoZWNrPgogIDwvc3ViamVjdD4KPC9ub3RpZmljYXRpb24+Cg==\n"
	vecCheckSig     = "4af78bab15cc58195871c636c786716f34cd9711"

	// vecSubPayload has no final "\n"; its signature is over the payload
	// plus "\n", which the "\n" rule accepts.
	vecSubPayload = "PG5vdGlmaWNhdGlvbj4KICAgIDx0aW1lc3RhbXAgdHlwZT0iZGF0ZXRpbWUiPjIwMjQtMDEtMDJUMDM6MDQ6MDVaPC90aW1lc3RhbXA+CiAgICA8a2luZD5zdWJzY3JpcHRpb25fY2hhcmdlZF9zdWNjZXNzZnVsbHk8L2tpbmQ+CiAgICAKICAgIDxzdWJqZWN0PjxzdWJzY3JpcHRpb24+CiAgICA8aWQ+c3ViXzEyMzwvaWQ+CiAgICA8dHJhbnNhY3Rpb25zIHR5cGU9ImFycmF5Ij4KICAgICAgPHRyYW5zYWN0aW9uPgogICAgICAgIDxpZD5zdWJfMTIzPC9pZD4KICAgICAgICA8c3RhdHVzPnN1Ym1pdHRlZF9mb3Jfc2V0dGxlbWVudDwvc3RhdHVzPgogICAgICAgIDxhbW91bnQ+NDkuOTk8L2Ftb3VudD4KICAgICAgPC90cmFuc2FjdGlvbj4KICAgIDwvdHJhbnNhY3Rpb25zPgogICAgPGFkZF9vbnMgdHlwZT0iYXJyYXkiPjwvYWRkX29ucz4KICAgIDxkaXNjb3VudHMgdHlwZT0iYXJyYXkiPjwvZGlzY291bnRzPgo8L3N1YnNjcmlwdGlvbj48L3N1YmplY3Q+Cjwvbm90aWZpY2F0aW9uPg=="
	vecSubSig     = "b2fdd90708e316f19eff0cf233312c8e056fd761"
)

var vecNow = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// form builds a request body from raw (unescaped) field values.
func form(sig, payload string) []byte {
	return []byte("bt_signature=" + url.QueryEscape(sig) + "&bt_payload=" + url.QueryEscape(payload))
}

func TestChallengeResponse(t *testing.T) {
	assert.Equal(t, vecChallengeResp, braintree.ChallengeResponse(vecIntegration, vecChallenge))
}

func TestSignKnownAnswer(t *testing.T) {
	assert.Equal(t, string(form("jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload)), string(braintree.Sign(vecJKQ, vecCheckPayload)))
	// The my_public_key vector signs the payload plus "\n".
	assert.Equal(t, string(form("my_public_key|"+vecSubSig, vecSubPayload+"\n")), string(braintree.Sign(vecMy, vecSubPayload+"\n")))
}

func TestParseKeyPair(t *testing.T) {
	k, err := braintree.ParseKeyPair("my_public_key:my:private")
	require.NoError(t, err)
	assert.Equal(t, braintree.KeyPair{PublicKey: "my_public_key", PrivateKey: "my:private"}, k)
	for _, s := range []string{"", ":", "pub:", ":priv", "no_colon"} {
		_, err := braintree.ParseKeyPair(s)
		if assert.Error(t, err, s) {
			assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err), s)
		}
	}
	_, err = braintree.ParseKeyPair("zzsecretzz:")
	assert.NotContains(t, err.Error(), "zzsecretzz", "the secret is not echoed")
}

func TestVerify(t *testing.T) {
	other := braintree.KeyPair{PublicKey: "other_public", PrivateKey: "other_private"}
	jkqBody := form("jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload)
	cases := []struct {
		name string
		keys []braintree.KeyPair
		body []byte
		want domain.Code // empty: verifies
	}{
		{"check vector", []braintree.KeyPair{vecJKQ}, jkqBody, ""},
		{"my_public_key vector, payload without final newline", []braintree.KeyPair{vecMy}, form("my_public_key|"+vecSubSig, vecSubPayload), ""},
		{"my_public_key vector, payload with final newline", []braintree.KeyPair{vecMy}, form("my_public_key|"+vecSubSig, vecSubPayload+"\n"), ""},
		{"uppercase hex", []braintree.KeyPair{vecJKQ}, form("jkq28pcxj4r85dwr|"+strings.ToUpper(vecCheckSig), vecCheckPayload), ""},
		{"several pairs, ours second", []braintree.KeyPair{vecJKQ}, form("other_public|00&jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload), ""},
		{"rotation: only the second configured pair matches", []braintree.KeyPair{other, vecJKQ}, jkqBody, ""},
		{"rotation: same public key, old private key first", []braintree.KeyPair{{PublicKey: vecJKQ.PublicKey, PrivateKey: "old"}, vecJKQ}, jkqBody, ""},
		{"wrong private key", []braintree.KeyPair{{PublicKey: vecJKQ.PublicKey, PrivateKey: "66062a3876e2dc298f2195f0bf173f5b"}}, jkqBody, domain.CodeSigMismatch},
		{"wrong public key", []braintree.KeyPair{{PublicKey: "someone_else", PrivateKey: vecJKQ.PrivateKey}}, jkqBody, domain.CodeSigMismatch},
		{"no keys configured", nil, jkqBody, domain.CodeSigMismatch},
		{"tampered payload", []braintree.KeyPair{vecJKQ}, form("jkq28pcxj4r85dwr|"+vecCheckSig, "A"+vecCheckPayload), domain.CodeSigMismatch},
		{"payload with two newlines appended", []braintree.KeyPair{vecMy}, form("my_public_key|"+vecSubSig, vecSubPayload+"\n\n"), domain.CodeSigMismatch},
		{"signature is not hex", []braintree.KeyPair{vecJKQ}, form("jkq28pcxj4r85dwr|zz", vecCheckPayload), domain.CodeSigMismatch},
		{"signature too short", []braintree.KeyPair{vecJKQ}, form("jkq28pcxj4r85dwr|"+vecCheckSig[:38], vecCheckPayload), domain.CodeSigMismatch},
		{"signature of the payload under another key", []braintree.KeyPair{vecJKQ}, form("jkq28pcxj4r85dwr|"+vecSubSig, vecCheckPayload), domain.CodeSigMismatch},
		{"empty body", []braintree.KeyPair{vecJKQ}, nil, domain.CodeSigMissing},
		{"no signature", []braintree.KeyPair{vecJKQ}, []byte("bt_payload=" + url.QueryEscape(vecCheckPayload)), domain.CodeSigMissing},
		{"empty signature", []braintree.KeyPair{vecJKQ}, form("", vecCheckPayload), domain.CodeSigMissing},
		{"no payload", []braintree.KeyPair{vecJKQ}, []byte("bt_signature=" + url.QueryEscape("jkq28pcxj4r85dwr|"+vecCheckSig)), domain.CodeSigMissing},
		{"empty payload", []braintree.KeyPair{vecJKQ}, form("jkq28pcxj4r85dwr|"+vecCheckSig, ""), domain.CodeSigMissing},
		{"signature without a pair", []braintree.KeyPair{vecJKQ}, form(vecCheckSig, vecCheckPayload), domain.CodeSigMalformed},
		{"not a form", []braintree.KeyPair{vecJKQ}, []byte("bt_signature=%zz&bt_payload=x"), domain.CodeSigMalformed},
		{"two payloads", []braintree.KeyPair{vecJKQ}, append(jkqBody, []byte("&bt_payload=x")...), domain.CodeSigMalformed},
		{"two signatures", []braintree.KeyPair{vecJKQ}, append(jkqBody, []byte("&bt_signature=x")...), domain.CodeSigMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := braintree.Verifier{Keys: c.keys}.Verify(nil, c.body, vecNow)
			if c.want == "" {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, c.want, domain.ErrorCode(err), "%v", err)
			}
		})
	}
}

func TestVerifyIgnoresTheClock(t *testing.T) {
	v := braintree.Verifier{Keys: []braintree.KeyPair{vecJKQ}}
	body := form("jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload)
	for _, now := range []time.Time{{}, time.Unix(0, 0), vecNow.AddDate(50, 0, 0)} {
		assert.NoError(t, v.Verify(nil, body, now))
	}
}

func TestVerifyDoesNotReadXML(t *testing.T) {
	k := braintree.KeyPair{PublicKey: "p", PrivateKey: "s"}
	body := braintree.Sign(k, "not base64 at all <xml>")
	assert.NoError(t, braintree.Verifier{Keys: []braintree.KeyPair{k}}.Verify(nil, body, vecNow))
	_, err := braintree.Parser{}.Parse(nil, body)
	assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
}

func TestEncodePayload(t *testing.T) {
	doc := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<notification>
  <kind>check</kind>
  <timestamp type="datetime">2017-04-24T04:25:10Z</timestamp>
  <subject>
    <check type="boolean">true</check>
  </subject>
</notification>
`)
	assert.Equal(t, vecCheckPayload, braintree.EncodePayload(doc), "same line breaks as Braintree")
	assert.Equal(t, "", braintree.EncodePayload(nil))
	assert.Equal(t, strings.Repeat("A", 60)+"\n", braintree.EncodePayload(make([]byte, 45)))
	assert.Equal(t, strings.Repeat("A", 60)+"\nAA==\n", braintree.EncodePayload(make([]byte, 46)))
}

func TestSignVerifyParseRoundTrip(t *testing.T) {
	k := braintree.KeyPair{PublicKey: "pub", PrivateKey: "priv & | = ?"}
	doc := `<notification><kind>subscription_canceled</kind><timestamp type="datetime">2024-05-06T07:08:09+02:00</timestamp><subject><subscription><id>sub 9/x</id><status>Canceled</status></subscription></subject></notification>`
	body := braintree.Sign(k, braintree.EncodePayload([]byte(doc)))
	require.NoError(t, braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: "pub", PrivateKey: "x"}, k}}.Verify(nil, body, vecNow))
	env, err := braintree.Parser{}.Parse(nil, body)
	require.NoError(t, err)
	assert.Equal(t, "subscription_canceled:sub 9/x:2024-05-06T05:08:09Z", env.EventID)
	assert.Equal(t, "subscription", env.ObjectKind)
	assert.Equal(t, "sub 9/x", env.ObjectID)

	// Tampering with one payload byte breaks the signature.
	tampered := strings.Replace(string(body), "bt_payload=P", "bt_payload=Q", 1)
	require.NotEqual(t, string(body), tampered)
	err = braintree.Verifier{Keys: []braintree.KeyPair{k}}.Verify(nil, []byte(tampered), vecNow)
	assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(err))
}

func TestParseVectors(t *testing.T) {
	env, err := braintree.Parser{}.Parse(nil, form("jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload))
	require.NoError(t, err)
	assert.Equal(t, domain.Envelope{
		// A check names no object: its identity is the SHA-256 of the XML
		// (sha256sum of the base64-decoded payload, first 32 hex digits).
		EventID:    "check:sha256:ad0688193712081d4be06068eb179fcf:2017-04-24T04:25:10Z",
		EventType:  "check",
		Created:    time.Date(2017, 4, 24, 4, 25, 10, 0, time.UTC),
		ObjectKind: "check",
	}, env)

	env, err = braintree.Parser{}.Parse(nil, form("my_public_key|"+vecSubSig, vecSubPayload))
	require.NoError(t, err)
	assert.Equal(t, domain.Envelope{
		EventID:    "subscription_charged_successfully:sub_123:2024-01-02T03:04:05Z",
		EventType:  "subscription_charged_successfully",
		Created:    vecNow,
		ObjectKind: "subscription",
		ObjectID:   "sub_123",
	}, env)
	assert.Nil(t, env.Livemode)
}

func TestParseOtherSubjects(t *testing.T) {
	k := braintree.KeyPair{PublicKey: "p", PrivateKey: "s"}
	body := braintree.Sign(k, braintree.EncodePayload([]byte(
		`<notification><kind>dispute_opened</kind><timestamp>2024-01-02T03:04:05.25Z</timestamp><subject><dispute><id>dp_1</id></dispute></subject></notification>`)))
	env, err := braintree.Parser{}.Parse(nil, body)
	require.NoError(t, err)
	assert.Equal(t, "dispute_opened:dp_1:2024-01-02T03:04:05.25Z", env.EventID)
	assert.Equal(t, "dispute", env.ObjectKind)
	assert.Equal(t, "dp_1", env.ObjectID)
}

func TestParseMalformed(t *testing.T) {
	k := braintree.KeyPair{PublicKey: "p", PrivateKey: "s"}
	signed := func(doc string) []byte { return braintree.Sign(k, braintree.EncodePayload([]byte(doc))) }
	cases := map[string][]byte{
		"no payload":    []byte("bt_signature=p%7C00"),
		"no kind":       signed(`<notification><timestamp>2024-01-02T03:04:05Z</timestamp></notification>`),
		"no timestamp":  signed(`<notification><kind>check</kind></notification>`),
		"id too long":   signed(`<notification><kind>k</kind><timestamp>2024-01-02T03:04:05Z</timestamp><subject><dispute><id>` + strings.Repeat("x", 250) + `</id></dispute></subject></notification>`),
		"unprintable":   signed("<notification><kind>k</kind><timestamp>2024-01-02T03:04:05Z</timestamp><subject><dispute><id>a\tb</id></dispute></subject></notification>"),
		"bad base64":    form("p|00", "abc"),
		"bad character": form("p|00", "ab cd"),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := braintree.Parser{}.Parse(nil, body)
			assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err), "%v", err)
		})
	}
}

func TestEventID(t *testing.T) {
	loc := time.FixedZone("x", -5*3600)
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, loc)
	assert.Equal(t, "k:obj_1:2024-01-01T05:00:00Z", braintree.EventID(btnotify.Notification{Kind: "k", Identity: "obj_1", Digest: "00", Timestamp: at}))
	assert.Equal(t, "k:sha256:0123456789abcdef0123456789abcdef:2024-01-01T05:00:00Z",
		braintree.EventID(btnotify.Notification{Kind: "k", Digest: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Timestamp: at}),
		"without an identity, the first 32 hex digits of the digest")
}

// FuzzVerify feeds arbitrary bodies to the verifier: it must never panic,
// fail only with a signature code, and accept only bodies whose payload
// really is signed by the configured key (with or without the "\n" rule).
func FuzzVerify(f *testing.F) {
	f.Add(string(form("jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload)))
	f.Add(string(form("other|00&jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload)))
	f.Add("bt_signature=%zz")
	f.Add("bt_signature=&bt_payload=&bt_payload=")
	f.Add("bt_signature=a|b|c&&|&bt_payload=x;y")
	v := braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: "x", PrivateKey: "y"}, vecJKQ}}
	f.Fuzz(func(t *testing.T, body string) {
		err := v.Verify(nil, []byte(body), vecNow)
		if err != nil {
			assert.Contains(t, []domain.Code{domain.CodeSigMissing, domain.CodeSigMalformed, domain.CodeSigMismatch}, domain.ErrorCode(err))
			return
		}
		q, perr := url.ParseQuery(body)
		require.NoError(t, perr)
		payload := q.Get("bt_payload")
		sig := strings.ToLower(q.Get("bt_signature"))
		ok := strings.Contains(sig, strings.ToLower(braintree.ChallengeResponse(vecJKQ, payload))) ||
			strings.Contains(sig, strings.ToLower(braintree.ChallengeResponse(vecJKQ, payload+"\n")))
		assert.True(t, ok, "accepted a body the key did not sign")
	})
}

// FuzzParse feeds arbitrary verified bodies to the parser: no panic, only
// CodeEventMalformed, and an accepted envelope has a valid id and a type.
func FuzzParse(f *testing.F) {
	f.Add(string(form("jkq28pcxj4r85dwr|"+vecCheckSig, vecCheckPayload)))
	f.Add(string(form("my_public_key|"+vecSubSig, vecSubPayload)))
	f.Add("bt_payload=" + url.QueryEscape(braintree.EncodePayload([]byte(`<notification><kind>k</kind><timestamp>2024-01-02T03:04:05Z</timestamp><subject><x><id>1</id></x></subject></notification>`))))
	f.Add("bt_payload=%zz")
	f.Fuzz(func(t *testing.T, body string) {
		env, err := braintree.Parser{}.Parse(nil, []byte(body))
		if err != nil {
			assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
			return
		}
		assert.NoError(t, domain.CheckEventID("id", env.EventID))
		assert.NotEmpty(t, env.EventType)
		identity := env.ObjectID
		if identity == "" {
			identity = "sha256:"
		}
		assert.True(t, strings.HasPrefix(env.EventID, env.EventType+":"+identity), env.EventID)
		assert.Equal(t, env.Created, env.Created.UTC())
	})
}

// BenchmarkVerify verifies a subscription notification with a transaction
// as Braintree posts it (form-encoded, base64 XML).
func BenchmarkVerify(b *testing.B) {
	signed, err := samples.Sign(domain.Braintree, "bench_public:bench_private",
		samples.BraintreeSubscription("subscription_charged_successfully", "bt_sub_bench", vecNow), vecNow)
	require.NoError(b, err)
	body := signed.Body
	v := braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: "bench_public", PrivateKey: "bench_private"}}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(nil, body, vecNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyManyPairs refuses the attack of issue 16: a 400 KB
// payload with 1,000 pairs naming the configured public key.
func BenchmarkVerifyManyPairs(b *testing.B) {
	k := braintree.KeyPair{PublicKey: "bench_public", PrivateKey: "bench_private"}
	payload := strings.Repeat("QUJD", 100_000)
	sig := strings.Repeat(k.PublicKey+"|"+strings.Repeat("00", 20)+"&", 999) + k.PublicKey + "|" + strings.Repeat("00", 20)
	body := form(sig, payload)
	v := braintree.Verifier{Keys: []braintree.KeyPair{k}}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := v.Verify(nil, body, vecNow); err == nil {
			b.Fatal("verified")
		}
	}
}

// BenchmarkVerifyMaxPairs verifies a 400 KB payload whose good pair is the
// last of MaxPairs naming the key: the MACs are computed once.
func BenchmarkVerifyMaxPairs(b *testing.B) {
	k := braintree.KeyPair{PublicKey: "bench_public", PrivateKey: "bench_private"}
	payload := strings.Repeat("QUJD", 100_000)
	good := string(braintree.Sign(k, payload))
	q, _ := url.ParseQuery(good)
	sig := strings.Repeat(k.PublicKey+"|"+strings.Repeat("00", 20)+"&", braintree.MaxPairs-1) + q.Get("bt_signature")
	body := form(sig, payload)
	v := braintree.Verifier{Keys: []braintree.KeyPair{k}}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := v.Verify(nil, body, vecNow); err != nil {
			b.Fatal(err)
		}
	}
}
