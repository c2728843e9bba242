package braintree_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify/btfixtures"
	"github.com/billfold/billfold/ingest/braintree"
)

// The element that identifies the object of each kind the library's
// samples lay out otherwise than with <id>, read off
// webhook_testing_gateway.js; the id the script passed to the library is
// that element's value.
var namedByOtherElement = map[string]bool{
	"transaction_reviewed": true, "payment_method_revoked_by_customer": true, "granted_payment_method_revoked": true,
	"oauth_access_revoked": true, "local_payment_completed": true, "local_payment_expired": true,
	"local_payment_funded": true, "local_payment_reversed": true, "connected_merchant_status_transitioned": true,
	"connected_merchant_paypal_status_changed": true, "grantor_updated_granted_payment_method": true,
	"recipient_updated_granted_payment_method": true, "partner_merchant_connected": true,
	"partner_merchant_disconnected": true, "partner_merchant_declined": true,
}

// Every notification the official library signed verifies with its key
// pair and parses; each names the object it is about, so no two of them
// share an event id, and the same notification always gets the same id.
func TestLibraryNotifications(t *testing.T) {
	set := btfixtures.Load()
	key, err := braintree.ParseKeyPair(set.Secret())
	require.NoError(t, err)
	v := braintree.Verifier{Keys: []braintree.KeyPair{key}}
	ids := map[string]string{}
	for _, n := range set.Notifications {
		require.NoError(t, v.Verify(nil, n.Body(), vecNow), n.Name)
		env, err := braintree.Parser{}.Parse(nil, n.Body())
		require.NoError(t, err, n.Name)
		assert.Equal(t, n.Kind, env.EventType, n.Name)
		assert.Equal(t, n.At, env.Created.Format("2006-01-02T15:04:05Z"), n.Name)
		if other, dup := ids[env.EventID]; dup {
			t.Errorf("%s and %s share the event id %s", other, n.Name, env.EventID)
		}
		ids[env.EventID] = n.Name
		again, err := braintree.Parser{}.Parse(nil, n.Body())
		require.NoError(t, err)
		assert.Equal(t, env.EventID, again.EventID, "the same notification twice is one event")

		switch {
		case n.Kind == "check" || n.Kind == "account_updater_daily_report":
			assert.Regexp(t, `^`+n.Kind+`:sha256:[0-9a-f]{32}:`+n.At+`$`, env.EventID, "names no object")
		case strings.Contains(n.Name, "/obj_"), strings.HasPrefix(n.Kind, "subscription_"):
			assert.Equal(t, n.Kind+":"+n.ID+":"+n.At, env.EventID, n.Name)
			assert.Equal(t, n.ID, env.ObjectID, n.Name)
		}
	}
	for kind := range namedByOtherElement {
		assert.Contains(t, ids, kind+":obj_a:2026-01-01T00:00:00Z", "the library has a sample of %s", kind)
	}
}

// What the library signed does not verify once changed, nor with another
// private key under the same public key.
func TestLibraryNotificationsTamperedOrWronglyKeyed(t *testing.T) {
	set := btfixtures.Load()
	n := set.Named("transaction_reviewed/obj_a")
	good := braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: set.PublicKey, PrivateKey: set.PrivateKey}}}
	wrong := braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: set.PublicKey, PrivateKey: "not_" + set.PrivateKey}}}
	other := braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: "someone_else", PrivateKey: set.PrivateKey}}}
	tampered := n
	tampered.Payload = strings.Replace(n.Payload, "A", "B", 1)
	require.NotEqual(t, n.Payload, tampered.Payload)

	assert.NoError(t, good.Verify(nil, n.Body(), vecNow))
	assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(good.Verify(nil, tampered.Body(), vecNow)))
	assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(wrong.Verify(nil, n.Body(), vecNow)))
	assert.Equal(t, domain.CodeSigMismatch, domain.ErrorCode(other.Verify(nil, n.Body(), vecNow)))
}

// The challenge answer is the one the library's
// webhookNotification.verify(challenge) gives, with the first (current)
// key pair; a challenge the libraries would refuse is refused.
func TestLibraryChallenges(t *testing.T) {
	set := btfixtures.Load()
	require.NotEmpty(t, set.Challenges)
	current := braintree.KeyPair{PublicKey: set.PublicKey, PrivateKey: set.PrivateKey}
	v := braintree.Verifier{Keys: []braintree.KeyPair{current, {PublicKey: "old_public", PrivateKey: "old_private"}}}
	for _, c := range set.Challenges {
		got, err := v.Challenge(c.Challenge)
		require.NoError(t, err)
		assert.Equal(t, c.Response, got)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("a", 33), "20F9F8ED05F77439FE955C977E4C8A53", "20f9f8ed05f77439fe955c977e4c8a5z", "20f9f8ed05f7743 fe955c977e4c8a53"} {
		_, err := v.Challenge(bad)
		assert.Equal(t, domain.CodeChallengeInvalid, domain.ErrorCode(err), "%q", bad)
	}
	_, err := braintree.Verifier{}.Challenge(set.Challenges[0].Challenge)
	assert.Equal(t, domain.CodeConfigNoSecret, domain.ErrorCode(err))
}

// A signature may hold at most MaxPairs pairs; the good pair among many
// that name the same key still verifies.
func TestVerifyPairCap(t *testing.T) {
	set := btfixtures.Load()
	n := set.Named("subscription_went_active/obj_a")
	v := braintree.Verifier{Keys: []braintree.KeyPair{{PublicKey: set.PublicKey, PrivateKey: set.PrivateKey}}}
	bogus := set.PublicKey + "|" + strings.Repeat("00", sha1.Size)
	withPairs := func(count int) btfixtures.Notification {
		m := n
		m.Signature = strings.Repeat(bogus+"&", count-1) + n.Signature
		return m
	}
	assert.NoError(t, v.Verify(nil, withPairs(braintree.MaxPairs).Body(), vecNow))
	err := v.Verify(nil, withPairs(braintree.MaxPairs+1).Body(), vecNow)
	assert.Equal(t, domain.CodeSigMalformed, domain.ErrorCode(err))
	assert.Contains(t, err.Error(), "more than 16")
}

// The signatures in the file are what the scheme says: HMAC-SHA1 keyed
// with SHA-1 of the private key, over bt_payload as sent.
func TestLibrarySignatureScheme(t *testing.T) {
	set := btfixtures.Load()
	n := set.Named("check/obj_a")
	key := sha1.Sum([]byte(set.PrivateKey))
	m := hmac.New(sha1.New, key[:])
	m.Write([]byte(n.Payload))
	assert.Equal(t, set.PublicKey+"|"+hex.EncodeToString(m.Sum(nil)), n.Signature)
}
