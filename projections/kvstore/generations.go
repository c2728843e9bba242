package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
)

// Generation says which generation of a projection's store is current: the
// one value a rebuild switches, atomically, for every billfold process.
// A projection without one is at generation 1.
type Generation struct {
	Projection string `json:"projection"`
	Number     int    `json:"generation"`
	// Paused is set while a rebuild switches away from this generation:
	// its projector stops so the relay can drain what it wrote.
	Paused bool `json:"paused,omitempty"`
	// Relay is where this generation's change relay starts.
	Relay RelayStart `json:"relay"`
	// Previous is the generation this one replaced, kept (for a look back
	// or a manual switch back) until RetireAt, then deleted.
	Previous   int       `json:"previous,omitempty"`
	RetireAt   time.Time `json:"retire_at,omitzero"`
	RebuildID  string    `json:"rebuild_id,omitempty"`
	SwitchedAt time.Time `json:"switched_at,omitzero"`
}

// RelayStart is where a new generation's relay starts, so that a rebuild
// does not send again what the previous generation already published
// (DESIGN.md invariant 6). The zero value relays every write.
type RelayStart struct {
	// From is the first bucket sequence the relay's consumer reads, when
	// the consumer does not exist yet.
	From uint64 `json:"relay_from,omitempty"`
	// Writes at or after SkipFrom that a journal event at or below
	// PublishedUpTo caused were published by the previous generation, and
	// are skipped.
	SkipFrom      uint64 `json:"relay_skip_from,omitempty"`
	PublishedUpTo uint64 `json:"relay_published_up_to,omitempty"`
}

// Generations reads and writes the generation pointers.
type Generations struct {
	kv jetstream.KeyValue
}

// EnsureGenerations creates (or opens) the generation pointers' bucket.
func EnsureGenerations(ctx context.Context, js jetstream.JetStream, replicas int) (Generations, error) {
	kv, err := EnsureBookkeeping(ctx, js, domain.GenerationsBucket, "billfold: the current generation of each projection", 16, replicas)
	return Generations{kv}, err
}

// EnsureBookkeeping creates or updates one of billfold's small bookkeeping
// KV buckets (file storage, replicas as the streams); a failure is
// BILLFOLD-STORE-UNAVAILABLE.
func EnsureBookkeeping(ctx context.Context, js jetstream.JetStream, bucket, description string, history uint8, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: description, History: history,
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "bucket "+bucket)
	}
	return kv, nil
}

// Get returns projection's generation and the pointer's revision (0 when
// it was never written: generation 1).
func (g Generations) Get(ctx context.Context, projection string) (Generation, uint64, error) {
	e, err := g.kv.Get(ctx, projection)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Generation{Projection: projection, Number: 1}, 0, nil
	}
	if err != nil {
		return Generation{}, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "generation of "+projection)
	}
	gen, err := DecodeGeneration(e.Value())
	return gen, e.Revision(), err
}

// WatchAll watches every pointer: the current ones, then each change.
func (g Generations) WatchAll(ctx context.Context) (jetstream.KeyWatcher, error) {
	return g.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
}

// Put writes gen if the pointer is still at revision (0: never written).
// A lost race is BILLFOLD-CONFLICT.
func (g Generations) Put(ctx context.Context, gen Generation, revision uint64) (uint64, error) {
	b, err := json.Marshal(gen)
	if err != nil {
		return 0, err
	}
	return jsio.PutIfRevision(ctx, g.kv, gen.Projection, b, revision, "generation of "+gen.Projection)
}

// DecodeGeneration reads a stored generation pointer.
func DecodeGeneration(b []byte) (Generation, error) {
	var gen Generation
	if err := json.Unmarshal(b, &gen); err != nil || gen.Number < 1 {
		return Generation{}, domain.Errorf(domain.CodeStoreUnavailable, "generation pointer unreadable: %q", b)
	}
	return gen, nil
}
