// Package braintree verifies Braintree webhook signatures, reads the
// envelope of Braintree notifications, and signs test deliveries.
//
// It owns the bt_signature format, the webhook key pairs, the challenge
// response and the derivation of event ids. It must never do I/O, read the
// clock, or look at a payload whose signature has not been verified; the XML
// itself is decoded by package domain/btnotify.
//
// # Keys
//
// An endpoint secret is written "public_key:private_key" (see ParseKeyPair).
// bt_signature holds "public_key|hex" pairs joined by '&'; a pair is checked
// when its public key is configured, and the hex must be the HMAC-SHA1 of the
// bt_payload value exactly as received (or, as the official libraries also
// accept, of that value with a "\n" appended), keyed with the raw SHA-1
// digest of the private key. Configure several pairs to rotate keys: any of
// them may match.
//
// # Replay protection
//
// Braintree signs no timestamp, so Verify has no tolerance window: a
// captured delivery verifies forever. Replays are absorbed by the journal's
// dedupe on the event id below, which is derived from signed content only.
//
// # Event ids
//
// Braintree sends no event id. billfold derives one from the signed
// notification:
//
//	<kind>:<identity>:<timestamp>
//
// where identity is the value of the subject element that identifies the
// object the kind is about (btnotify.IdentifyingElement: the subscription
// id, a transaction review's transaction-id, a payment method token, a
// merchant id, a payment id, ...), or, when the kind names no object (check,
// account_updater_daily_report) or the element is missing, "sha256:" and the
// first 32 hex digits of the SHA-256 of the notification XML. The timestamp
// is the notification's, in UTC, formatted RFC 3339 (with fractional
// seconds only when Braintree sent them), for example
// "subscription_charged_successfully:sub_123:2024-01-02T03:04:05Z". This id
// is the dedupe key and appears in API paths and journal subjects.
//
// Journals written before identities (when the middle was the subject's
// <id>, empty for kinds that have none) keep their ids: the journal holds
// each event's id, and neither the fold nor a replay derives it again.
//
// # Cost of verification
//
// A signature names public keys, which are not secret, so anyone can send
// many pairs naming a configured key. Verify refuses more than MaxPairs
// pairs, and computes the MACs of the payload once per configured key
// whatever the number of pairs that name it.
package braintree

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify"
)

// Form fields of a Braintree webhook request body.
const (
	SignatureField = btnotify.SignatureField
	PayloadField   = btnotify.PayloadField
)

// KeyPair is one Braintree API key pair.
type KeyPair struct {
	PublicKey  string
	PrivateKey string
}

// ParseKeyPair parses an endpoint secret written "public_key:private_key",
// split at the first ':'. Both halves must be non-empty; otherwise the error
// has code domain.CodeConfigInvalid and does not repeat the secret.
func ParseKeyPair(secret string) (KeyPair, error) {
	pub, priv, ok := strings.Cut(secret, ":")
	if !ok || pub == "" || priv == "" {
		return KeyPair{}, domain.Errorf(domain.CodeConfigInvalid, "a Braintree secret is written public_key:private_key, both non-empty")
	}
	return KeyPair{PublicKey: pub, PrivateKey: priv}, nil
}

