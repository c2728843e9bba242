// Package svix verifies Standard Webhooks signatures, the scheme Svix signs
// with on behalf of Clerk and many others, and reads the envelope of Clerk
// events and of any Standard Webhooks sender.
//
// It owns the webhook-id / webhook-timestamp / webhook-signature headers
// (and their svix-* twins), the whsec_ secret format, and the envelope
// fields billfold journals for these senders; a Clerk user's fields are
// domain/clerkwire's. A generic Standard Webhooks sender's events are
// intake only: journaled, but folded by no reducer, so they have no fold
// object and no wire package. It must never do I/O, read the
// clock, or look at a body whose signature has not been verified. It does
// not import package ingest (which imports it); its types implement
// ingest.Verifier and ingest.Parser structurally.
package svix

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/wire"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Header names Svix sends: the same three values under another prefix.
const (
	SvixHeaderID        = "svix-id"
	SvixHeaderTimestamp = "svix-timestamp"
	SvixHeaderSignature = "svix-signature"
)

// SecretPrefix starts every Standard Webhooks signing secret; the rest is
// the standard base64 of the HMAC key.
const SecretPrefix = "whsec_"

// DefaultTolerance is the specification's: five minutes either way.
const DefaultTolerance = 5 * time.Minute

// maxTimestampDigits bounds the timestamp header: Unix seconds fit in 19.
const maxTimestampDigits = 19

// Headers are the three values of one delivery, read from whichever header
// set it carries.
type Headers struct {
	ID        string
	Timestamp string
	Signature string
}

// ReadHeaders picks the header set of a delivery. The webhook-* set is used
// whenever any webhook-* header is present, otherwise the svix-* set; the
// two are never mixed, so a value cannot be smuggled in under the other
// prefix. A header repeated with several values is BILLFOLD-SIG-MALFORMED.
func ReadHeaders(h http.Header) (Headers, error) {
	names := [3]string{HeaderID, HeaderTimestamp, HeaderSignature}
	if h.Get(HeaderID) == "" && h.Get(HeaderTimestamp) == "" && h.Get(HeaderSignature) == "" {
		names = [3]string{SvixHeaderID, SvixHeaderTimestamp, SvixHeaderSignature}
	}
	var vals [3]string
	for i, n := range names {
		vs := h.Values(n)
		if len(vs) > 1 {
			return Headers{}, domain.Errorf(domain.CodeSigMalformed, "more than one %s header", n)
		}
		if len(vs) == 1 {
			vals[i] = vs[0]
		}
	}
	return Headers{ID: vals[0], Timestamp: vals[1], Signature: vals[2]}, nil
}

// ParseSecret returns the HMAC key of a secret: "whsec_" followed by
// standard base64, or the bare base64 alone. Unpadded base64 is accepted.
func ParseSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil || len(key) == 0 {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "a Standard Webhooks secret is %s followed by base64", SecretPrefix)
	}
	return key, nil
}

// Sign returns the signature header entry "v1,<base64>" of body with the
// given message id and timestamp: the HMAC-SHA256 of
// "<id>.<unix seconds>.<body>" keyed with the secret's decoded bytes.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(ts.Unix(), 10), body)), nil
}

