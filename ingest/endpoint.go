package ingest

import (
	"fmt"
	"regexp"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/stripe"
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
	// Secrets are all valid at once, for rotation.
	Secrets []string `yaml:"secrets"`
	// Tolerance bounds a signed timestamp's distance from now, both ways.
	Tolerance time.Duration `yaml:"tolerance"`
	// Livemode, when set, makes events of the other mode "ignored".
	Livemode *bool `yaml:"livemode"`
	// MaxBodyBytes is the body limit; larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

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
	// Misconfigured, when set, is why the endpoint answers 500 to every
	// delivery (a *domain.Error, BILLFOLD-CONFIG-NO-SECRET).
	Misconfigured error
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
	if len(secrets) == 0 {
		e.Misconfigured = domain.Errorf(domain.CodeConfigNoSecret, "endpoint %s has no secret: set it in the config file or the provider's environment variable", c.Name)
	}
	switch c.Provider {
	case domain.Stripe:
		e.Verifier = stripe.Verifier{Secrets: secrets, Tolerance: e.Tolerance}
		e.Parser = stripe.Parser{}
	default:
		return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s: unknown provider %q", c.Name, c.Provider)
	}
	return e, nil
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
