package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// ledgerFixture is an engine over a real embedded NATS with billfold's
// streams, for the ledger's reads.
type ledgerFixture struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	engine *projections.Engine
}

func newLedgerFixture(t *testing.T) *ledgerFixture {
	t.Helper()
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{}))
	engine, err := projections.NewEngine(ctx, js, reducers.All(reducers.DefaultOptions()), projections.EngineOptions{})
	require.NoError(t, err)
	return &ledgerFixture{nc: nc, js: js, engine: engine}
}

// consumerCounts is how many consumers each of billfold's streams holds.
func consumerCounts(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, name := range []string{domain.JournalStream, domain.DeliveryStream, domain.DeadLetterStream, domain.ChangesStream} {
		s, err := js.Stream(context.Background(), name)
		require.NoError(t, err)
		info, err := s.Info(context.Background())
		require.NoError(t, err)
		out[name] = info.State.Consumers
		assert.Equal(t, domain.MaxStreamConsumers, info.Config.MaxConsumers, "%s sets its consumer cap explicitly", name)
	}
	return out
}

// The lookup storm: more than 1,000 event lookups in a few seconds
// (nats-server's default consumer cap per stream was 1,000, and each
// lookup used to leave a consumer behind) all answer, and leave no
// consumer behind; nor do the ledger's list reads.
func TestLookupStormLeavesNoConsumers(t *testing.T) {
	f := newLedgerFixture(t)
	ctx := context.Background()
	journal := ingest.NewJournal(f.nc, f.js)
	const events = 20
	for i := range events {
		id := fmt.Sprintf("evt_storm_%02d", i)
		_, err := journal.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: id, EventType: "customer.updated",
			ObjectID: "cus_1", Created: time.Unix(1700000000, 0), Received: time.Now(), Verification: domain.VerifiedSignature, Body: []byte(`{"id":"` + id + `"}`)})
		require.NoError(t, err)
		for n := range 3 {
			outcome := domain.OutcomeAccepted
			if n > 0 {
				outcome = domain.OutcomeDuplicate
			}
			d, err := json.Marshal(domain.Delivery{Provider: domain.Stripe, Endpoint: "stripe", EventID: id, Outcome: outcome, Received: time.Now()})
			require.NoError(t, err)
			_, err = f.js.Publish(ctx, domain.DeliverySubject("stripe", id), d)
			require.NoError(t, err)
		}
	}
	before := consumerCounts(t, f.js)
	ledger := New(f.engine)

	const lookups = 1100
	var wg sync.WaitGroup
	errs := make(chan error, lookups)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				e, err := ledger.Event(ctx, "stripe", fmt.Sprintf("evt_storm_%02d", i%events))
				switch {
				case err != nil:
					errs <- err
				case e.Journal == nil || e.Deliveries.Count != 3 || e.Deliveries.Duplicates != 2 || len(e.Deliveries.Deliveries) != 3:
					errs <- fmt.Errorf("lookup %d: journal %v, deliveries %+v", i, e.Journal != nil, e.Deliveries)
				}
			}
		})
	}
	for i := range lookups {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for range 50 {
		_, err := ledger.List(ctx, EventFilter{})
		require.NoError(t, err)
		_, err = ledger.List(ctx, EventFilter{Status: StatusFailed})
		require.NoError(t, err)
	}
	assert.Equal(t, before, consumerCounts(t, f.js), "no read left a consumer behind")
}

// An event with more deliveries than the ledger lists: the counts cover all
// of them, the list holds the newest MaxLedgerDeliveries.
func TestLedgerDeliveriesBeyondTheList(t *testing.T) {
	f := newLedgerFixture(t)
	ctx := context.Background()
	const n = MaxLedgerDeliveries + 7
	for i := range n {
		outcome := domain.OutcomeDuplicate
		if i%2 == 0 {
			outcome = domain.OutcomeRejected
		}
		d, err := json.Marshal(domain.Delivery{Provider: domain.Stripe, Endpoint: "stripe", EventID: "evt_many", Outcome: outcome, Attempt: i + 1, Received: time.Now()})
		require.NoError(t, err)
		_, err = f.js.Publish(ctx, domain.DeliverySubject("stripe", "evt_many"), d)
		require.NoError(t, err)
	}
	e, err := New(f.engine).Event(ctx, "stripe", "evt_many")
	require.NoError(t, err)
	assert.Equal(t, n, e.Deliveries.Count)
	assert.Equal(t, n/2, e.Deliveries.Duplicates)
	require.Len(t, e.Deliveries.Deliveries, MaxLedgerDeliveries)
	assert.Equal(t, 8, e.Deliveries.Deliveries[0].Attempt, "the oldest listed is the 8th")
	assert.Equal(t, n, e.Deliveries.Deliveries[MaxLedgerDeliveries-1].Attempt)
	assert.Equal(t, domain.OutcomeRejected, e.Deliveries.LastOutcome)
}