func mac(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// parseTimestamp reads Unix seconds: decimal digits only, no sign.
func parseTimestamp(s string) (int64, bool) {
	if s == "" || len(s) > maxTimestampDigits {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	t, err := strconv.ParseInt(s, 10, 64)
	return t, err == nil
}

// signatures returns the decodable v1 entries of a signature header. Other
// versions (v1a, future ones) and undecodable entries are ignored.
func signatures(value string) [][]byte {
	var out [][]byte
	for _, entry := range strings.Fields(value) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && len(b) == sha256.Size {
			out = append(out, b)
		}
	}
	return out
}

// Verifier verifies Standard Webhooks signatures against a set of secrets,
// any of which may match (secret rotation).
type Verifier struct {
	// Secrets are "whsec_<base64>" (or bare base64); one that does not
	// decode never matches (ingest.NewEndpoint refuses it up front).
	Secrets []string
	// Tolerance bounds the signed timestamp's distance from now, in both
	// directions; zero means DefaultTolerance.
	Tolerance time.Duration
}

// Verify implements ingest.Verifier. The signature is checked before the
// timestamp's age, so a forged request is a mismatch whatever time it
// claims and learns nothing about billfold's clock.
func (v Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	hs, err := ReadHeaders(h)
	if err != nil {
		return err
	}
	switch {
	case hs.Signature == "":
		return domain.Errorf(domain.CodeSigMissing, "no %s header", HeaderSignature)
	case hs.ID == "":
		return domain.Errorf(domain.CodeSigMissing, "no %s header", HeaderID)
	case hs.Timestamp == "":
		return domain.Errorf(domain.CodeSigMissing, "no %s header", HeaderTimestamp)
	}
	ts, ok := parseTimestamp(hs.Timestamp)
	if !ok {
		return domain.Errorf(domain.CodeSigMalformed, "%s is not Unix seconds", HeaderTimestamp)
	}
	sigs := signatures(hs.Signature)
	if len(sigs) == 0 {
		return domain.Errorf(domain.CodeSigMalformed, "%s has no v1 signature", HeaderSignature)
	}
	if !v.matches(hs, body, sigs) {
		return domain.Errorf(domain.CodeSigMismatch, "no configured secret produces a v1 signature")
	}
	return wire.CheckTimestamp(ts, now, v.tolerance())
}

func (v Verifier) tolerance() time.Duration {
	if v.Tolerance <= 0 {
		return DefaultTolerance
	}
	return v.Tolerance
}

func (v Verifier) matches(hs Headers, body []byte, sigs [][]byte) bool {
	for _, secret := range v.Secrets {
		key, err := ParseSecret(secret)
		if err != nil {
			continue
		}
		want := mac(key, hs.ID, hs.Timestamp, body)
		for _, got := range sigs {
			if hmac.Equal(want, got) {
				return true
			}
		}
	}
	return false
}

// envelopeFromHeaders reads the event id and provider time every Standard
// Webhooks delivery carries in its headers.
func envelopeFromHeaders(h http.Header) (domain.Envelope, error) {
	hs, err := ReadHeaders(h)
	if err != nil {
		return domain.Envelope{}, domain.Errorf(domain.CodeEventMalformed, "%s", domain.ErrorMessage(err))
	}
	if err := domain.CheckEventID(HeaderID, hs.ID); err != nil {
		return domain.Envelope{}, err
	}
	// The message id is both the event id billfold dedupes by and the id
	// Svix's dashboard and API know the delivery by.
	env := domain.Envelope{EventID: hs.ID, ProviderRequestID: hs.ID}
	if ts, ok := parseTimestamp(hs.Timestamp); ok && ts > 0 {
		env.Created = time.Unix(ts, 0).UTC()
	}
	return env, nil
}

// eventType reads the event type from field: a string that passes
// domain.CheckEventType.
func eventType(m map[string]any, field string) (string, error) {
	v, _ := wire.Lookup(m, field)
	s, ok := v.(string)
	if !ok {
		return "", domain.Errorf(domain.CodeEventMalformed, "field %s is missing or invalid", field)
	}
	return s, domain.CheckEventType(field, s)
}

// ClerkParser reads Clerk events delivered through Svix.
type ClerkParser struct{}

// Parse implements ingest.Parser. The event id is the svix-id (or
// webhook-id) header, the type the JSON type field. Created is the
// payload's own timestamp (Unix milliseconds) when present, else the
// timestamp header. ObjectKind is data.object ("user" for user.* events
// that do not say), ObjectID data.id.
func (ClerkParser) Parse(h http.Header, body []byte) (domain.Envelope, error) {
	env, err := envelopeFromHeaders(h)
	if err != nil {
		return domain.Envelope{}, err
	}
	m, err := wire.DecodeObject(body)
	if err != nil {
		return domain.Envelope{}, err
	}
	if env.EventType, err = eventType(m, "type"); err != nil {
		return domain.Envelope{}, err
	}
	if n, ok := m["timestamp"].(json.Number); ok {
		if ms, err := n.Int64(); err == nil && ms > 0 {
			env.Created = time.UnixMilli(ms).UTC()
		}
	}
	if data, ok := m["data"].(map[string]any); ok {
		env.ObjectKind, _ = data["object"].(string)
		env.ObjectID, _ = data["id"].(string)
	}
	if env.ObjectKind == "" && strings.HasPrefix(env.EventType, "user.") {
		env.ObjectKind = "user"
	}
	return env, nil
}

// StandardParser reads events from any Standard Webhooks sender.
type StandardParser struct {
	// TypeField is the JSON field, or dotted path, holding the event
	// type; empty means "type".
	TypeField string
}

// Parse implements ingest.Parser. The event id is the webhook-id (or
// svix-id) header, the type the configured JSON field, Created the
// timestamp header.
func (p StandardParser) Parse(h http.Header, body []byte) (domain.Envelope, error) {
	env, err := envelopeFromHeaders(h)
	if err != nil {
		return domain.Envelope{}, err
	}
	m, err := wire.DecodeObject(body)
	if err != nil {
		return domain.Envelope{}, err
	}
	field := p.TypeField
	if field == "" {
		field = "type"
	}
	if env.EventType, err = eventType(m, field); err != nil {
		return domain.Envelope{}, err
	}
	return env, nil
}
