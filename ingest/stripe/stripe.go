// Package stripe verifies Stripe webhook signatures and reads the envelope of
// Stripe events.
//
// It owns the Stripe-Signature header format and the event envelope fields
// billfold journals. It must never do I/O, read the clock, or look at a body
// whose signature has not been verified.
package stripe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/stripewire"
	"github.com/billfold/billfold/ingest/wire"
)

// SignatureHeader is the header Stripe signs deliveries with.
const SignatureHeader = "Stripe-Signature"

// DefaultTolerance is Stripe's own default: five minutes either way.
const DefaultTolerance = 300 * time.Second

// Signature is a parsed Stripe-Signature header.
type Signature struct {
	// Timestamp is the t= value, in Unix seconds.
	Timestamp int64
	// V1 holds every decodable v1= signature; Stripe sends several while a
	// secret is being rolled.
	V1 [][]byte
}

// ParseHeader parses a Stripe-Signature header value. Entries other than t
// and v1 (v0, future schemes) are ignored, as are v1 values that are not
// hex, matching stripe-go.
func ParseHeader(value string) (Signature, error) {
	var sig Signature
	if value == "" {
		return sig, domain.Errorf(domain.CodeSigMissing, "no %s header", SignatureHeader)
	}
	haveT := false
	for _, pair := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return Signature{}, domain.Errorf(domain.CodeSigMalformed, "%s entry without '='", SignatureHeader)
		}
		switch k {
		case "t":
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Signature{}, domain.Errorf(domain.CodeSigMalformed, "%s timestamp is not an integer", SignatureHeader)
			}
			sig.Timestamp, haveT = t, true
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sig.V1 = append(sig.V1, b)
			}
		}
	}
	if !haveT {
		return Signature{}, domain.Errorf(domain.CodeSigMalformed, "%s has no timestamp", SignatureHeader)
	}
	if len(sig.V1) == 0 {
		return Signature{}, domain.Errorf(domain.CodeSigMalformed, "%s has no v1 signature", SignatureHeader)
	}
	return sig, nil
}

// Sign returns the v1 signature of body at timestamp t with secret: the hex
// HMAC-SHA256 of "<t>.<body>" keyed with the secret string's bytes,
// "whsec_" prefix included.
func Sign(secret string, t int64, body []byte) string {
	return hex.EncodeToString(mac(secret, t, body))
}

func mac(secret string, t int64, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	var buf [20]byte
	m.Write(strconv.AppendInt(buf[:0], t, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verifier verifies Stripe-Signature headers against a set of secrets, any of
// which may match (secret rotation).
type Verifier struct {
	Secrets []string
	// Tolerance bounds the signed timestamp's distance from now, in both
	// directions; zero means DefaultTolerance.
	Tolerance time.Duration
}

// Verify implements ingest.Verifier. The signature is checked before the
// timestamp so that a forged header is reported as a mismatch whatever time
// it claims, and an old timestamp is only reported for a genuine signature.
func (v Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	if len(h.Values(SignatureHeader)) > 1 {
		// Which one would Stripe have meant? Refuse rather than guess.
		return domain.Errorf(domain.CodeSigMalformed, "more than one %s header", SignatureHeader)
	}
	sig, err := ParseHeader(h.Get(SignatureHeader))
	if err != nil {
		return err
	}
	if !v.matches(sig, body) {
		return domain.Errorf(domain.CodeSigMismatch, "no configured secret produces the v1 signature")
	}
	return wire.CheckTimestamp(sig.Timestamp, now, v.tolerance())
}

func (v Verifier) tolerance() time.Duration {
	if v.Tolerance <= 0 {
		return DefaultTolerance
	}
	return v.Tolerance
}

func (v Verifier) matches(sig Signature, body []byte) bool {
	for _, secret := range v.Secrets {
		want := mac(secret, sig.Timestamp, body)
		for _, got := range sig.V1 {
			if hmac.Equal(want, got) {
				return true
			}
		}
	}
	return false
}

// Parser reads Stripe event envelopes.
type Parser struct{}

// Parse implements ingest.Parser. It needs a JSON object with a string id
// and type; created, livemode and data.object.{id,object} are read when
// present and of the right type. A Connect event's account must be a
// journalable string; the request id (request.id, or request itself in
// old API versions) is kept when it is one.
func (Parser) Parse(_ http.Header, body []byte) (domain.Envelope, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return domain.Envelope{}, domain.Errorf(domain.CodeEventMalformed, "body is not a JSON object")
	}
	ev, err := stripewire.DecodeEnvelope(body)
	if err != nil {
		return domain.Envelope{}, domain.Wrap(domain.CodeEventMalformed, err, "event JSON does not decode")
	}
	if err := domain.CheckEventID("id", ev.ID); err != nil {
		return domain.Envelope{}, err
	}
	if err := domain.CheckEventType("type", ev.Type); err != nil {
		return domain.Envelope{}, err
	}
	if ev.Account != "" {
		if err := domain.CheckEventID("account", ev.Account); err != nil {
			return domain.Envelope{}, err
		}
	}
	env := domain.Envelope{
		EventID:           ev.ID,
		EventType:         ev.Type,
		Livemode:          ev.Livemode,
		ObjectKind:        ev.Data.Object.Kind,
		ObjectID:          ev.Data.Object.ID,
		Account:           ev.Account,
		ProviderRequestID: domain.ProviderText(ev.RequestID()),
	}
	if ev.Created > 0 {
		env.Created = time.Unix(ev.Created, 0).UTC()
	}
	return env, nil
}
