package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// seen is a minimal mergeable projection: per object, the set of event ids
// that touched it. Events of type "poison" are refused.
type seen struct{}

func (seen) Name() string { return "seen" }

func (seen) Handles(_ domain.Provider, t string) bool { return t != "ignored.type" }

func (seen) Apply(ev *domain.Envelope, records reducers.Lookup) (reducers.Changes, error) {
	if ev.EventType == "poison" {
		return nil, domain.Errorf(domain.CodeReducerInvalid, "poison event %s", ev.EventID)
	}
	raw, err := records.Get(ev.ObjectID)
	if err != nil {
		return nil, err
	}
	var ids []string
	if raw != nil {
		_ = json.Unmarshal(raw, &ids)
	}
	if slices.Contains(ids, ev.EventID) {
		return nil, nil
	}
	ids = append(ids, ev.EventID)
	slices.Sort(ids)
	b, _ := json.Marshal(ids)
	return reducers.Changes{ev.ObjectID: b}, nil
}

type fixture struct {
	js      jetstream.JetStream
	journal *ingest.Journal
	store   *kvstore.Store
	log     *slog.Logger
}

func newFixture(t testing.TB) *fixture {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	_, err := js.CreateOrUpdateStream(ctx, deadletter.StreamConfig(1))
	require.NoError(t, err)
	store, err := kvstore.EnsureStore(ctx, js, "seen", 1, 1)
	require.NoError(t, err)
	return &fixture{js: js, journal: ingest.NewJournal(nc, js), store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (f *fixture) journalEvent(t *testing.T, id, typ, object string) {
	t.Helper()
	_, err := f.journal.Append(context.Background(), &domain.Envelope{
		Provider: domain.Stripe, Endpoint: "stripe", EventID: id, EventType: typ, ObjectID: object,
		Created: time.Unix(1700000000, 0), Received: time.Now(), Verification: domain.VerifiedSignature, Body: []byte(`{}`),
	})
	require.NoError(t, err)
}

func (f *fixture) run(t *testing.T, n int) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		p := projections.NewProjector(seen{}, f.js, kvstore.NewStore(f.js, mustKV(t, f.js)), nil, f.log, projections.RetryPolicy{})
		wg.Go(func() { _ = p.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return cancel
}

func mustKV(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	kv, err := js.KeyValue(context.Background(), domain.ProjectionBucket("seen", 1))
	require.NoError(t, err)
	return kv
}

func (f *fixture) record(t *testing.T, key string) []string {
	e, err := mustKV(t, f.js).Get(context.Background(), key)
	if err != nil {
		return nil
	}
	var ids []string
	require.NoError(t, json.Unmarshal(e.Value(), &ids))
	return ids
}

func (f *fixture) deadLetters(t *testing.T) []deadletter.Letter {
	s, err := f.js.Stream(context.Background(), domain.DeadLetterStream)
	require.NoError(t, err)
	var out []deadletter.Letter
	info, _ := s.Info(context.Background())
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		var dl deadletter.Letter
		require.NoError(t, json.Unmarshal(m.Data, &dl))
		out = append(out, dl)
	}
	return out
}

func TestProjectorFoldsTheJournal(t *testing.T) {
	f := newFixture(t)
	for i := range 30 {
		f.journalEvent(t, fmt.Sprintf("evt_%02d", i), "customer.updated", fmt.Sprintf("cus_%d", i%3))
	}
	f.journalEvent(t, "evt_poison", "poison", "cus_0")
	f.journalEvent(t, "evt_ignored", "ignored.type", "cus_0")
	f.journalEvent(t, "evt_after", "customer.updated", "cus_0")
	f.run(t, 1)

	require.Eventually(t, func() bool { return len(f.record(t, "cus_0")) == 11 }, 10*time.Second, 20*time.Millisecond)
	assert.Len(t, f.record(t, "cus_1"), 10)
	assert.Contains(t, f.record(t, "cus_0"), "evt_after", "a failing event does not block the ones after it")
	assert.NotContains(t, f.record(t, "cus_0"), "evt_ignored")
	dls := f.deadLetters(t)
	require.Len(t, dls, 1)
	assert.Equal(t, "evt_poison", dls[0].EventID)
	assert.Equal(t, domain.CodeReducerInvalid, dls[0].Code)
	assert.Equal(t, deadletter.ClassPermanent, dls[0].Class)
	assert.Equal(t, 1, dls[0].Attempts)
}

// Several projectors sharing the durable consumer and the store (several
// billfold processes) give the same records as one.
func TestConcurrentProjectorsConverge(t *testing.T) {
	f := newFixture(t)
	const events = 300
	for i := range events {
		f.journalEvent(t, fmt.Sprintf("evt_%03d", i), "customer.updated", fmt.Sprintf("cus_%d", i%4))
	}
	f.run(t, 3)
	require.Eventually(t, func() bool {
		n := 0
		for c := range 4 {
			n += len(f.record(t, fmt.Sprintf("cus_%d", c)))
		}
		return n == events
	}, 20*time.Second, 50*time.Millisecond)
	for c := range 4 {
		assert.Len(t, f.record(t, fmt.Sprintf("cus_%d", c)), events/4)
	}
	assert.Empty(t, f.deadLetters(t))
}

// contender is the seen projection raced by another writer: the first n
// folds of an event of type "contended" find, when they write, that the
// record's revision has moved (its content has not), as when another
// writer's write of the record is in flight through a lost quorum and the
// store refuses every compare-and-set on it until that write commits.
type contender struct {
	seen
	kv   jetstream.KeyValue
	left *atomic.Int32
}

func (c contender) Apply(ev *domain.Envelope, records reducers.Lookup) (reducers.Changes, error) {
	changes, err := c.seen.Apply(ev, records)
	if err == nil && ev.EventType == "contended" && c.left.Add(-1) >= 0 {
		raw, err := c.kv.Get(context.Background(), ev.ObjectID)
		if err != nil {
			return nil, err
		}
		if _, err := c.kv.Put(context.Background(), ev.ObjectID, raw.Value()); err != nil {
			return nil, err
		}
	}
	return changes, err
}

// An event whose record write keeps losing its compare-and-set for longer
// than the immediate re-folds allow is handed back to the journal and
// folded again on a later delivery, never dead-lettered (which would leave
// it out of the projection until a scheduled retry a minute later), and
// the events after it are not held up.
func TestAPersistentlyLostRaceIsHandedBackNotDeadLettered(t *testing.T) {
	f := newFixture(t)
	f.journalEvent(t, "evt_first", "customer.updated", "cus_0")
	f.journalEvent(t, "evt_contended", "contended", "cus_0")
	f.journalEvent(t, "evt_after", "customer.updated", "cus_1")
	left := &atomic.Int32{}
	left.Store(50) // more than one delivery's re-folds, fewer than the deliveries' allowed
	ctx, cancel := context.WithCancel(context.Background())
	kv := mustKV(t, f.js)
	p := projections.NewProjector(contender{kv: kv, left: left}, f.js, kvstore.NewStore(f.js, kv), nil, f.log,
		projections.RetryPolicy{Attempts: 6, Initial: time.Millisecond, Max: 50 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Go(func() { _ = p.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	require.Eventually(t, func() bool { return slices.Contains(f.record(t, "cus_0"), "evt_contended") }, 20*time.Second, 20*time.Millisecond,
		"the contended event is folded once the race ends")
	assert.Equal(t, []string{"evt_contended", "evt_first"}, f.record(t, "cus_0"))
	assert.Equal(t, []string{"evt_after"}, f.record(t, "cus_1"), "the events after it are folded meanwhile")
	assert.Empty(t, f.deadLetters(t))
	assert.LessOrEqual(t, left.Load(), int32(0), "the race was lost 50 times")
}
