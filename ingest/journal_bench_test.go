package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/test/natstest"
)

// BenchmarkJournalAppend measures durable appends of distinct 3 KB events
// from 64 concurrent publishers, the ingest path's journal cost.
func BenchmarkJournalAppend(b *testing.B) {
	nc, js := natstest.Connect(b, natstest.Server(b))
	require.NoError(b, ingest.EnsureStreams(context.Background(), js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	body := []byte(`{"id":"evt","pad":"` + strings.Repeat("x", 3000) + `"}`)
	b.SetParallelism(32)
	b.ReportAllocs()
	var n int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			env := envelope(fmt.Sprintf("evt_%d_%d", time.Now().UnixNano(), n))
			env.Body = body
			if _, err := j.Append(context.Background(), env); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkJournalDedupeIndex measures what the dedupe mechanism (one
// subject per event id, checked by the stream's per-subject index) costs:
// run it with -benchtime=1000000x to see the figures at 1M distinct events.
// It reports the server's heap and the store's size on disk per event, and
// how long a restart takes to rebuild the index.
func BenchmarkJournalDedupeIndex(b *testing.B) {
	dir := b.TempDir()
	srv := natstest.Start(b, natstest.Options(dir))
	nc, js := natstest.Connect(b, srv)
	require.NoError(b, ingest.EnsureStreams(context.Background(), js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	const workers = 64
	ids := make(chan int, workers)
	done := make(chan struct{})
	for range workers {
		go func() {
			for i := range ids {
				env := envelope(fmt.Sprintf("evt_%024d", i))
				env.Body = []byte(`{}`)
				if _, err := j.Append(context.Background(), env); err != nil {
					b.Error(err)
				}
			}
			done <- struct{}{}
		}()
	}
	for i := range b.N {
		ids <- i
	}
	close(ids)
	for range workers {
		<-done
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "heap-B/event")
	var disk int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			disk += fi.Size()
		}
		return nil
	})
	b.ReportMetric(float64(disk)/float64(b.N), "disk-B/event")

	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	start := time.Now()
	srv = natstest.Start(b, natstest.Options(dir))
	nc, js = natstest.Connect(b, srv)
	s, err := js.Stream(context.Background(), domain.JournalStream)
	require.NoError(b, err)
	b.ReportMetric(time.Since(start).Seconds(), "restart-s")
	require.Equal(b, uint64(b.N), s.CachedInfo().State.Msgs)
	_, err = ingest.NewJournal(nc, js).Append(context.Background(), envelope(fmt.Sprintf("evt_%024d", 0)))
	require.NoError(b, err)
}
