package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/test/natstest"
)

// A duplicate storm: 200 concurrent deliveries of one top-up event give
// exactly one "accepted"; once the projectors have caught up the journal
// holds the event once, the delivery log 1 accepted and 199 duplicates,
// and the wallet is credited once. Afterwards no
// secret billfold was given appears in its logs, the delivery log or its
// metrics.
func TestDuplicateStormCreditsOnce(t *testing.T) {
	url := externalNATS(t)
	srv := startServer(t, t.TempDir(), scenarioEnv(), append(scenarioConfig(t), "--nats-url", url, "--rate-limit", "100000", "--rate-burst", "100000")...)

	s := &scenario{}
	s.clerk("user.created", "user_storm", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	s.stripe(samples.Stripe{Type: "checkout.session.completed", Created: time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC), CustomerID: "cus_storm",
		Object: map[string]any{"id": "cs_storm", "payment_intent": "pi_storm", "metadata": map[string]any{"user_id": "user_storm", "credits": "250"}}})
	user, topUp := s.deliveries[0], s.deliveries[1]
	code, answer, _ := srv.post(user.endpoint, user.body, user.sign(user.body))
	require.Equal(t, 200, code, answer)

	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 200 {
		wg.Go(func() {
			<-start
			code, answer, _ := srv.post(topUp.endpoint, topUp.body, topUp.sign(topUp.body))
			mu.Lock()
			answers[fmt.Sprintf("%d %s", code, answer)]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, map[string]int{
		`200 {"received":true,"status":"accepted"}`:  1,
		`200 {"received":true,"status":"duplicate"}`: 199,
	}, answers)

	// Once the projectors have folded everything the storm journaled, the
	// journal holds the event once, the delivery log has its 200 deliveries
	// (1 accepted, 199 duplicates) and the wallet is credited once.
	_, js := natstest.ConnectURL(t, url)
	ctx := context.Background()
	waitProjected(t, js, srv)
	var event struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(topUp.body, &event))
	assert.Equal(t, 1, journalSubjectCounts(t, js, "stripe")[domain.JournalSubject("stripe", event.ID)], "the journal holds the event once")
	var logged map[domain.Outcome]int
	require.Eventually(t, func() bool { // the delivery log is written off the answer's path
		logged = deliveryLogOutcomes(t, js)[domain.DeliverySubject("stripe", event.ID)]
		return logged[domain.OutcomeAccepted]+logged[domain.OutcomeDuplicate] >= 200
	}, 10*time.Second, 50*time.Millisecond, "the delivery log records all 200 deliveries")
	assert.Equal(t, map[domain.Outcome]int{domain.OutcomeAccepted: 1, domain.OutcomeDuplicate: 199}, logged)
	r := &recordReader{t: t, kv: map[string]jetstream.KeyValue{}}
	var err error
	r.kv[domain.ProjectionWallets], err = js.KeyValue(ctx, domain.ProjectionBucket(domain.ProjectionWallets, 1))
	require.NoError(t, err)
	w := r.wallet("user_storm")
	assert.Equal(t, int64(290), w.Available, "the sign-up bonus and one top-up of 250")
	assert.Equal(t, int64(290), w.Balance)
	assert.Len(t, w.Entries, 2)

	// No secret anywhere an operator or an attacker could read it.
	_, metrics := srv.get("/metrics")
	var deliveryLog strings.Builder
	stream, err := js.Stream(ctx, domain.DeliveryStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		if m, err := stream.GetMsg(ctx, seq); err == nil {
			deliveryLog.Write(m.Data)
			fmt.Fprint(&deliveryLog, m.Header)
		}
	}
	for _, secret := range []string{stripeSecret, scenarioClerkSecret, strings.TrimPrefix(scenarioClerkSecret, "whsec_"),
		scenarioPactaPaySecret, scenarioBraintreeKey.PrivateKey} {
		assert.NotContains(t, srv.logs.String(), secret, "logs")
		assert.NotContains(t, string(metrics), secret, "metrics")
		assert.NotContains(t, deliveryLog.String(), secret, "delivery log")
	}
}
