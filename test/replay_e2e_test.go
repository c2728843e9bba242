package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/test/natstest"
)

const adminToken = "e2e-admin-token-0123456789"

// stripeRequestID reads request.id from a Stripe event body.
func stripeRequestID(t *testing.T, body []byte) string {
	var ev struct {
		Request struct {
			ID string `json:"id"`
		} `json:"request"`
	}
	require.NoError(t, json.Unmarshal(body, &ev))
	return ev.Request.ID
}

// sendTopUp delivers a signed customer and a paid credit top-up for user u,
// recording the request.id of each event in requests by event id.
func sendTopUp(t *testing.T, srv *server, u int, requests map[string]string) {
	t.Helper()
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	for _, ev := range []samples.Stripe{
		{EventID: fmt.Sprintf("evt_cus_%d", u), Type: "customer.created", Created: at, CustomerID: fmt.Sprintf("cus_%d", u)},
		{EventID: fmt.Sprintf("evt_topup_%d", u), Type: "checkout.session.completed", Created: at, CustomerID: fmt.Sprintf("cus_%d", u),
			Object: map[string]any{"id": fmt.Sprintf("cs_%d", u), "payment_intent": fmt.Sprintf("pi_%d", u),
				"metadata": map[string]any{"user_id": fmt.Sprintf("user_%d", u), "credits": "100"}}},
	} {
		body := ev.Event()
		requests[ev.EventID] = stripeRequestID(t, body)
		code, _, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
		require.Equal(t, http.StatusOK, code)
	}
}

func walletBalance(t *testing.T, srv *server, user string) int64 {
	t.Helper()
	var w domain.WalletRecord
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/wallets/"+user, &w))
	return w.Balance
}

