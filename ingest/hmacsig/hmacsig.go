// Package hmacsig verifies generic HMAC webhook signatures, configured per
// endpoint (header, signed-string template, digest, encoding, prefix), and
// reads event envelopes from JSON bodies by configured field names. It also
// defines PactaPay, a fixed configuration of the same scheme whose payload
// fields domain/pactapaywire reads and checks.
//
// It owns the HMAC config format and its validation and the signed-string
// templates. The generic schemes (hmac endpoints, and Standard Webhooks in
// ingest/svix) are intake only: billfold journals their events, but no
// reducer folds them, so they have no wire package and no fold object.
// It must never do I/O, read the clock, or look at a body whose signature
// has not been verified. It does not import package ingest (which imports
// it); its types implement ingest.Verifier and ingest.Parser structurally.
package hmacsig

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/pactapaywire"
	"github.com/billfold/billfold/ingest/wire"
)

// Template placeholders.
const (
	PlaceholderBody      = "{body}"
	PlaceholderTimestamp = "{timestamp}"
)

// Defaults of the optional Config fields.
const (
	DefaultTemplate       = PlaceholderBody
	DefaultDigest         = "sha256"
	DefaultEncoding       = "hex"
	DefaultEventTypeField = "type"
)

// DefaultTolerance bounds a signed timestamp's distance from now when the
// Verifier does not say: five minutes either way.
const DefaultTolerance = 5 * time.Minute

// maxTimestampDigits bounds the timestamp header: Unix seconds fit in 19.
const maxTimestampDigits = 19

// Config describes one HMAC signing scheme and where its events keep their
// id, type and time. It is the `hmac:` block of an endpoint in the YAML
// config.
type Config struct {
	// SignatureHeader carries the signature, for example X-Hub-Signature-256.
	SignatureHeader string `yaml:"signature_header"`
	// TimestampHeader, when set, carries the signing time in Unix seconds;
	// it is then required on every delivery, must be signed (the template
	// holds {timestamp}) and is checked against the tolerance.
	TimestampHeader string `yaml:"timestamp_header"`
	// Template is the signed string: {body} is the raw body, {timestamp}
	// the timestamp header's value. Default "{body}".
	Template string `yaml:"template"`
	// Digest is sha256 (default), sha1 or sha512.
	Digest string `yaml:"digest"`
	// Encoding of the signature: hex (default, either case) or base64.
	Encoding string `yaml:"encoding"`
	// Prefix precedes the encoded signature in the header, for example
	// "sha256=" or "v0=".
	Prefix string `yaml:"prefix"`
	// EventIDField is the JSON field (dotted path allowed) holding the
	// event id; EventIDHeader a header holding it. Set exactly one.
	EventIDField  string `yaml:"event_id_field"`
	EventIDHeader string `yaml:"event_id_header"`
	// EventTypeField is the JSON field (dotted path allowed) holding the
	// event type. Default "type".
	EventTypeField string `yaml:"event_type_field"`
	// CreatedField, optional, is the JSON field (dotted path allowed)
	// holding the provider's time: Unix seconds or RFC 3339.
	CreatedField string `yaml:"created_field"`
	// CheckCreated, set by PactaPay, holds the created field of a verified
	// body to the tolerance, as a signed timestamp is: the field is inside
	// the signed body, so it is the scheme's only defence against an old
	// body replayed under a new event id. A body without the field passes
	// (the parser decides whether it is an event).
	CheckCreated bool `yaml:"-"`
}

// WithDefaults returns c with its empty optional fields set to their
// defaults and digest and encoding in lower case.
func (c Config) WithDefaults() Config {
	if c.Template == "" {
		c.Template = DefaultTemplate
	}
	c.Digest = strings.ToLower(c.Digest)
	if c.Digest == "" {
		c.Digest = DefaultDigest
	}
	c.Encoding = strings.ToLower(c.Encoding)
	if c.Encoding == "" {
		c.Encoding = DefaultEncoding
	}
	if c.EventTypeField == "" {
		c.EventTypeField = DefaultEventTypeField
	}
	return c
}

