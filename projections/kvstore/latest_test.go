package kvstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/test/natstest"
)

// kvstore.LatestValues answers the current value of each key in one batched read:
// the last write of a key rewritten, nothing for a deleted or absent key,
// and more keys than one batch holds.
func TestLatestValues(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	store, err := kvstore.EnsureStore(ctx, js, "latest", 1, 1)
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, store.Bucket())
	require.NoError(t, err)
	var keys []string
	for i := range 600 {
		key := "subscription.k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		keys = append(keys, key)
		_, err := kv.Put(ctx, key, []byte("v1-"+key))
		require.NoError(t, err)
	}
	_, err = kv.Put(ctx, keys[0], []byte("v2"))
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, keys[1]))

	got, err := kvstore.LatestValues(ctx, js, store.Bucket(), append(keys, "subscription.absent"))
	require.NoError(t, err)
	assert.Len(t, got, 599)
	assert.Equal(t, "v2", string(got[keys[0]]))
	assert.NotContains(t, got, keys[1])
	assert.NotContains(t, got, "subscription.absent")
	assert.Equal(t, "v1-"+keys[599], string(got[keys[599]]))

	none, err := kvstore.LatestValues(ctx, js, store.Bucket(), []string{"subscription.nothing"})
	require.NoError(t, err)
	assert.Empty(t, none)
}

// BenchmarkReadPage reads a page of 100 stored records of 3 KB two ways:
// one batched direct get (kvstore.LatestValues, what the query API does) and one
// KV Get per key, 16 at a time (what it did before).
func BenchmarkReadPage(b *testing.B) {
	_, js := natstest.Connect(b, natstest.Server(b))
	ctx := context.Background()
	store, err := kvstore.EnsureStore(ctx, js, "page", 1, 1)
	require.NoError(b, err)
	kv, err := js.KeyValue(ctx, store.Bucket())
	require.NoError(b, err)
	value := make([]byte, 3000)
	var keys []string
	for i := range 100 {
		key := fmt.Sprintf("subscription.k%03d", i)
		keys = append(keys, key)
		_, err := kv.Put(ctx, key, value)
		require.NoError(b, err)
	}
	b.Run("batched", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, err := kvstore.LatestValues(ctx, js, store.Bucket(), keys); err != nil || len(got) != len(keys) {
				b.Fatal(err, len(got))
			}
		}
	})
	b.Run("get-each", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var wg sync.WaitGroup
			sem := make(chan struct{}, 16)
			for _, k := range keys {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					if _, err := kv.Get(ctx, k); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
	})
}
