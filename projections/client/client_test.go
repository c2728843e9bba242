package client_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	eh "github.com/looplab/eventhorizon"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/client"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// A downstream service reads a subscription, lists them, and follows its
// changes from the start, then resumes after the first one.
func TestClient(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	e, err := projections.NewEngine(ctx, js, reducers.All(reducers.DefaultOptions()), projections.EngineOptions{Replicas: 1, Log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	c := client.New(js)
	all, err := c.Watch(ctx, domain.ProjectionSubscriptions, 1)
	require.NoError(t, err)

	j := ingest.NewJournal(nc, js)
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for i, s := range []struct{ id, typ, status string }{
		{"evt_c1", "customer.subscription.created", "active"},
		{"evt_c2", "customer.subscription.updated", "past_due"},
	} {
		ev := samples.Stripe{EventID: s.id, Type: s.typ, Created: base.Add(time.Duration(i) * time.Hour), CustomerID: "cus_c", SubscriptionID: "sub_c", Status: s.status}
		_, err := j.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: ev.EventID, EventType: ev.Type,
			Created: ev.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: ev.Event()})
		require.NoError(t, err)
	}

	var got []client.Change
	for len(got) < 2 {
		select {
		case ch := <-all:
			got = append(got, ch)
		case <-ctx.Done():
			t.Fatalf("changes: %+v", got)
		}
	}
	for i, want := range []struct {
		event string
		state domain.LifecycleState
	}{{"evt_c1", domain.StateActive}, {"evt_c2", domain.StatePastDue}} {
		var rec domain.SubscriptionRecord
		require.NoError(t, json.Unmarshal(got[i].Record, &rec))
		assert.Equal(t, want.event, got[i].EventID)
		assert.Equal(t, i+1, got[i].Version)
		assert.Equal(t, want.state, rec.State)
		assert.Equal(t, "stripe", got[i].Provider)
		assert.Equal(t, "sub_c", got[i].ID)
	}
	assert.Less(t, got[0].Seq, got[1].Seq)

	resumed, err := c.Watch(ctx, domain.ProjectionSubscriptions, got[0].Seq+1)
	require.NoError(t, err)
	select {
	case ch := <-resumed:
		assert.Equal(t, got[1].Seq, ch.Seq, "resumes after the change handled")
	case <-ctx.Done():
		t.Fatal("no change after resuming")
	}

	key := client.Key("subscription", domain.Stripe, "sub_c")
	rec, rev, err := c.Get(ctx, domain.ProjectionSubscriptions, key)
	require.NoError(t, err)
	assert.NotZero(t, rev)
	assert.JSONEq(t, string(got[1].Record), string(rec))
	_, _, err = c.Get(ctx, domain.ProjectionSubscriptions, client.Key("subscription", domain.Stripe, "sub_none"))
	assert.ErrorIs(t, err, client.ErrNotFound)

	keys, err := c.List(ctx, domain.ProjectionSubscriptions)
	require.NoError(t, err)
	assert.Equal(t, []string{key}, keys)

	// The same records through eventhorizon's repository interface.
	repo := client.NewRepo[domain.SubscriptionRecord](c, domain.ProjectionSubscriptions, domain.KindSubscription)
	entities, err := repo.FindAll(ctx)
	require.NoError(t, err)
	require.Len(t, entities, 1)
	ent, err := repo.Find(ctx, (&domain.SubscriptionRecord{Provider: domain.Stripe, ID: "sub_c"}).EntityID())
	require.NoError(t, err)
	sub := ent.(*domain.SubscriptionRecord)
	assert.Equal(t, "sub_c", sub.ID)
	assert.Equal(t, domain.StatePastDue, sub.State)
	assert.Equal(t, 2, sub.AggregateVersion())
	_, err = repo.Find(ctx, (&domain.SubscriptionRecord{Provider: domain.Stripe, ID: "sub_none"}).EntityID())
	assert.ErrorIs(t, err, eh.ErrEntityNotFound)
	assert.Equal(t, domain.CodeProjectionReadOnly, domain.ErrorCode(repo.Save(ctx, sub)))
	assert.Equal(t, domain.CodeProjectionReadOnly, domain.ErrorCode(repo.Remove(ctx, sub.EntityID())))
}
