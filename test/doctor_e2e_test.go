package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/test/natstest"
)

// runBillfoldOut runs the binary with extra environment and returns its
// stdout and stderr apart, so JSON on stdout parses whatever is logged.
func runBillfoldOut(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	}
	require.NoError(t, err, "run billfold %v", args)
	return out.String(), errb.String(), 0
}

// doctorJSON is the part of the doctor report the test reads.
type doctorJSON struct {
	Version   string `json:"version"`
	Endpoints []struct {
		Name          string `json:"name"`
		Provider      string `json:"provider"`
		Path          string `json:"path"`
		SecretPresent bool   `json:"secret_present"`
		Secrets       int    `json:"secrets"`
		Tolerance     string `json:"tolerance"`
		Livemode      string `json:"livemode"`
		Misconfigured string `json:"misconfigured"`
	} `json:"endpoints"`
	Clock struct {
		SkewSeconds      float64 `json:"skew_seconds"`
		ThresholdSeconds float64 `json:"threshold_seconds"`
		Error            string  `json:"error"`
	} `json:"clock"`
	Streams []struct {
		Name     string `json:"name"`
		Messages uint64 `json:"messages"`
		Replicas int    `json:"replicas"`
		Leader   string `json:"leader"`
		Healthy  bool   `json:"healthy"`
	} `json:"streams"`
	Projections []struct {
		Name string `json:"name"`
		Lag  uint64 `json:"lag"`
	} `json:"projections"`
	DeadLetters struct {
		Count  uint64 `json:"count"`
		ByCode []struct {
			Code        string         `json:"code"`
			Count       int            `json:"count"`
			Projections map[string]int `json:"projections"`
		} `json:"by_code"`
	} `json:"dead_letters"`
	Deliveries struct {
		Outcomes          map[string]int `json:"outcomes"`
		SignatureFailures []failureJSON  `json:"signature_failures"`
		OtherFailures     []failureJSON  `json:"other_failures"`
		Last              map[string][]struct {
			EventID string `json:"event_id"`
			Outcome string `json:"outcome"`
			Code    string `json:"code"`
		} `json:"last"`
	} `json:"deliveries"`
	Problems []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		See     string `json:"see"`
	} `json:"problems"`
}

type failureJSON struct {
	Code        string         `json:"code"`
	Count       int            `json:"count"`
	Endpoints   map[string]int `json:"endpoints"`
	LikelyCause string         `json:"likely_cause"`
}

func (r doctorJSON) failure(groups []failureJSON, code string) failureJSON {
	for _, g := range groups {
		if g.Code == code {
			return g
		}
	}
	return failureJSON{}
}

func (r doctorJSON) problemCodes() map[string]string {
	out := map[string]string{}
	for _, p := range r.Problems {
		out[p.Code] = p.See
	}
	return out
}

