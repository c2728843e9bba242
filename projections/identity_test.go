package projections_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/billfold/billfold/projections/query"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// A top-up paid by another user's Stripe customer is held, visibly: the
// wallet through the query API and its last message on the change feed
// say identity_mismatch and the users the customer's links name. When the
// customer's metadata is corrected the credit is released, on both.
func TestIdentityMismatchHeldInAPIAndFeed(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for i, user := range []string{"user_ana", "user_ben"} {
		_, err := j.Append(ctx, &domain.Envelope{Provider: domain.Clerk, Endpoint: "clerk", EventID: "msg_" + user, EventType: "user.created",
			Created: base.Add(time.Duration(i) * time.Second), Received: time.Now(), Verification: domain.VerifiedSignature,
			Body: samples.ClerkUser("user.created", user, base)})
		require.NoError(t, err)
	}
	stripeEvent(t, j, samples.Stripe{EventID: "evt_cus_ben", Type: "customer.created", Created: base.Add(time.Minute), CustomerID: "cus_ben",
		Object: map[string]any{"metadata": map[string]any{"user_id": "user_ben"}}})
	stripeEvent(t, j, samples.Stripe{EventID: "evt_topup", Type: "checkout.session.completed", Created: base.Add(2 * time.Minute), CustomerID: "cus_ben",
		Object: map[string]any{"id": "cs_ana", "payment_intent": "pi_ana", "metadata": map[string]any{"user_id": "user_ana", "credits": "100"}}})

	e, _ := feedEngine(t, js)
	q := query.New(e, reducers.All(reducers.DefaultOptions()), "")
	qctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { q.Run(qctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	mux := http.NewServeMux()
	q.Register(mux, httpapi.RequireToken("s3cret"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	wallet := func() domain.WalletRecord {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/wallets/user_ana", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var w domain.WalletRecord
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&w))
		return w
	}
	lastOnFeed := func() domain.WalletRecord {
		msgs := readFeed(t, js, domain.ChangeSubject(domain.ProjectionWallets, feed.WalletProvider, "user_ana"))
		require.NotEmpty(t, msgs)
		var c feed.Change
		require.NoError(t, json.Unmarshal(msgs[len(msgs)-1].data, &c))
		var w domain.WalletRecord
		require.NoError(t, json.Unmarshal(c.Record, &w))
		return w
	}
	topUp := func(w domain.WalletRecord) domain.WalletEntry {
		for _, e := range w.Entries {
			if e.Reference == "top_up:pi_ana" {
				return e
			}
		}
		require.Failf(t, "no top-up entry", "%+v", w.Entries)
		return domain.WalletEntry{}
	}

	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	for _, w := range []domain.WalletRecord{wallet(), lastOnFeed()} {
		assert.Equal(t, int64(40), w.Available, "the signup bonus only")
		assert.Equal(t, int64(100), w.Pending)
		entry := topUp(w)
		assert.True(t, entry.Held)
		assert.Equal(t, domain.HeldIdentityMismatch, entry.HeldReason)
		assert.Equal(t, "cus_ben", entry.CustomerID)
		assert.Equal(t, []string{"user_ben"}, entry.CustomerUsers)
	}

	stripeEvent(t, j, samples.Stripe{EventID: "evt_cus_fixed", Type: "customer.updated", Created: base.Add(time.Hour), CustomerID: "cus_ben",
		Object: map[string]any{"metadata": map[string]any{"user_id": "user_ana"}}})
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	for _, w := range []domain.WalletRecord{wallet(), lastOnFeed()} {
		assert.Equal(t, int64(140), w.Available, "released")
		assert.Equal(t, int64(0), w.Pending)
		assert.False(t, topUp(w).Held)
		assert.Contains(t, w.EventIDs, "evt_cus_fixed", "the event that released it")
	}
	checkChanges(t, js)
}