// Validate reports a config that cannot work as BILLFOLD-CONFIG-INVALID:
// no signature header, an unknown digest or encoding, a template without
// {body} or with an unknown placeholder, a timestamp that is not both in a
// header and signed, or not exactly one of event_id_field and
// event_id_header.
func (c Config) Validate() error {
	c = c.WithDefaults()
	invalid := func(format string, args ...any) error {
		return domain.Errorf(domain.CodeConfigInvalid, "hmac: "+format, args...)
	}
	if c.SignatureHeader == "" {
		return invalid("signature_header is required")
	}
	if newHash(c.Digest) == nil {
		return invalid("digest %q: want sha256, sha1 or sha512", c.Digest)
	}
	if c.Encoding != "hex" && c.Encoding != "base64" {
		return invalid("encoding %q: want hex or base64", c.Encoding)
	}
	if strings.Count(c.Template, PlaceholderBody) != 1 {
		return invalid("template %q must hold %s exactly once", c.Template, PlaceholderBody)
	}
	rest := strings.ReplaceAll(strings.ReplaceAll(c.Template, PlaceholderBody, ""), PlaceholderTimestamp, "")
	if i := strings.IndexByte(rest, '{'); i >= 0 && strings.IndexByte(rest[i:], '}') > 0 {
		return invalid("template %q: the only placeholders are %s and %s", c.Template, PlaceholderBody, PlaceholderTimestamp)
	}
	signsTimestamp := strings.Contains(c.Template, PlaceholderTimestamp)
	switch {
	case signsTimestamp && c.TimestampHeader == "":
		return invalid("template %q uses %s but timestamp_header is not set", c.Template, PlaceholderTimestamp)
	case !signsTimestamp && c.TimestampHeader != "":
		return invalid("timestamp_header %s is set but the template does not sign %s; an unsigned timestamp protects nothing", c.TimestampHeader, PlaceholderTimestamp)
	}
	switch {
	case c.EventIDField == "" && c.EventIDHeader == "":
		return invalid("set event_id_field or event_id_header: billfold dedupes by event id")
	case c.EventIDField != "" && c.EventIDHeader != "":
		return invalid("set only one of event_id_field and event_id_header")
	}
	return nil
}

func newHash(digest string) func() hash.Hash {
	switch digest {
	case "sha256":
		return sha256.New
	case "sha1":
		return sha1.New
	case "sha512":
		return sha512.New
	}
	return nil
}

// PactaPay is PactaPay's scheme: X-Pactapay-Signature: sha256=<hex>, the
// HMAC-SHA256 of the raw body; event id in JSON id, type in event, time in
// the optional timestamp, which is held to the tolerance (PactaPay's guide
// refuses payloads more than five minutes old).
func PactaPay() Config {
	return Config{
		SignatureHeader: "X-Pactapay-Signature",
		Template:        PlaceholderBody,
		Digest:          "sha256",
		Encoding:        "hex",
		Prefix:          "sha256=",
		EventIDField:    pactapaywire.FieldID,
		EventTypeField:  pactapaywire.FieldType,
		CreatedField:    pactapaywire.FieldCreated,
		CheckCreated:    true,
	}
}

// mac returns the HMAC of the template filled with ts and body. c must
// have its defaults.
func mac(c Config, secret, ts string, body []byte) []byte {
	m := hmac.New(newHash(c.Digest), []byte(secret))
	tmpl := c.Template
	for tmpl != "" {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			m.Write([]byte(tmpl))
			break
		}
		m.Write([]byte(tmpl[:i]))
		tmpl = tmpl[i:]
		switch {
		case strings.HasPrefix(tmpl, PlaceholderBody):
			m.Write(body)
			tmpl = tmpl[len(PlaceholderBody):]
		case strings.HasPrefix(tmpl, PlaceholderTimestamp):
			m.Write([]byte(ts))
			tmpl = tmpl[len(PlaceholderTimestamp):]
		default:
			m.Write([]byte{'{'})
			tmpl = tmpl[1:]
		}
	}
	return m.Sum(nil)
}

