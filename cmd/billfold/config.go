package main

import (
	"bytes"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/reducers"
)

// fileConfig is the YAML config file (docs/configuration.md).
type fileConfig struct {
	Endpoints []ingest.EndpointConfig `yaml:"endpoints"`
	Reducers  reducerConfig           `yaml:"reducers"`
}

// reducerConfig overrides the reducers' documented defaults; a key left out
// keeps its default.
type reducerConfig struct {
	PastDueEntitled *bool    `yaml:"past_due_entitled"`
	SignupBonus     *int64   `yaml:"signup_bonus"`
	LinkKeys        []string `yaml:"link_keys"`
	UserIDKey       string   `yaml:"user_id_key"`
}

// reducerOptions are the reducers' settings: the defaults, the config
// file's overrides, and BILLFOLD_FAIL_EVENT_TYPES (the rehearsal switch
// that makes every event of the listed types fail with
// BILLFOLD-REDUCER-FAILED), read with getenv.
func reducerOptions(c reducerConfig, getenv func(string) string) (reducers.Options, error) {
	o := reducers.DefaultOptions()
	if c.PastDueEntitled != nil {
		o.PastDueEntitled = *c.PastDueEntitled
	}
	if c.SignupBonus != nil {
		if *c.SignupBonus < 0 {
			return o, domain.Errorf(domain.CodeConfigInvalid, "reducers.signup_bonus must not be negative")
		}
		o.SignupBonus = *c.SignupBonus
	}
	if c.LinkKeys != nil {
		o.LinkKeys = c.LinkKeys
	}
	if c.UserIDKey != "" {
		o.UserIDKey = c.UserIDKey
	}
	o.FailTypes = cli.SplitList(getenv("BILLFOLD_FAIL_EVENT_TYPES"))
	return o, nil
}

// envRef matches a ${NAME} reference in a secret.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// loadConfig reads the YAML config file at path. Unknown keys are errors,
// so a typo cannot silently disable a setting. ${NAME} in a secret is
// replaced by the environment variable NAME, read with getenv (empty when
// unset, which makes the endpoint answer BILLFOLD-CONFIG-NO-SECRET).
func loadConfig(path string, getenv func(string) string) (fileConfig, error) {
	var c fileConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return c, domain.Wrap(domain.CodeConfigInvalid, err, "read config file")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, domain.Wrap(domain.CodeConfigInvalid, err, "config file "+path)
	}
	for i := range c.Endpoints {
		for j, s := range c.Endpoints[i].Secrets {
			c.Endpoints[i].Secrets[j] = envRef.ReplaceAllStringFunc(s, func(ref string) string {
				return getenv(envRef.FindStringSubmatch(ref)[1])
			})
		}
	}
	return c, nil
}

// envEndpoints are the endpoints the conventional environment variables
// enable when there is no config file. Every variable is a comma-separated
// list (secret rotation); BRAINTREE_PUBLIC_KEY and BRAINTREE_PRIVATE_KEY
// pair up by position, so lists of different lengths are
// BILLFOLD-CONFIG-INVALID. getenv reads the environment.
func envEndpoints(getenv func(string) string) ([]ingest.EndpointConfig, error) {
	var eps []ingest.EndpointConfig
	if v := getenv("STRIPE_WEBHOOK_SECRET"); v != "" {
		eps = append(eps, ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: cli.SplitList(v)})
	}
	if v := getenv("STRIPE_CONNECT_WEBHOOK_SECRET"); v != "" {
		eps = append(eps, ingest.EndpointConfig{Name: "stripe-connect", Provider: domain.Stripe, Secrets: cli.SplitList(v), Connect: true})
	}
	pubs, privs := cli.SplitList(getenv("BRAINTREE_PUBLIC_KEY")), cli.SplitList(getenv("BRAINTREE_PRIVATE_KEY"))
	if len(pubs) != len(privs) {
		return nil, domain.Errorf(domain.CodeConfigInvalid,
			"BRAINTREE_PUBLIC_KEY has %d keys and BRAINTREE_PRIVATE_KEY %d: they pair up by position, so give both the same number", len(pubs), len(privs))
	}
	if len(pubs) > 0 {
		secrets := make([]string, len(pubs))
		for i := range pubs {
			secrets[i] = pubs[i] + ":" + privs[i]
		}
		eps = append(eps, ingest.EndpointConfig{Name: "braintree", Provider: domain.Braintree, Secrets: secrets})
	}
	if v := getenv("CLERK_WEBHOOK_SECRET"); v != "" {
		eps = append(eps, ingest.EndpointConfig{Name: "clerk", Provider: domain.Clerk, Secrets: cli.SplitList(v)})
	}
	if v := getenv("PACTAPAY_WEBHOOK_SECRET"); v != "" {
		eps = append(eps, ingest.EndpointConfig{Name: "pactapay", Provider: domain.PactaPay, Secrets: cli.SplitList(v)})
	}
	return eps, nil
}
