package ingest

import (
	"fmt"
	"regexp"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/stripe"
	"github.com/billfold/billfold/ingest/svix"
)

// DefaultMaxBodyBytes is an endpoint's default body limit.
const DefaultMaxBodyBytes = 1 << 20

// DefaultTolerance is an endpoint's default timestamp tolerance.
const DefaultTolerance = 5 * time.Minute

// EndpointConfig describes one webhook endpoint, as the YAML config or the
// conventional environment variables give it.
type EndpointConfig struct {
	// Name is the endpoint's path segment: /webhooks/{name}.
	Name string `yaml:"name"`
	// Provider picks the verification scheme and payload format.
	Provider domain.Provider `yaml:"provider"`
	// Secrets are all valid at once, for rotation. Their form depends on
	// the provider: Stripe and hmac take the secret string as is, clerk and
	// standard a "whsec_<base64>" secret, braintree "public_key:private_key".
	Secrets []string `yaml:"secrets"`
	// Tolerance bounds a signed timestamp's distance from now, both ways.
	Tolerance time.Duration `yaml:"tolerance"`
	// Livemode, when set, makes events of the other mode "ignored".
	Livemode *bool `yaml:"livemode"`
	// MaxBodyBytes is the body limit; larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Unsigned accepts deliveries without any signature, for a sender that
	// cannot sign yet. It requires a name of at least MinUnsignedNameLength
	// random characters (the name is then the only secret) and no secrets.
	Unsigned bool `yaml:"unsigned"`
	// UnsignedCredits lets this endpoint's unsigned (or test-bypassed)
	// deliveries credit and debit wallets. Without it the wallets
	// projection ignores them: only signed input moves credits.
	UnsignedCredits bool `yaml:"unsigned_credits"`
	// HMAC describes the scheme of a provider hmac endpoint (required
	// there, refused elsewhere).
	HMAC *hmacsig.Config `yaml:"hmac"`
	// TypeField is the JSON field (dotted path allowed) holding the event
	// type for provider standard; default "type". Refused elsewhere.
	TypeField string `yaml:"type_field"`
	// Connect marks a Stripe Connect endpoint: Stripe sends it the events
	// of the platform's connected accounts, each with its account, signed
	// with the endpoint's own secret. Refused for other providers.
	Connect bool `yaml:"connect"`
}

// MinUnsignedNameLength is the shortest name an unsigned endpoint may have.
const MinUnsignedNameLength = 32

var endpointName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Endpoint is a configured webhook endpoint, ready to receive.
type Endpoint struct {
	Name     string
	Provider domain.Provider
	Verifier Verifier
	Parser   Parser
	Livemode *bool
	MaxBody  int64
	// Tolerance is reported by doctor; the verifier enforces it.
	Tolerance time.Duration
	// Secrets is how many secrets the endpoint verifies with (more than
	// one while rotating). Only the count is kept here, for doctor: the
	// values live in the Verifier alone.
	Secrets int
	// Misconfigured, when set, is why the endpoint answers 500 to every
	// delivery (a *domain.Error, BILLFOLD-CONFIG-NO-SECRET).
	Misconfigured error
	// Unsigned endpoints have no Verifier; every delivery is journaled
	// with verification "unsigned".
	Unsigned bool
	// Challenger, when set, answers the provider's verification challenge
	// on GET (Braintree's bt_challenge).
	Challenger Challenger
	// Connect is a Stripe Connect endpoint's: events of connected accounts
	// are journaled with their account. Any other endpoint answers one
	// "ignored" (BILLFOLD-ACCOUNT-MISMATCH), as for a livemode mismatch.
	Connect bool
}

// Label is how the endpoint is shown in metric labels, logs and the
// delivery log: its name, or for an unsigned endpoint, whose name is its
// only secret, domain.UnsignedLabel of it.
func (e *Endpoint) Label() string {
	if e.Unsigned {
		return domain.UnsignedLabel(e.Name)
	}
	return e.Name
}

