package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
)

func clearProviderEnv(t *testing.T) {
	for _, k := range []string{"STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET", "BRAINTREE_PUBLIC_KEY", "BRAINTREE_PRIVATE_KEY", "CLERK_WEBHOOK_SECRET", "PACTAPAY_WEBHOOK_SECRET"} {
		t.Setenv(k, "")
	}
}

func TestEnvEndpointsProviders(t *testing.T) {
	clearProviderEnv(t)
	t.Setenv("STRIPE_WEBHOOK_SECRET", "whsec_a")
	t.Setenv("STRIPE_CONNECT_WEBHOOK_SECRET", "whsec_connect")
	t.Setenv("BRAINTREE_PUBLIC_KEY", "pub_new, pub_old")
	t.Setenv("BRAINTREE_PRIVATE_KEY", "priv_new,priv_old")
	t.Setenv("CLERK_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	t.Setenv("PACTAPAY_WEBHOOK_SECRET", "pp_new,pp_old")
	eps, err := envEndpoints(os.Getenv)
	require.NoError(t, err)
	assert.Equal(t, []ingest.EndpointConfig{
		{Name: "stripe", Provider: domain.Stripe, Secrets: []string{"whsec_a"}},
		{Name: "stripe-connect", Provider: domain.Stripe, Secrets: []string{"whsec_connect"}, Connect: true},
		{Name: "braintree", Provider: domain.Braintree, Secrets: []string{"pub_new:priv_new", "pub_old:priv_old"}},
		{Name: "clerk", Provider: domain.Clerk, Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		{Name: "pactapay", Provider: domain.PactaPay, Secrets: []string{"pp_new", "pp_old"}},
	}, eps)
	for _, c := range eps {
		e, err := ingest.NewEndpoint(c)
		require.NoError(t, err, c.Name)
		assert.Nil(t, e.Misconfigured, c.Name)
	}
}

func TestEnvEndpointsBraintreeUnpaired(t *testing.T) {
	clearProviderEnv(t)
	t.Setenv("BRAINTREE_PUBLIC_KEY", "pub_new,pub_old")
	t.Setenv("BRAINTREE_PRIVATE_KEY", "priv_new")
	_, err := envEndpoints(os.Getenv)
	assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err))
	assert.NotContains(t, err.Error(), "priv_new", "the error never repeats a secret")

	t.Setenv("BRAINTREE_PRIVATE_KEY", "")
	_, err = envEndpoints(os.Getenv)
	assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err))
}

func TestRetryScheduleFlag(t *testing.T) {
	var r retrySchedule
	assert.Nil(t, r.schedule(), "unset: the engine's default")
	assert.Equal(t, "1m0s,5m0s,30m0s,2h0m0s,12h0m0s", r.String())
	require.NoError(t, r.Set("30s, 2m"))
	assert.Equal(t, []time.Duration{30 * time.Second, 2 * time.Minute}, r.schedule())
	require.NoError(t, r.Set("none"))
	assert.Equal(t, []time.Duration{}, r.schedule(), "none: no scheduled retry")
	assert.Equal(t, "none", r.String())
	for _, bad := range []string{"", "1m,", "soon", "-1m", "0s"} {
		assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(r.Set(bad)), bad)
	}
}