// billfold doctor against the real binary: valid, duplicate, rotated,
// forged and unsigned deliveries, an endpoint without its secret and a
// reducer failure all show up in the report, grouped by code with their
// troubleshooting rows, and no secret appears anywhere in it.
func TestDoctorReportEndToEnd(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, `
endpoints:
  - name: stripe
    provider: stripe
    secrets: ["${E2E_STRIPE_SECRET}", "${E2E_STRIPE_SECRET_OLD}"]
    tolerance: 2m
  - name: stripe-live
    provider: stripe
    secrets: ["${E2E_STRIPE_SECRET}"]
    livemode: true
  - name: stripe-unset
    provider: stripe
    secrets: ["${E2E_NOT_SET_ANYWHERE}"]
`)
	const token = "doctor-e2e-read-token"
	t.Setenv("BILLFOLD_API_TOKEN", token) // the server's and the CLI's
	env := []string{"E2E_STRIPE_SECRET=" + stripeSecret, "E2E_STRIPE_SECRET_OLD=" + stripeSecretOld,
		"BILLFOLD_FAIL_EVENT_TYPES=invoice.paid"}
	srv := startServer(t, filepath.Join(dir, "data"), env, "--config", config)

	post := func(endpoint string, body []byte, h map[string]string, want int) {
		t.Helper()
		code, answer, _ := srv.post(endpoint, body, h)
		require.Equal(t, want, code, answer)
	}
	now := time.Now()
	for i := range 3 {
		body := stripeBody(fmt.Sprintf("evt_doctor_%d", i), "customer.created", false)
		post("stripe", body, stripeSig(body, now, stripeSecret), 200)
		if i == 0 {
			post("stripe", body, stripeSig(body, now, stripeSecret), 200) // duplicate
		}
	}
	rotated := stripeBody("evt_doctor_rotated", "customer.created", false)
	post("stripe", rotated, stripeSig(rotated, now, stripeSecretOld), 200)
	failing := stripeBody("evt_doctor_invoice", "invoice.paid", false)
	post("stripe", failing, stripeSig(failing, now, stripeSecret), 200)
	// Accepted deliveries are logged off the answer's path (rejected ones
	// on it): let the log hold them before the rejections, so its order is
	// the order they were sent in.
	require.Eventually(t, func() bool {
		out, _, _ := runBillfoldOut(t, nil, "doctor", "--server", srv.admin, "-o", "json")
		var r doctorJSON
		return json.Unmarshal([]byte(out), &r) == nil && r.Deliveries.Outcomes["accepted"] == 5
	}, 60*time.Second, 250*time.Millisecond, "the delivery log holds the accepted deliveries")
	for i := range 4 {
		forged := stripeBody(fmt.Sprintf("evt_doctor_forged_%d", i), "customer.created", false)
		post("stripe", forged, stripeSig(forged, now, stripeSecretWrong), 400)
	}
	unsigned := stripeBody("evt_doctor_unsigned", "customer.created", false)
	post("stripe", unsigned, map[string]string{"Content-Type": "application/json"}, 400)
	post("stripe-unset", unsigned, stripeSig(unsigned, now, stripeSecret), 500)

	// The delivery log is written off the answer's path and projectors
	// run behind the journal: wait until the report has caught up.
	var rep doctorJSON
	var out string
	require.Eventually(t, func() bool {
		var code int
		out, _, code = runBillfoldOut(t, nil, "doctor", "--server", srv.admin, "-o", "json")
		if code != 1 || json.Unmarshal([]byte(out), &rep) != nil {
			return false
		}
		lagging := false
		for _, p := range rep.Projections {
			lagging = lagging || p.Lag > 0
		}
		return !lagging && rep.DeadLetters.Count > 0 &&
			rep.failure(rep.Deliveries.SignatureFailures, "BILLFOLD-SIG-MISMATCH").Count == 4 &&
			rep.Deliveries.Outcomes["misconfigured"] == 1 && rep.Deliveries.Outcomes["accepted"] == 5
	}, 60*time.Second, 250*time.Millisecond, "doctor report catches up:\n%s", out)

	for _, secret := range []string{stripeSecret, stripeSecretOld, stripeSecretWrong, token} {
		assert.NotContains(t, out, secret, "no secret in the report")
	}

	// Endpoints: secrets counted, never shown; tolerance; livemode; the
	// one without its secret.
	require.Len(t, rep.Endpoints, 3)
	byName := map[string]int{}
	for i, e := range rep.Endpoints {
		byName[e.Name] = i
	}
	stripe := rep.Endpoints[byName["stripe"]]
	assert.True(t, stripe.SecretPresent)
	assert.Equal(t, 2, stripe.Secrets)
	assert.Equal(t, "2m0s", stripe.Tolerance)
	assert.Equal(t, "/webhooks/stripe", stripe.Path)
	assert.Equal(t, "any", stripe.Livemode)
	assert.Equal(t, "live", rep.Endpoints[byName["stripe-live"]].Livemode)
	unset := rep.Endpoints[byName["stripe-unset"]]
	assert.False(t, unset.SecretPresent)
	assert.Equal(t, "BILLFOLD-CONFIG-NO-SECRET", unset.Misconfigured)

	// Signature failures by reason code, with a likely cause.
	mismatch := rep.failure(rep.Deliveries.SignatureFailures, "BILLFOLD-SIG-MISMATCH")
	assert.Equal(t, map[string]int{"stripe": 4}, mismatch.Endpoints)
	assert.Contains(t, mismatch.LikelyCause, "secret")
	assert.Equal(t, 1, rep.failure(rep.Deliveries.SignatureFailures, "BILLFOLD-SIG-MISSING").Count)
	assert.Equal(t, 1, rep.failure(rep.Deliveries.OtherFailures, "BILLFOLD-CONFIG-NO-SECRET").Count)
	assert.Equal(t, 1, rep.Deliveries.Outcomes["duplicate"])
	assert.Len(t, rep.Deliveries.Last["stripe"], 5, "the last five deliveries of the endpoint")
	assert.Equal(t, "BILLFOLD-SIG-MISSING", rep.Deliveries.Last["stripe"][0].Code, "newest first")

	// Dead letters of the failing reducer, and every projector caught up.
	require.NotEmpty(t, rep.DeadLetters.ByCode)
	assert.Equal(t, "BILLFOLD-REDUCER-FAILED", rep.DeadLetters.ByCode[0].Code)
	assert.EqualValues(t, rep.DeadLetters.ByCode[0].Count, rep.DeadLetters.Count)
	assert.Len(t, rep.Projections, 4)

	// Streams: the journal holds the five accepted events, at R1 with the
	// embedded server as leader.
	streams := map[string]int{}
	for i, s := range rep.Streams {
		streams[s.Name] = i
		assert.True(t, s.Healthy, s.Name)
		assert.Equal(t, 1, s.Replicas, s.Name)
	}
	require.Contains(t, streams, "BILLFOLD_JOURNAL")
	assert.EqualValues(t, 5, rep.Streams[streams["BILLFOLD_JOURNAL"]].Messages)
	assert.NotEmpty(t, rep.Streams[streams["BILLFOLD_JOURNAL"]].Leader)
	assert.Contains(t, streams, "KV_BILLFOLD_SUBSCRIPTIONS_G1")
	assert.Contains(t, streams, "BILLFOLD_DEADLETTERS")

	// Clock: measured, same machine, no skew.
	assert.Empty(t, rep.Clock.Error)
	assert.Less(t, rep.Clock.SkewSeconds, 1.0)
	assert.Greater(t, rep.Clock.SkewSeconds, -1.0)
	assert.Equal(t, 5.0, rep.Clock.ThresholdSeconds)

	// Problems: one per code, each with its troubleshooting row.
	problems := rep.problemCodes()
	for _, code := range []string{"BILLFOLD-SIG-MISMATCH", "BILLFOLD-SIG-MISSING", "BILLFOLD-CONFIG-NO-SECRET", "BILLFOLD-REDUCER-FAILED"} {
		assert.Contains(t, problems, code)
	}
	assert.Equal(t, "docs/troubleshooting.md#billfold-sig-mismatch", problems["BILLFOLD-SIG-MISMATCH"])
	assert.NotContains(t, problems, "BILLFOLD-CLOCK-SKEW")

	// The table names the codes and their rows, and exits 1.
	table, _, code := runBillfoldOut(t, nil, "doctor", "--server", srv.admin)
	assert.Equal(t, 1, code, table)
	assert.Contains(t, table, "present (2)")
	assert.Contains(t, table, "problem: BILLFOLD-SIG-MISMATCH: 4 deliveries failed signature verification")
	assert.Contains(t, table, "(see docs/troubleshooting.md#billfold-sig-mismatch)")
	assert.Contains(t, table, "problem: BILLFOLD-REDUCER-FAILED: ")
	for _, secret := range []string{stripeSecret, stripeSecretOld} {
		assert.NotContains(t, table, secret)
	}

	// Without the read token there is no report: exit 2, and why.
	out, _, code = runBillfoldOut(t, []string{"BILLFOLD_API_TOKEN="}, "doctor", "--server", srv.admin)
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "problem: BILLFOLD-UNAUTHORIZED")
}

// billfold doctor exits 0 on a healthy server and 2 when there is no
// server to ask.
func TestDoctorHealthyAndUnreachable(t *testing.T) {
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret})
	body := stripeBody("evt_doctor_ok", "customer.created", false)
	code, answer, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
	require.Equal(t, 200, code, answer)
	var out string
	require.Eventually(t, func() bool {
		var code int
		out, _, code = runBillfoldOut(t, nil, "doctor", "--server", srv.admin)
		return code == 0
	}, 30*time.Second, 250*time.Millisecond, "healthy report:\n%s", out)
	assert.Contains(t, out, "no problems found")
	assert.Contains(t, out, "evt_doctor_ok")
	assert.NotContains(t, out, stripeSecret)

	down := fmt.Sprintf("http://127.0.0.1:%d", natstest.FreePort(t))
	out, _, code = runBillfoldOut(t, nil, "doctor", "--server", down)
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "UNREACHABLE")
	out, _, code = runBillfoldOut(t, nil, "doctor", "--server", down, "-o", "json")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, `"reachable": false`)
}