// Issue 6's "done when", first half: a reducer bug (simulated with
// BILLFOLD_FAIL_EVENT_TYPES) sends one event type to the dead letters while
// the others flow; after the fix (a restart without the switch) verify
// shows the damage, a requeue brings every record to what verify agrees
// with, and a second requeue credits nothing.
func TestDeadLettersRequeuedAfterAFix(t *testing.T) {
	t.Setenv("BILLFOLD_ADMIN_TOKEN", adminToken)
	url := externalNATS(t)
	_, js := natstest.ConnectURL(t, url)
	dir := t.TempDir()
	// The CLI sends BILLFOLD_ADMIN_TOKEN; the server knows it by name only.
	env := []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret, "BILLFOLD_ADMIN_TOKEN=", "BILLFOLD_ADMIN_TOKENS=ops-alice=" + adminToken}
	srv := startServer(t, dir, append(env, "BILLFOLD_FAIL_EVENT_TYPES=checkout.session.completed"), "--nats-url", url)
	const users = 5
	requests := map[string]string{}
	for u := range users {
		sendTopUp(t, srv, u, requests)
	}
	waitProjected(t, js, srv)

	out, code := runBillfold(t, "dlq", "list", "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	var dls []deadletter.Letter
	require.NoError(t, json.Unmarshal([]byte(out), &dls))
	require.Len(t, dls, 3*users, "customers (session links), orders and wallets each refuse every top-up")
	for _, dl := range dls {
		assert.Equal(t, "checkout.session.completed", dl.EventType)
		assert.Equal(t, domain.CodeReducerFailed, dl.Code)
		// The delivery record an operator needs: Stripe's request id, and
		// that billfold will not try again on its own.
		assert.Equal(t, requests[dl.EventID], dl.ProviderRequestID)
		assert.Equal(t, deadletter.RetryExhausted, dl.RetryState)
	}
	out, code = runBillfold(t, "dlq", "list", "--server", srv.admin)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "RETRY")
	assert.Contains(t, out, deadletter.RetryExhausted)
	out, code = runBillfold(t, "events", "list", "--status", "failed", "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	var failed []ledger.EventSummary
	require.NoError(t, json.Unmarshal([]byte(out), &failed))
	assert.Len(t, failed, 3*users)
	for _, e := range failed {
		assert.Equal(t, deadletter.RetryExhausted, e.RetryState)
		assert.Equal(t, requests[e.EventID], e.ProviderRequestID)
	}
	// The others flowed.
	var cus domain.CustomerRecord
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/customers/stripe/cus_0", &cus))

	// The fix: the same server without the switch.
	srv.stop()
	srv.env = env
	srv.start()
	waitProjected(t, js, srv)
	out, code = runBillfold(t, "verify", "--server", srv.admin)
	require.Equal(t, 1, code, "verify sees the top-ups the bug left out:\n%s", out)
	assert.Contains(t, out, "wallets")
	assert.Contains(t, out, string(domain.CodeVerifyMismatch))

	// A bulk requeue is an explicit decision: without --yes it only lists.
	out, code = runBillfold(t, "dlq", "requeue", "--where", "type=checkout.session.completed", "--server", srv.admin)
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "add --yes")
	// Without the admin token it is refused.
	status, body, _ := srv.postAdmin("/v1/dead-letters/requeue", `{"where":{"type":"checkout.session.completed"}}`, "")
	assert.Equal(t, http.StatusUnauthorized, status, body)

	out, code = runBillfold(t, "dlq", "requeue", "--where", "type=checkout.session.completed", "--yes", "--server", srv.admin)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, fmt.Sprintf("%d requeued: %d applied, 0 failed again", 3*users, 3*users))
	out, code = runBillfold(t, "verify", "--server", srv.admin)
	require.Equal(t, 0, code, out)
	for u := range users {
		assert.EqualValues(t, 100, walletBalance(t, srv, fmt.Sprintf("user_%d", u)))
	}

	// Requeueing one again changes nothing; the ledger shows who asked.
	id := deadletter.ID(domain.ProjectionWallets, dls[len(dls)-1].JournalSequence)
	out, code = runBillfold(t, "dlq", "requeue", id, "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	var again deadletter.Letter
	require.NoError(t, json.Unmarshal([]byte(out), &again))
	require.Len(t, again.Requeues, 2)
	assert.Equal(t, "ops-alice", again.Requeues[0].By)
	for u := range users {
		assert.EqualValues(t, 100, walletBalance(t, srv, fmt.Sprintf("user_%d", u)), "no double credit")
	}
	out, code = runBillfold(t, "events", "show", "stripe", again.EventID, "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	var entry ledger.EventEntry
	require.NoError(t, json.Unmarshal([]byte(out), &entry))
	require.NotNil(t, entry.Journal)
	assert.Equal(t, requests[again.EventID], entry.Journal.ProviderRequestID, "the journal keeps Stripe's request.id")
	assert.Equal(t, requests[again.EventID], again.ProviderRequestID, "so does the dead letter")
	require.NotEmpty(t, entry.Deliveries.Deliveries)
	assert.Equal(t, requests[again.EventID], entry.Deliveries.Deliveries[0].ProviderRequestID, "and the delivery log")
	w := entry.Projections[domain.ProjectionWallets]
	assert.Equal(t, ledger.StatusProcessed, w.Status)
	require.NotNil(t, w.DeadLetter)
	assert.Equal(t, deadletter.Resolved, w.DeadLetter.Status)
	assert.Contains(t, srv.logs.String(), `"by":"ops-alice"`, "a requeue is logged with who asked")
	assert.NotContains(t, srv.logs.String(), adminToken)
}

// Issue 6's "done when", second half: a rebuild killed half-way leaves
// queries answering from the old generation and is marked interrupted;
// started again under live load it switches, verify agrees, and every
// delivery answered 200 is in the projections.
func TestRebuildKilledHalfWayThenUnderLiveLoad(t *testing.T) {
	t.Setenv("BILLFOLD_ADMIN_TOKEN", adminToken)
	url := externalNATS(t)
	_, js := natstest.ConnectURL(t, url)
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret, "BILLFOLD_ADMIN_TOKEN=" + adminToken},
		"--nats-url", url, "--rebuild-rate", "300", "--rate-limit", "0")
	servers := func() []*server { return []*server{srv} }
	load := startLoad(servers, "evt_base", time.Millisecond, 1500)
	<-load.done
	first := load.halt()
	waitProjected(t, js, srv)

	status, body, _ := srv.postAdmin("/v1/rebuilds", `{}`, "")
	require.Equal(t, http.StatusUnauthorized, status, body)

	out, code := runBillfold(t, "replay", "--detach", "--yes", "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	var rb rebuild.Rebuild
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rb))
	require.Eventually(t, func() bool {
		srv.getJSON("/v1/rebuilds/"+rb.ID, &rb)
		return rb.Folded > 100
	}, 20*time.Second, 50*time.Millisecond)
	srv.kill()
	srv.start()
	var cus domain.CustomerRecord
	require.Equal(t, http.StatusOK, srv.getJSON("/v1/customers/stripe/cus_"+first[0].id, &cus), "queries answer from the old generation")
	require.Eventually(t, func() bool {
		srv.getJSON("/v1/rebuilds/"+rb.ID, &rb)
		return rb.Status == rebuild.RebuildInterrupted
	}, 40*time.Second, 200*time.Millisecond)
	assert.Equal(t, domain.CodeRebuildInterrupted, rb.Code)
	assert.Equal(t, 1, currentGeneration(t.Context(), js, domain.ProjectionCustomers))
	_, err := js.KeyValue(t.Context(), domain.ProjectionBucket(domain.ProjectionCustomers, 2))
	require.Error(t, err, "the half-built generation is removed")

	// Again, with deliveries arriving throughout.
	live := startLoad(servers, "evt_live", 20*time.Millisecond, 600) // about 3 s of traffic, inside the ~5 s rebuild
	out, code = runBillfold(t, "replay", "--yes", "--server", srv.admin, "-o", "json")
	liveResults := live.halt()
	results := append(first, liveResults...)
	require.Equal(t, 0, code, out)
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rb))
	assert.Equal(t, rebuild.RebuildDone, rb.Status)
	// Intake never paused: every live delivery was answered 200, and some
	// were answered while the rebuild was folding.
	during := 0
	for _, r := range liveResults {
		assert.Equal(t, http.StatusOK, r.status, "live delivery %s during the rebuild", r.id)
		if r.status == http.StatusOK && r.at.After(rb.CreatedAt) && r.at.Before(rb.FinishedAt) {
			during++
		}
	}
	require.False(t, rb.FinishedAt.IsZero())
	assert.Greater(t, during, 10, "live deliveries were answered 200 while the rebuild ran (%s to %s)", rb.CreatedAt, rb.FinishedAt)
	assert.Equal(t, 2, currentGeneration(t.Context(), js, domain.ProjectionCustomers))
	waitProjected(t, js, srv)
	out, code = runBillfold(t, "verify", "--server", srv.admin)
	require.Equal(t, 0, code, out)
	missing := 0
	for _, r := range results {
		if r.status == http.StatusOK && srv.getJSON("/v1/customers/stripe/cus_"+r.id, &cus) != http.StatusOK {
			missing++
		}
	}
	assert.Zero(t, missing, "every delivery answered 200 is in the rebuilt projection")
	t.Logf("rebuild folded %d events at %.0f/s (capped at 300/s) in %s; %d live deliveries sent, %d of them answered 200 while it ran",
		rb.Folded, rb.RatePerSecond, rb.FinishedAt.Sub(rb.CreatedAt).Round(time.Millisecond), len(liveResults), during)
}
