package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/hmacsig"
)

// TestDoctorClockSkew: a billfold clock set off from the server's by more
// than the threshold is a BILLFOLD-CLOCK-SKEW problem that says which way
// and links its troubleshooting row; within the threshold it is none.
func TestDoctorClockSkew(t *testing.T) {
	server := func(context.Context) (time.Time, error) { return time.Now(), nil }
	for _, tc := range []struct {
		name   string
		offset time.Duration
		want   string // "" for no problem, else a word of the message
	}{
		{"in step", 0, ""},
		{"slightly ahead", 2 * time.Second, ""},
		{"ahead", 30 * time.Second, "ahead of"},
		{"behind", -2 * time.Minute, "behind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skewed := func() time.Time { return time.Now().Add(tc.offset) }
			c := measureClock(context.Background(), skewed, server, maxClockSkew)
			require.Empty(t, c.Error)
			assert.InDelta(t, tc.offset.Seconds(), c.SkewSeconds, 0.5)
			assert.Equal(t, maxClockSkew.Seconds(), c.ThresholdSeconds)
			p := clockProblem(c)
			if tc.want == "" {
				assert.Nil(t, p)
				return
			}
			require.NotNil(t, p)
			assert.Equal(t, domain.CodeClockSkew, p.Code)
			assert.Contains(t, p.Message, tc.want)
			assert.Equal(t, "docs/troubleshooting.md#billfold-clock-skew", p.See)

			var out bytes.Buffer
			printProblems(&out, []problem{*p})
			assert.Contains(t, out.String(), "problem: BILLFOLD-CLOCK-SKEW: ")
			assert.Contains(t, out.String(), "(see docs/troubleshooting.md#billfold-clock-skew)")
		})
	}
}

// TestDoctorSkewUncertainty: a skew no larger than the threshold plus the
// measurement's uncertainty is not called a problem, and the estimate
// trusts the sample with the shortest round trip.
func TestDoctorSkewUncertainty(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	samples := []clockSample{
		{sent: t0, received: t0.Add(4 * time.Second), server: t0.Add(-10 * time.Second)}, // slow: 4 s round trip
		{sent: t0, received: t0.Add(20 * time.Millisecond), server: t0.Add(-6 * time.Second)},
	}
	skew, unc, _ := estimateSkew(samples)
	assert.Equal(t, 6*time.Second+10*time.Millisecond, skew)
	assert.Equal(t, 10*time.Millisecond, unc)

	c := clockReport{SkewSeconds: 5.5, UncertaintySeconds: 1, ThresholdSeconds: 5}
	assert.Nil(t, clockProblem(c), "5.5 s ± 1 s may be under 5 s")
	c.UncertaintySeconds = 0.1
	assert.NotNil(t, clockProblem(c))
	c.Error = "no server time"
	assert.Nil(t, clockProblem(c), "an unmeasured clock is not a skew")
}

// TestDoctorSkewThreshold: the threshold is 5 s, or a quarter of the
// smallest tolerance among endpoints whose scheme signs a time.
func TestDoctorSkewThreshold(t *testing.T) {
	ep := func(c ingest.EndpointConfig) *ingest.Endpoint {
		e, err := ingest.NewEndpoint(c)
		require.NoError(t, err)
		return e
	}
	stripe8s := ep(ingest.EndpointConfig{Name: "s", Provider: domain.Stripe, Secrets: []string{"whsec_x"}, Tolerance: 8 * time.Second})
	braintree1s := ep(ingest.EndpointConfig{Name: "b", Provider: domain.Braintree, Secrets: []string{"p:q"}, Tolerance: time.Second})
	pacta1s := ep(ingest.EndpointConfig{Name: "p", Provider: domain.PactaPay, Secrets: []string{"x"}, Tolerance: time.Second})
	assert.Equal(t, 5*time.Second, skewThreshold(nil))
	assert.Equal(t, 2*time.Second, skewThreshold([]*ingest.Endpoint{stripe8s, braintree1s, pacta1s}),
		"Braintree and PactaPay sign no time, so their tolerance does not count")
	assert.True(t, signsTimestamp(stripe8s))
	assert.False(t, signsTimestamp(braintree1s))
	assert.False(t, signsTimestamp(pacta1s))
}

// TestTroubleshootingRowPerCode: every code in domain/errors.go has its
// row in docs/troubleshooting.md, with the anchor doctor's problem lines
// link to.
func TestTroubleshootingRowPerCode(t *testing.T) {
	src, err := os.ReadFile("../../../../domain/errors.go")
	require.NoError(t, err)
	doc, err := os.ReadFile("../../../../docs/troubleshooting.md")
	require.NoError(t, err)
	codes := regexp.MustCompile(`Code = "(BILLFOLD-[A-Z0-9-]+)"`).FindAllStringSubmatch(string(src), -1)
	require.NotEmpty(t, codes)
	for _, m := range codes {
		code := domain.Code(m[1])
		anchor := strings.TrimPrefix(troubleshootingRow(code), "docs/troubleshooting.md#")
		row := "| <a id=\"" + anchor + "\"></a>`" + string(code) + "` |"
		assert.Contains(t, string(doc), row, "docs/troubleshooting.md needs a row for %s starting %s", code, row)
	}
}

// TestDoctorEndpointsWithoutSecrets: the endpoint section counts secrets
// and never shows one, including an unsigned endpoint's name, which is
// that endpoint's only secret.
func TestDoctorEndpointsWithoutSecrets(t *testing.T) {
	const secretName = "f3a9c1e07b5d42a8e6c0b9d1f27a4e3c5b8d0a6f"
	unsigned, err := ingest.NewEndpoint(ingest.EndpointConfig{Name: secretName, Provider: domain.HMAC, Unsigned: true,
		HMAC: &hmacsig.Config{SignatureHeader: "X-Sig", EventIDField: "id", EventTypeField: "type"}})
	require.NoError(t, err)
	stripe, err := ingest.NewEndpoint(ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{"whsec_one_do_not_show", "whsec_two_do_not_show"}})
	require.NoError(t, err)
	missing, err := ingest.NewEndpoint(ingest.EndpointConfig{Name: "clerk", Provider: domain.Clerk})
	require.NoError(t, err)

	d := New(nil, []*ingest.Endpoint{unsigned, stripe, missing}, nil, nil, false, "dev", "embedded")
	var rep Report
	rep.Endpoints = d.endpointReports(&rep)
	out, err := json.Marshal(rep)
	require.NoError(t, err)
	for _, secret := range []string{secretName, "whsec_one_do_not_show", "whsec_two_do_not_show"} {
		assert.NotContains(t, string(out), secret)
	}
	require.Len(t, rep.Endpoints, 3)
	assert.Equal(t, domain.UnsignedLabel(secretName), rep.Endpoints[0].Name, "shown by its label, as everywhere")
	assert.True(t, rep.Endpoints[0].Unsigned)
	assert.Equal(t, 2, rep.Endpoints[1].Secrets)
	assert.True(t, rep.Endpoints[1].SecretPresent)
	assert.Equal(t, "5m0s", rep.Endpoints[1].Tolerance)
	assert.False(t, rep.Endpoints[2].SecretPresent)
	assert.Equal(t, domain.CodeConfigNoSecret, rep.Endpoints[2].Misconfigured)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, domain.CodeConfigNoSecret, rep.Problems[0].Code)
	assert.Len(t, rep.Notes, 1, "the unsigned endpoint is a note, not a problem")
}
