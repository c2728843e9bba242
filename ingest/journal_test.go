package ingest_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/test/natstest"
)

func envelope(id string) *domain.Envelope {
	return &domain.Envelope{
		Provider: domain.Stripe, Endpoint: "stripe", EventID: id, EventType: "customer.created",
		Created: time.Unix(1700000000, 0).UTC(), Received: time.Now().UTC(), RequestID: "req-" + id,
		Verification: domain.VerifiedSignature, Body: []byte(`{"id":"` + id + `"}`),
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestJournalAppendsEachEventOnce(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	require.NoError(t, ingest.EnsureStreams(ctx(t), js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)

	first, err := j.Append(ctx(t), envelope("evt_1"))
	require.NoError(t, err)
	assert.False(t, first.Duplicate)
	second, err := j.Append(ctx(t), envelope("evt_1"))
	require.NoError(t, err)
	assert.True(t, second.Duplicate)
	assert.Equal(t, first.Sequence, second.Sequence, "a duplicate reports the original's sequence")
	other, err := j.Append(ctx(t), envelope("evt_2"))
	require.NoError(t, err)
	assert.False(t, other.Duplicate)

	s, err := js.Stream(ctx(t), domain.JournalStream)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), s.CachedInfo().State.Msgs)
	m, err := s.GetMsg(ctx(t), first.Sequence)
	require.NoError(t, err)
	got, err := domain.DecodeEnvelope(m.Header, m.Data, m.Sequence)
	require.NoError(t, err)
	want := *envelope("evt_1")
	want.Sequence, want.Received, got.Received = first.Sequence, time.Time{}, time.Time{}
	assert.Equal(t, want, got, "the journal keeps the envelope and the raw body")
}

func TestJournalConcurrentDeliveriesOfOneEventAcceptOnce(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	require.NoError(t, ingest.EnsureStreams(ctx(t), js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)

	var accepted, duplicates atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			res, err := j.Append(ctx(t), envelope("evt_race"))
			if assert.NoError(t, err) {
				if res.Duplicate {
					duplicates.Add(1)
				} else {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), accepted.Load())
	assert.Equal(t, int32(49), duplicates.Load())
}

// Dedupe must not rest on JetStream's in-memory duplicate window: with a
// window of 100 ms, a redelivery a second later is still a duplicate.
func TestJournalDedupeOutlastsTheDuplicateWindow(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	cfg := ingest.JournalConfig(1)
	cfg.Duplicates = 100 * time.Millisecond
	_, err := js.CreateStream(ctx(t), cfg)
	require.NoError(t, err)
	j := ingest.NewJournal(nc, js)

	_, err = j.Append(ctx(t), envelope("evt_late"))
	require.NoError(t, err)
	time.Sleep(time.Second)
	res, err := j.Append(ctx(t), envelope("evt_late"))
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
}

func TestJournalDedupeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := natstest.Options(dir)
	srv := natstest.Start(t, opts)
	nc, js := natstest.Connect(t, srv)
	require.NoError(t, ingest.EnsureStreams(ctx(t), js, ingest.StreamOptions{Replicas: 1}))
	first, err := ingest.NewJournal(nc, js).Append(ctx(t), envelope("evt_restart"))
	require.NoError(t, err)
	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	srv = natstest.Start(t, natstest.Options(dir))
	nc, js = natstest.Connect(t, srv)
	require.NoError(t, ingest.EnsureStreams(ctx(t), js, ingest.StreamOptions{Replicas: 1}))
	res, err := ingest.NewJournal(nc, js).Append(ctx(t), envelope("evt_restart"))
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
	assert.Equal(t, first.Sequence, res.Sequence)
}

func TestJournalUnavailableWhenNATSIsDown(t *testing.T) {
	srv := natstest.Server(t)
	nc, js := natstest.Connect(t, srv)
	require.NoError(t, ingest.EnsureStreams(ctx(t), js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	require.NoError(t, j.Ready(ctx(t)))
	srv.Shutdown()
	srv.WaitForShutdown()
	require.Eventually(t, func() bool { return !nc.IsConnected() }, 5*time.Second, 10*time.Millisecond)

	_, err := j.Append(ctx(t), envelope("evt_down"))
	assert.Equal(t, domain.CodeJournalUnavailable, domain.ErrorCode(err))
	assert.Equal(t, domain.CodeJournalUnavailable, domain.ErrorCode(j.Ready(ctx(t))))
}

func TestJournalIsAppendOnly(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	require.NoError(t, ingest.EnsureStreams(ctx(t), js, ingest.StreamOptions{Replicas: 1}))
	res, err := ingest.NewJournal(nc, js).Append(ctx(t), envelope("evt_keep"))
	require.NoError(t, err)
	s, err := js.Stream(ctx(t), domain.JournalStream)
	require.NoError(t, err)
	assert.Error(t, s.DeleteMsg(ctx(t), res.Sequence))
	assert.Error(t, s.Purge(ctx(t)))
	_, err = s.GetMsg(ctx(t), res.Sequence)
	assert.NoError(t, err)
}