// mac is the HMAC-SHA1 of the parts keyed with SHA-1 of the private key.
func (k KeyPair) mac(parts ...string) []byte {
	key := sha1.Sum([]byte(k.PrivateKey))
	m := hmac.New(sha1.New, key[:])
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// Sign returns a form-encoded request body carrying payload signed with k:
// "bt_signature=<pub>|<hex>&bt_payload=<payload>", URL-encoded, with the
// signature over payload exactly. payload is usually EncodePayload's output.
func Sign(k KeyPair, payload string) []byte {
	sig := k.PublicKey + "|" + hex.EncodeToString(k.mac(payload))
	return []byte(SignatureField + "=" + url.QueryEscape(sig) + "&" + PayloadField + "=" + url.QueryEscape(payload))
}

// EncodePayload encodes a notification XML document as Braintree does:
// standard base64 with a "\n" after every 60 characters and at the end.
func EncodePayload(xml []byte) string {
	enc := base64.StdEncoding.EncodeToString(xml)
	var b strings.Builder
	b.Grow(len(enc) + len(enc)/60 + 1)
	for len(enc) > 60 {
		b.WriteString(enc[:60])
		b.WriteByte('\n')
		enc = enc[60:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteByte('\n')
	}
	return b.String()
}

// ChallengeResponse answers Braintree's bt_challenge verification request:
// "<pub>|<hex HMAC-SHA1 of challenge>", as the official libraries'
// webhookNotification.verify(challenge) does.
func ChallengeResponse(k KeyPair, challenge string) string {
	return k.PublicKey + "|" + hex.EncodeToString(k.mac(challenge))
}

// CheckChallenge accepts a bt_challenge as the official libraries do: 20
// to 32 lowercase hex digits. Anything else is CodeChallengeInvalid.
func CheckChallenge(challenge string) error {
	if len(challenge) < 20 || len(challenge) > 32 {
		return domain.Errorf(domain.CodeChallengeInvalid, "bt_challenge has %d characters, not 20 to 32", len(challenge))
	}
	for i := 0; i < len(challenge); i++ {
		if c := challenge[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return domain.Errorf(domain.CodeChallengeInvalid, "bt_challenge has a character outside 0-9a-f at offset %d", i)
		}
	}
	return nil
}

// Challenge answers a bt_challenge with the verifier's current key pair,
// the first configured (see ChallengeResponse and CheckChallenge).
func (v Verifier) Challenge(challenge string) (string, error) {
	if err := CheckChallenge(challenge); err != nil {
		return "", err
	}
	if len(v.Keys) == 0 {
		return "", domain.Errorf(domain.CodeConfigNoSecret, "no Braintree key pair is configured")
	}
	return ChallengeResponse(v.Keys[0], challenge), nil
}

// MaxPairs is the most public_key|signature pairs a bt_signature may
// hold. Braintree sends one per API key pair of the merchant; a few keys
// are usual, and rotation needs two.
const MaxPairs = 16

// Verifier verifies bt_signature against a set of key pairs, any of which
// may match (key rotation).
type Verifier struct {
	Keys []KeyPair
}

// Verify implements ingest.Verifier. It reads the two form fields but never
// the XML. now is unused: Braintree signs no timestamp (see the package
// doc on replay protection). A body that is not a form, has a field twice,
// or has more than MaxPairs pairs is CodeSigMalformed; a missing or empty
// field is CodeSigMissing; no pair for a configured public key, or no pair
// that matches, is CodeSigMismatch.
func (v Verifier) Verify(_ http.Header, body []byte, _ time.Time) error {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return domain.Wrap(domain.CodeSigMalformed, err, "body is not a form")
	}
	sig, err := field(form, SignatureField)
	if err != nil {
		return err
	}
	payload, err := field(form, PayloadField)
	if err != nil {
		return err
	}
	if n := strings.Count(sig, "&") + 1; n > MaxPairs {
		return domain.Errorf(domain.CodeSigMalformed, "%s has %d pairs, more than %d", SignatureField, n, MaxPairs)
	}
	type pair struct{ pub, hex string }
	var pairs []pair
	for _, p := range strings.Split(sig, "&") {
		if pub, h, ok := strings.Cut(p, "|"); ok {
			pairs = append(pairs, pair{pub, h})
		}
	}
	if len(pairs) == 0 {
		return domain.Errorf(domain.CodeSigMalformed, "%s has no public_key|signature pair", SignatureField)
	}
	known := false
	for _, k := range v.Keys {
		var exact, newline []byte // computed once per key, when a pair names it
		for _, p := range pairs {
			if p.pub != k.PublicKey {
				continue
			}
			known = true
			got, err := hex.DecodeString(p.hex)
			if err != nil || len(got) != sha1.Size {
				continue
			}
			if exact == nil {
				exact, newline = k.mac(payload), k.mac(payload, "\n")
			}
			if hmac.Equal(got, exact) || hmac.Equal(got, newline) {
				return nil
			}
		}
	}
	if !known {
		return domain.Errorf(domain.CodeSigMismatch, "%s names no configured public key", SignatureField)
	}
	return domain.Errorf(domain.CodeSigMismatch, "no configured key pair produces the signature")
}

// field returns the single non-empty value of a signature form field.
func field(form url.Values, name string) (string, error) {
	vs := form[name]
	switch {
	case len(vs) > 1:
		// Which one would Braintree have meant? Refuse rather than guess.
		return "", domain.Errorf(domain.CodeSigMalformed, "more than one %s field", name)
	case len(vs) == 0 || vs[0] == "":
		return "", domain.Errorf(domain.CodeSigMissing, "no %s field", name)
	}
	return vs[0], nil
}

// Parser reads Braintree notification envelopes.
type Parser struct{}

// Parse implements ingest.Parser. It decodes the notification with
// btnotify.Decode and derives the event id as the package doc describes.
// ObjectKind is "subscription" for a subscription subject, otherwise the
// subject element's name ("" without a subject); ObjectID is the
// notification's identity (btnotify.Notification.Identity). Braintree does
// not say livemode, so Livemode is nil.
func (Parser) Parse(_ http.Header, body []byte) (domain.Envelope, error) {
	n, err := btnotify.Decode(body)
	if err != nil {
		return domain.Envelope{}, err
	}
	id := EventID(n)
	if err := domain.CheckEventID("kind:identity:timestamp", id); err != nil {
		return domain.Envelope{}, err
	}
	env := domain.Envelope{
		EventID:    id,
		EventType:  n.Kind,
		Created:    n.Timestamp,
		ObjectKind: n.SubjectKind,
		ObjectID:   n.Identity,
	}
	if n.Subscription != nil {
		env.ObjectKind = "subscription"
	}
	return env, nil
}

// EventID derives the billfold event id of a notification:
// "<kind>:<identity>:<timestamp RFC 3339 UTC>", the identity being
// "sha256:<32 hex digits of the XML's digest>" when the notification names
// no object.
func EventID(n btnotify.Notification) string {
	identity := n.Identity
	if identity == "" {
		identity = "sha256:" + n.Digest[:min(32, len(n.Digest))]
	}
	return n.Kind + ":" + identity + ":" + n.Timestamp.UTC().Format(time.RFC3339Nano)
}
