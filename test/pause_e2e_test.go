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
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/ledger"
)

// The incident step of the webhook handbook: `billfold pause customers`
// (admin token) stops the customers projector while intake keeps
// answering and journaling and the other projections keep folding; the
// hold shows in readiness, metrics and doctor and survives a SIGKILL and
// restart; `billfold resume` folds everything journaled meanwhile.
func TestPauseHoldsAProjectionWhileIntakeGoesOn(t *testing.T) {
	t.Setenv("BILLFOLD_ADMIN_TOKEN", "")
	// The CLI sends BILLFOLD_ADMIN_TOKEN once it is set below; the server
	// knows the token by name only.
	env := []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret, "BILLFOLD_ADMIN_TOKEN=", "BILLFOLD_ADMIN_TOKENS=ops-alice=" + adminToken}
	srv := startServer(t, t.TempDir(), env)

	out, code := runBillfold(t, "pause", "customers", "--server", srv.admin)
	require.NotEqual(t, 0, code, "pausing needs the admin token: %s", out)
	assert.Contains(t, out, string(domain.CodeUnauthorized))
	t.Setenv("BILLFOLD_ADMIN_TOKEN", adminToken)
	out, code = runBillfold(t, "pause", "no-such-projection", "--server", srv.admin)
	require.NotEqual(t, 0, code, out)
	assert.Contains(t, out, string(domain.CodeNotFound))
	out, code = runBillfold(t, "pause", "customers", "--server", srv.admin, "-o", "json")
	require.Equal(t, 0, code, out)
	var paused []projections.Pause
	require.NoError(t, json.Unmarshal([]byte(out), &paused))
	require.Len(t, paused, 1)
	assert.Equal(t, "customers", paused[0].Projection)
	assert.Equal(t, "ops-alice", paused[0].By)

	// Intake goes on; customers does not fold; the other projections do.
	send := func(n int) string {
		event := fmt.Sprintf("evt_pause_%d", n)
		body := stripeBody(event, "customer.created", false)
		status, answer, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
		require.Equal(t, http.StatusOK, status, answer)
		return "cus_" + event
	}
	first := send(1)
	held := func(t *testing.T, event string) {
		t.Helper()
		var e ledger.EventEntry
		require.Eventually(t, func() bool {
			if srv.getJSON("/v1/events/stripe/"+event, &e) != http.StatusOK {
				return false
			}
			for name, st := range e.Projections {
				if name != "customers" && st.Status == ledger.StatusPending {
					return false
				}
			}
			return true
		}, 20*time.Second, 50*time.Millisecond, "the other projections fold %s", event)
		assert.Equal(t, ledger.StatusPending, e.Projections["customers"].Status, "customers holds %s", event)
	}
	held(t, "evt_pause_1")
	assert.Equal(t, http.StatusNotFound, srv.getJSON("/v1/customers/stripe/"+first, nil))
	heldEverywhere := func(t *testing.T) {
		t.Helper()
		_, metrics := srv.get("/metrics")
		assert.Contains(t, string(metrics), `billfold_projection_paused{projection="customers"} 1`)
		assert.Contains(t, string(metrics), `billfold_projection_paused{projection="wallets"} 0`)
		var ready struct {
			Status string
			Paused []projections.Pause
		}
		require.Equal(t, http.StatusOK, srv.getJSON("/readyz", &ready), "a pause does not make billfold unready")
		require.Len(t, ready.Paused, 1)
		assert.Equal(t, "customers", ready.Paused[0].Projection)
		out, _ := runBillfold(t, "doctor", "--server", srv.admin)
		assert.Regexp(t, `(?m)^customers\s.*by ops-alice since `, out, "doctor shows the hold")
		assert.NotContains(t, out, "projector customers has", "a paused projector is not called stalled")
	}
	heldEverywhere(t)

	// A crash does not lift the hold.
	srv.restart()
	second := send(2)
	held(t, "evt_pause_2")
	heldEverywhere(t)

	out, code = runBillfold(t, "resume", "--server", srv.admin)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "no projection is paused")
	for _, id := range []string{first, second} {
		require.Eventually(t, func() bool { return srv.getJSON("/v1/customers/stripe/"+id, nil) == http.StatusOK },
			20*time.Second, 50*time.Millisecond, "resume folds %s, journaled while paused", id)
	}
	_, metrics := srv.get("/metrics")
	assert.True(t, strings.Contains(string(metrics), `billfold_projection_paused{projection="customers"} 0`))
}
