// Package client is for downstream Go services that read billfold's
// projections over NATS: Get and List read the projection KV buckets,
// NewRepo serves them as eventhorizon repositories (billfold's adapter for
// services that read through eventhorizon), Watch follows the change feed
// (BILLFOLD_CHANGES) from a position.
//
// It reads only; it never writes a projection, the feed or the journal.
// docs/consuming.md shows a complete program.
//
// It imports domain and projections (for the record and change types); it
// must never import ingest, reducers or cmd, which a downstream service
// does not run.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// ErrNotFound is Get's error for a key the projection does not hold.
var ErrNotFound = errors.New("billfold: record not found")

// Client reads billfold projections over a JetStream connection.
type Client struct {
	js jetstream.JetStream
}

// New returns a client using js.
func New(js jetstream.JetStream) *Client { return &Client{js: js} }

// Change is one record change from the feed.
type Change struct {
	// Seq is the change's position in the feed: resume with Seq+1.
	Seq        uint64
	Projection string
	Provider   string
	ID         string
	Version    int
	// EventID is the provider event that made this version.
	EventID string
	// Record is the record as stored (docs/projections.md).
	Record json.RawMessage
}

// Key is the key of a record in its projection: kind is "customer",
// "subscription", "order" or "wallet"; a wallet's provider is ignored and
// its id is the user id.
func Key(kind string, provider domain.Provider, id string) string {
	key, _ := kvstore.RecordKey(kind, string(provider), id) // "" for an unknown kind or empty id: found nowhere
	return key
}

// bucket opens the current generation of a projection's store, as the
// generation pointer (BILLFOLD_GENERATIONS) says: a rebuild switches it,
// and the replaced generation is deleted after its grace period.
func (c *Client) bucket(ctx context.Context, projection string) (jetstream.KeyValue, error) {
	return c.js.KeyValue(ctx, domain.ProjectionBucket(projection, c.Generation(ctx, projection)))
}

// Generation is the current generation of a projection's store: 1 until a
// rebuild switched it.
func (c *Client) Generation(ctx context.Context, projection string) int {
	kv, err := c.js.KeyValue(ctx, domain.GenerationsBucket)
	if err != nil {
		return 1
	}
	e, err := kv.Get(ctx, projection)
	if err != nil {
		return 1
	}
	var g kvstore.Generation
	if json.Unmarshal(e.Value(), &g) != nil || g.Number < 1 {
		return 1
	}
	return g.Number
}

// Get returns the record stored under key in projection (see Key) and its
// revision, or ErrNotFound.
func (c *Client) Get(ctx context.Context, projection, key string) ([]byte, uint64, error) {
	kv, err := c.bucket(ctx, projection)
	if err != nil {
		return nil, 0, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	rec, err := reducers.RecordOf(e.Value())
	if err != nil {
		return nil, 0, err
	}
	return rec, e.Revision(), nil
}

// List returns the keys of every record of projection, without the
// projection's helper entries (alias, topup).
func (c *Client) List(ctx context.Context, projection string) ([]string, error) {
	kv, err := c.bucket(ctx, projection)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range keys.Keys() {
		if kind, _, _ := strings.Cut(k, "."); !domain.IsRecordKind(kind) {
			continue
		}
		out = append(out, k)
	}
	_ = keys.Stop() // the listing is complete once Keys is closed
	return out, nil
}

// Watch follows the changes of projection ("" for every projection) from
// feed position fromSeq: 1 for the whole feed, the Seq of the last change
// handled plus one to resume, 0 for the changes stored from now on only. The channel closes when ctx ends. NATS reconnects are
// handled; changes arrive in feed order, each once.
func (c *Client) Watch(ctx context.Context, projection string, fromSeq uint64) (<-chan Change, error) {
	r, err := feed.OpenReader(ctx, c.js, domain.ChangeFilter(projection), fromSeq)
	if err != nil {
		return nil, err
	}
	out := make(chan Change)
	go func() {
		defer close(out)
		defer r.Close()
		for {
			seq, data, err := r.Next()
			if err != nil {
				return
			}
			var body feed.Change
			if err := json.Unmarshal(data, &body); err != nil {
				continue
			}
			ch := Change{Seq: seq, Projection: body.Projection, Provider: body.Provider, ID: body.ID,
				Version: body.Version, EventID: body.EventID, Record: body.Record}
			select {
			case out <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