// NewEndpoint builds an endpoint from its configuration. A malformed
// configuration is an error (BILLFOLD-CONFIG-INVALID); a missing secret is
// not: the endpoint is built Misconfigured so it answers 500 and the
// operator sees why, rather than 404 that a provider would keep retrying
// blindly.
func NewEndpoint(c EndpointConfig) (*Endpoint, error) {
	if !endpointName.MatchString(c.Name) {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint name %q: want 1-128 of A-Z a-z 0-9 _ -", c.Name)
	}
	if c.Tolerance < 0 || c.MaxBodyBytes < 0 {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: tolerance and max_body_bytes must not be negative", c.Name)
	}
	e := &Endpoint{
		Name:      c.Name,
		Provider:  c.Provider,
		Livemode:  c.Livemode,
		MaxBody:   c.MaxBodyBytes,
		Tolerance: c.Tolerance,
	}
	if e.MaxBody == 0 {
		e.MaxBody = DefaultMaxBodyBytes
	}
	if e.Tolerance == 0 {
		e.Tolerance = DefaultTolerance
	}
	secrets := nonEmpty(c.Secrets)
	e.Secrets = len(secrets)
	if c.Unsigned {
		if err := checkUnsignedName(c.Name); err != nil {
			return nil, err
		}
		if len(secrets) > 0 {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: unsigned endpoints take no secrets; remove one or the other", c.Name)
		}
		e.Unsigned = true
	} else if len(secrets) == 0 {
		e.Misconfigured = domain.Errorf(domain.CodeConfigNoSecret, "endpoint %s has no secret: set it in the config file or the provider's environment variable", c.Name)
	}
	if c.HMAC != nil && c.Provider != domain.HMAC {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: an hmac block belongs to provider hmac only", c.Name)
	}
	if c.TypeField != "" && c.Provider != domain.Standard {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: type_field belongs to provider standard only", c.Name)
	}
	if c.Connect && c.Provider != domain.Stripe {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: connect belongs to provider stripe only", c.Name)
	}
	e.Connect = c.Connect
	switch c.Provider {
	case domain.Stripe:
		e.Verifier = stripe.Verifier{Secrets: secrets, Tolerance: e.Tolerance}
		e.Parser = stripe.Parser{}
	case domain.Braintree:
		keys := make([]braintree.KeyPair, 0, len(secrets))
		for i, s := range secrets {
			k, err := braintree.ParseKeyPair(s)
			if err != nil {
				return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: secret %d: %s", c.Name, i+1, domain.ErrorMessage(err))
			}
			keys = append(keys, k)
		}
		v := braintree.Verifier{Keys: keys}
		e.Verifier = v
		if !e.Unsigned { // without a key there is nothing to prove
			e.Challenger = v
		}
		e.Parser = braintree.Parser{}
	case domain.Clerk, domain.Standard:
		for i, s := range secrets {
			if _, err := svix.ParseSecret(s); err != nil {
				return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: secret %d: %s", c.Name, i+1, domain.ErrorMessage(err))
			}
		}
		e.Verifier = svix.Verifier{Secrets: secrets, Tolerance: e.Tolerance}
		if c.Provider == domain.Clerk {
			e.Parser = svix.ClerkParser{}
		} else {
			e.Parser = svix.StandardParser{TypeField: c.TypeField}
		}
	case domain.PactaPay:
		e.Verifier = hmacsig.Verifier{Config: hmacsig.PactaPay(), Secrets: secrets, Tolerance: e.Tolerance}
		e.Parser = hmacsig.PactaPayParser{}
	case domain.HMAC:
		if c.HMAC == nil {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: provider hmac needs an hmac block (signature_header, template, ...)", c.Name)
		}
		if err := c.HMAC.Validate(); err != nil {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: %s", c.Name, domain.ErrorMessage(err))
		}
		cfg := c.HMAC.WithDefaults()
		e.Verifier = hmacsig.Verifier{Config: cfg, Secrets: secrets, Tolerance: e.Tolerance}
		e.Parser = hmacsig.Parser{Config: cfg}
	default:
		return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: unknown provider %q", c.Name, c.Provider)
	}
	return e, nil
}

// checkUnsignedName requires an unsigned endpoint's name to be long and
// varied enough to be unguessable, since it is all that keeps strangers out.
func checkUnsignedName(name string) error {
	distinct := map[rune]bool{}
	for _, r := range name {
		distinct[r] = true
	}
	if len(name) < MinUnsignedNameLength || len(distinct) < 12 {
		return domain.Errorf(domain.CodeConfigInvalid,
			"endpoint %s: an unsigned endpoint needs a name of at least %d random characters (for example: openssl rand -hex 20)", name, MinUnsignedNameLength)
	}
	return nil
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// String is for logs; it never shows a secret.
func (e *Endpoint) String() string {
	return fmt.Sprintf("/webhooks/%s (%s)", e.Name, e.Provider)
}

// JournalHeaderRoom is the room a journal message keeps beside the body for
// its headers (provider, endpoint, event id and type, times, request id,
// verification, object): every one of them is bounded, so 8 KiB is ample.
const JournalHeaderRoom = 8 << 10

// JournalPayloadNeeded is the largest journal message any of endpoints can
// produce: its largest body limit plus JournalHeaderRoom. A NATS server
// whose max_payload is smaller would answer every body near that limit
// 503, and the provider would retry it until it gave up.
func JournalPayloadNeeded(endpoints []*Endpoint) int64 {
	return LargestBody(endpoints) + JournalHeaderRoom
}

// LargestBody is the largest body limit of endpoints, and at least
// DefaultMaxBodyBytes.
func LargestBody(endpoints []*Endpoint) int64 {
	var largest int64 = DefaultMaxBodyBytes
	for _, e := range endpoints {
		largest = max(largest, e.MaxBody)
	}
	return largest
}