func encode(c Config, sum []byte) string {
	if c.Encoding == "base64" {
		return base64.StdEncoding.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}

func decode(c Config, s string) ([]byte, bool) {
	var b []byte
	var err error
	if c.Encoding == "base64" {
		b, err = base64.StdEncoding.DecodeString(s)
	} else {
		b, err = hex.DecodeString(s)
	}
	return b, err == nil && len(b) == newHash(c.Digest)().Size()
}

// Sign returns the headers that sign body with secret under c at ts: the
// signature header (prefix included) and, when c has one, the timestamp
// header in Unix seconds. For tests and tools.
func Sign(c Config, secret string, ts time.Time, body []byte) (headers map[string]string) {
	c = c.WithDefaults()
	t := strconv.FormatInt(ts.Unix(), 10)
	headers = map[string]string{c.SignatureHeader: c.Prefix + encode(c, mac(c, secret, t, body))}
	if c.TimestampHeader != "" {
		headers[c.TimestampHeader] = t
	}
	return headers
}

// Verifier verifies signatures of one HMAC scheme against a set of
// secrets, any of which may match (secret rotation).
type Verifier struct {
	// Config must be valid (Config.Validate).
	Config  Config
	Secrets []string
	// Tolerance bounds the signed timestamp's distance from now, in both
	// directions, when the scheme has a timestamp; zero means
	// DefaultTolerance.
	Tolerance time.Duration
}

// Verify implements ingest.Verifier. The signature header holds one
// signature, or several separated by commas or spaces (a sender rolling
// its secret); each must carry the configured prefix. The signature is
// checked before the timestamp's age, so a forged request learns nothing
// about billfold's clock.
func (v Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	c := v.Config.WithDefaults()
	if newHash(c.Digest) == nil {
		return domain.Errorf(domain.CodeConfigInvalid, "hmac: digest %q: want sha256, sha1 or sha512", c.Digest)
	}
	value, err := single(h, c.SignatureHeader)
	if err != nil {
		return err
	}
	var ts string
	var t int64
	if c.TimestampHeader != "" {
		if ts, err = single(h, c.TimestampHeader); err != nil {
			return err
		}
		var ok bool
		if t, ok = parseTimestamp(ts); !ok {
			return domain.Errorf(domain.CodeSigMalformed, "%s is not Unix seconds", c.TimestampHeader)
		}
	}
	var sigs [][]byte
	for _, entry := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' }) {
		enc, ok := strings.CutPrefix(entry, c.Prefix)
		if !ok {
			continue
		}
		if b, ok := decode(c, enc); ok {
			sigs = append(sigs, b)
		}
	}
	if len(sigs) == 0 {
		return domain.Errorf(domain.CodeSigMalformed, "%s holds no %s%s %s signature", c.SignatureHeader, c.Prefix, c.Encoding, c.Digest)
	}
	if !v.matches(c, ts, body, sigs) {
		return domain.Errorf(domain.CodeSigMismatch, "no configured secret produces the signature")
	}
	if c.TimestampHeader != "" {
		return wire.CheckTimestamp(t, now, v.tolerance())
	}
	if c.CheckCreated {
		return checkCreated(c, body, now, v.tolerance())
	}
	return nil
}

// checkCreated holds a verified body's created field to the tolerance:
// older is BILLFOLD-EVENT-TOO-OLD, newer BILLFOLD-EVENT-TOO-NEW. A body
// that is not a JSON object, or whose field is missing or unreadable,
// passes here and is judged by the parser.
func checkCreated(c Config, body []byte, now time.Time, tolerance time.Duration) error {
	m, err := wire.DecodeObject(body)
	if err != nil {
		return nil
	}
	v, ok := wire.Lookup(m, c.CreatedField)
	if !ok || v == nil {
		return nil
	}
	created, ok := parseTime(v)
	if !ok {
		return nil
	}
	err = wire.CheckTimestamp(created.Unix(), now, tolerance)
	switch domain.ErrorCode(err) {
	case domain.CodeSigTooOld:
		return domain.Errorf(domain.CodeEventTooOld, "payload %s: %s", c.CreatedField, domain.ErrorMessage(err))
	case domain.CodeSigTooNew:
		return domain.Errorf(domain.CodeEventTooNew, "payload %s: %s", c.CreatedField, domain.ErrorMessage(err))
	}
	return err
}

func (v Verifier) tolerance() time.Duration {
	if v.Tolerance <= 0 {
		return DefaultTolerance
	}
	return v.Tolerance
}

func (v Verifier) matches(c Config, ts string, body []byte, sigs [][]byte) bool {
	for _, secret := range v.Secrets {
		want := mac(c, secret, ts, body)
		for _, got := range sigs {
			if hmac.Equal(want, got) {
				return true
			}
		}
	}
	return false
}

// single returns the one value of header name: missing is
// BILLFOLD-SIG-MISSING, repeated BILLFOLD-SIG-MALFORMED.
func single(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) > 1:
		return "", domain.Errorf(domain.CodeSigMalformed, "more than one %s header", name)
	case len(vs) == 0 || vs[0] == "":
		return "", domain.Errorf(domain.CodeSigMissing, "no %s header", name)
	}
	return vs[0], nil
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

