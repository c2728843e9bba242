package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
)

func TestSubjectToken(t *testing.T) {
	cases := map[string]string{
		"evt_1NmxA2":     "evt_1NmxA2",
		"msg_p5jXN8AQ":   "msg_p5jXN8AQ",
		"a.b":            "~YS5i",
		"*":              "~Kg",
		">":              "~Pg",
		"with space":     "~d2l0aCBzcGFjZQ",
		"":               "~",
		"_unverified":    "~X3VudmVyaWZpZWQ",
		"~looks-encoded": "~fmxvb2tzLWVuY29kZWQ",
	}
	for id, want := range cases {
		assert.Equal(t, want, domain.SubjectToken(id), id)
		back, ok := domain.ParseSubjectToken(want)
		assert.True(t, ok, id)
		assert.Equal(t, id, back)
	}
}

// FuzzSubjectToken: every id maps to one valid subject token, and back.
func FuzzSubjectToken(f *testing.F) {
	for _, s := range []string{"evt_1", "a.b.c", "", "~", "_x", "é", "a b\tc>*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		tok := domain.SubjectToken(id)
		require.NotEmpty(t, tok)
		assert.False(t, strings.ContainsAny(tok, ".*> \t\r\n"), "token %q", tok)
		back, ok := domain.ParseSubjectToken(tok)
		assert.True(t, ok)
		assert.Equal(t, id, back)
	})
}

func TestEnvelopeHeaderRoundTrip(t *testing.T) {
	live := true
	env := domain.Envelope{
		Provider: domain.Stripe, Endpoint: "stripe", EventID: "evt_1", EventType: "invoice.paid",
		Created: time.Unix(1700000000, 0).UTC(), Received: time.Unix(1700000001, 5).UTC(), RequestID: "req_1",
		Livemode: &live, Verification: domain.VerifiedSignature, ObjectKind: "invoice", ObjectID: "in_1",
	}
	h := map[string][]string{}
	env.EncodeHeader(h)
	got, err := domain.DecodeEnvelope(h, []byte(`{}`), 42)
	require.NoError(t, err)
	want := env
	want.Sequence, want.Body = 42, []byte(`{}`)
	assert.Equal(t, want, got)

	_, err = domain.DecodeEnvelope(map[string][]string{}, nil, 1)
	assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
}

func TestErrorCode(t *testing.T) {
	assert.Equal(t, domain.Code(""), domain.ErrorCode(nil))
	assert.Equal(t, domain.CodeInternal, domain.ErrorCode(assert.AnError))
	err := domain.Wrap(domain.CodeJournalUnavailable, assert.AnError, "append")
	assert.Equal(t, domain.CodeJournalUnavailable, domain.ErrorCode(err))
	assert.ErrorIs(t, err, assert.AnError)
	assert.Equal(t, "append", domain.ErrorMessage(err))
	assert.Equal(t, "internal error", domain.ErrorMessage(assert.AnError))
}

// Ids and types are checked alike: what passes survives the journal's
// NATS headers unchanged (they trim spaces and turn line breaks into
// spaces), so the journaled envelope names what was verified.
func TestCheckEventIDAndType(t *testing.T) {
	for _, good := range []string{"evt_1", "a b", "subscription_went_active:sub_1:2024-01-02T03:04:05Z", "é"} {
		assert.NoError(t, domain.CheckEventID("id", good), "%q", good)
		assert.NoError(t, domain.CheckEventType("type", good), "%q", good)
	}
	for _, bad := range []string{"", strings.Repeat("a", 256), "evt\x00", "evt\uFFFD", "evt\xff",
		" evt_1", "evt_1 ", "customer.created\n", "a\r\nb", "\tx"} {
		assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(domain.CheckEventID("id", bad)), "%q", bad)
		assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(domain.CheckEventType("type", bad)), "%q", bad)
	}
}

// Invariant 2: unsigned intake and the test bypass are journaled in
// namespaces of their own, so the same id never collides across trust
// levels, while the records they touch stay keyed by the provider.
func TestTrustLevelsNeverShareANamespace(t *testing.T) {
	subjects := map[string]domain.Verification{}
	for _, v := range []domain.Verification{domain.VerifiedSignature, domain.VerifiedUnsigned, domain.VerifiedBypass} {
		env := domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: "evt_shared1", Verification: v}
		_, taken := subjects[env.JournalSubject()]
		assert.False(t, taken, "%s shares a journal subject with %s", v, subjects[env.JournalSubject()])
		subjects[env.JournalSubject()] = v
		assert.Equal(t, "stripe", env.Namespace(), "records stay keyed by the provider")
		d := domain.Delivery{Provider: domain.Stripe, Endpoint: "stripe", EventID: "evt_shared1", Verification: v}
		assert.Equal(t, domain.DeliverySubject(env.EventNamespace(), "evt_shared1"), d.Subject())
	}
	assert.Equal(t, "stripe", domain.EventNamespace(domain.Stripe, "stripe", domain.VerifiedSignature))
	assert.Equal(t, "stripe~unsigned", domain.EventNamespace(domain.Stripe, "in-x", domain.VerifiedUnsigned))
	assert.Equal(t, "hooks~bypass", domain.EventNamespace(domain.HMAC, "hooks", domain.VerifiedBypass))
	assert.Equal(t, domain.VerifiedBypass, domain.LeastTrusted(domain.VerifiedUnsigned, domain.VerifiedBypass))
	assert.Equal(t, domain.VerifiedUnsigned, domain.LeastTrusted(domain.VerifiedSignature, domain.VerifiedUnsigned))
	assert.Equal(t, domain.VerifiedSignature, domain.LeastTrusted("", domain.VerifiedSignature))
}
