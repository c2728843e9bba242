package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
)

// secondStart waits, when needed, until just after a whole second and
// returns that second. A timestamp offset from it by whole seconds is then
// exactly that far from billfold's clock give or take the request's own
// latency, so "one second inside the tolerance" leaves nearly a second for
// that latency on a busy machine.
func secondStart() time.Time {
	now := time.Now()
	if now.Nanosecond() > int(100*time.Millisecond) {
		time.Sleep(time.Until(now.Truncate(time.Second).Add(time.Second + 5*time.Millisecond)))
	}
	return time.Now().Truncate(time.Second)
}

// Clock skew: for every scheme that signs a timestamp, a delivery signed
// one second inside the endpoint's tolerance is accepted, past or future,
// and one signed one second outside it is rejected with
// BILLFOLD-SIG-TOO-OLD (past) or BILLFOLD-SIG-TOO-NEW (future), as the
// delivery log and the metrics say. PactaPay signs its body's timestamp,
// so the same window holds there, refused as BILLFOLD-EVENT-TOO-OLD /
// -TOO-NEW. A scheme without a signed time (Braintree) has no window: its
// provider time, however far off, never rejects a delivery.
func TestClockSkewTolerance(t *testing.T) {
	srv, js := startHostileServer(t)
	tolerance := map[string]time.Duration{"stripe": 5 * time.Minute, "clerk": 5 * time.Minute, "acme": 5 * time.Minute, "omni": 90 * time.Second, "pactapay": 5 * time.Minute}
	// codeFor is the refusal's code at endpoint: PactaPay's time is in the
	// signed body, not a signature header.
	codeFor := func(endpoint string, c domain.Code) domain.Code {
		if endpoint == "pactapay" {
			return map[domain.Code]domain.Code{domain.CodeSigTooOld: domain.CodeEventTooOld, domain.CodeSigTooNew: domain.CodeEventTooNew}[c]
		}
		return c
	}
	type skew struct {
		name    string
		offset  func(tol time.Duration) time.Duration
		status  int
		outcome domain.Outcome
		code    domain.Code
	}
	skews := []skew{
		{"tolerance-1s in the past", func(tol time.Duration) time.Duration { return -(tol - time.Second) }, 200, domain.OutcomeAccepted, ""},
		{"tolerance-1s in the future", func(tol time.Duration) time.Duration { return tol - time.Second }, 200, domain.OutcomeAccepted, ""},
		{"tolerance+1s in the past", func(tol time.Duration) time.Duration { return -(tol + time.Second) }, 400, domain.OutcomeRejected, domain.CodeSigTooOld},
		{"tolerance+1s in the future", func(tol time.Duration) time.Duration { return tol + time.Second }, 400, domain.OutcomeRejected, domain.CodeSigTooNew},
	}
	var ids []string
	want := map[string]skew{}
	for _, s := range hostileSchemes() {
		tol, signsTime := tolerance[s.endpoint]
		if !signsTime {
			continue
		}
		t.Run(s.endpoint, func(t *testing.T) {
			for i, k := range skews {
				at := secondStart().Add(k.offset(tol))
				eventID := fmt.Sprintf("skew_%s_%d", s.endpoint, i)
				before := journalCount(t, js)
				reqID := "skew-" + s.endpoint + "-" + fmt.Sprint(i)
				status, answer := srv.send(t, s.endpoint, reqID, s.sign(eventID, s.event(eventID, at), at), false)
				assert.Equal(t, k.status, status, "%s: %s", k.name, answer)
				assert.JSONEq(t, hostileAnswers[k.outcome], answer, k.name)
				wantJournaled := uint64(0)
				if k.outcome == domain.OutcomeAccepted {
					wantJournaled = 1
				}
				assert.Equal(t, before+wantJournaled, journalCount(t, js), k.name)
				ids = append(ids, reqID)
				k.code = codeFor(s.endpoint, k.code)
				want[reqID] = k
			}
		})
	}

	// No signed time, no window: a Braintree notification whose own
	// timestamp is a day off either way is accepted.
	var bt scheme
	for _, s := range hostileSchemes() {
		if s.endpoint == "braintree" {
			bt = s
		}
	}
	for i, off := range []time.Duration{-24 * time.Hour, 24 * time.Hour} {
		at := time.Now().Add(off)
		id := fmt.Sprintf("skew_braintree_%d", i)
		status, answer := srv.send(t, "braintree", "skew-braintree-"+fmt.Sprint(i), bt.sign(id, bt.event(id, at), at), false)
		assert.Equal(t, 200, status, "braintree, provider time %s off: %s", off, answer)
	}

	var log map[string]domain.Delivery
	require.Eventually(t, func() bool {
		log = deliveryLog(t, js)
		for _, id := range ids {
			if _, ok := log[id]; !ok {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "every delivery is in the delivery log")
	for _, id := range ids {
		d, k := log[id], want[id]
		assert.Equal(t, k.outcome, d.Outcome, "%s %s", d.Endpoint, k.name)
		assert.Equal(t, k.code, d.ReasonCode, "%s %s: %s", d.Endpoint, k.name, d.Reason)
		if k.code != "" {
			assert.Contains(t, d.Reason, "tolerance "+tolerance[d.Endpoint].String(), "the reason names the endpoint's tolerance")
		}
	}

	_, metrics := srv.get("/metrics")
	for endpoint := range tolerance {
		for _, line := range []string{
			fmt.Sprintf(`billfold_signature_failures_total{code=%q,endpoint=%q} 1`, codeFor(endpoint, domain.CodeSigTooOld), endpoint),
			fmt.Sprintf(`billfold_signature_failures_total{code=%q,endpoint=%q} 1`, codeFor(endpoint, domain.CodeSigTooNew), endpoint),
			fmt.Sprintf(`billfold_deliveries_total{endpoint=%q,outcome="accepted"} 2`, endpoint),
		} {
			assert.True(t, strings.Contains(string(metrics), line), "metrics have %s", line)
		}
	}
	srv.alive(t)
}