// Parser reads event envelopes from JSON bodies by the configured fields.
type Parser struct {
	// Config must be valid (Config.Validate).
	Config Config
}

// Parse implements ingest.Parser. The body must be a JSON object. The id
// comes from the configured header or field (a string, or an integer kept
// as its decimal text), the type from the type field (a string). Created
// is read from the created field when configured and present, and is zero
// otherwise; a created field of another form is malformed.
func (p Parser) Parse(h http.Header, body []byte) (domain.Envelope, error) {
	c := p.Config.WithDefaults()
	m, err := wire.DecodeObject(body)
	if err != nil {
		return domain.Envelope{}, err
	}
	var env domain.Envelope
	if c.EventIDHeader != "" {
		vs := h.Values(c.EventIDHeader)
		if len(vs) > 1 {
			return domain.Envelope{}, domain.Errorf(domain.CodeEventMalformed, "more than one %s header", c.EventIDHeader)
		}
		env.EventID = h.Get(c.EventIDHeader)
		if err := domain.CheckEventID(c.EventIDHeader, env.EventID); err != nil {
			return domain.Envelope{}, err
		}
	} else {
		v, _ := wire.Lookup(m, c.EventIDField)
		switch id := v.(type) {
		case string:
			env.EventID = id
		case json.Number:
			if _, err := strconv.ParseInt(id.String(), 10, 64); err == nil {
				env.EventID = id.String()
			}
		}
		if err := domain.CheckEventID(c.EventIDField, env.EventID); err != nil {
			return domain.Envelope{}, err
		}
	}
	typ, _ := wire.Lookup(m, c.EventTypeField)
	s, ok := typ.(string)
	if !ok {
		return domain.Envelope{}, domain.Errorf(domain.CodeEventMalformed, "field %s is missing or invalid", c.EventTypeField)
	}
	if err := domain.CheckEventType(c.EventTypeField, s); err != nil {
		return domain.Envelope{}, err
	}
	env.EventType = s
	if c.CreatedField != "" {
		if v, ok := wire.Lookup(m, c.CreatedField); ok && v != nil {
			if env.Created, ok = parseTime(v); !ok {
				return domain.Envelope{}, domain.Errorf(domain.CodeEventMalformed, "field %s is neither Unix seconds nor RFC 3339", c.CreatedField)
			}
		}
	}
	return env, nil
}

// parseTime reads Unix seconds (a JSON integer or a string of digits) or
// an RFC 3339 string; the time must be after the epoch.
func parseTime(v any) (time.Time, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return time.Time{}, false
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs <= 0 || secs > 1<<40 {
			return time.Time{}, false
		}
		return time.Unix(secs, 0).UTC(), true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Unix() <= 0 {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// PactaPayPaymentTypes are the PactaPay event types whose payment fields
// billfold requires (pactapaywire.PaymentTypes).
var PactaPayPaymentTypes = pactapaywire.PaymentTypes

// PactaPayParser reads PactaPay events: the PactaPay() fields, the payment
// they are about (ObjectKind "payment", ObjectID payment_id), and for the
// payment types the fields reducers rely on, all of which
// domain/pactapaywire knows.
type PactaPayParser struct{}

// Parse implements ingest.Parser. Other event types are journaled with
// whatever they carry; payment.completed, payment.failed and
// payment.refunded need id and payment_id (strings), amount (an integer,
// minor units) and currency (a string). A field missing or of the wrong
// type is BILLFOLD-EVENT-MALFORMED naming it.
func (PactaPayParser) Parse(h http.Header, body []byte) (domain.Envelope, error) {
	env, err := Parser{Config: PactaPay()}.Parse(h, body)
	if err != nil {
		return domain.Envelope{}, err
	}
	pe, err := pactapaywire.DecodeEnvelope(body)
	if err != nil {
		return domain.Envelope{}, domain.Wrap(domain.CodeEventMalformed, err, "event JSON does not decode")
	}
	if err := pe.Check(env.EventType); err != nil {
		return domain.Envelope{}, err
	}
	if env.ObjectID = pe.Payment(); env.ObjectID != "" {
		env.ObjectKind = pactapaywire.ObjectKind
	}
	return env, nil
}
