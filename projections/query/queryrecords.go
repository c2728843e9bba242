package query

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// Single records.

func describe(kind, provider, id string) string {
	if kind == domain.KindWallet {
		return "wallet of user " + id
	}
	return kind + " " + provider + "/" + id
}

// Record returns the JSON of a record: a customer, subscription or order
// of provider, or the wallet of user id (provider is then ignored).
// An absent record is BILLFOLD-NOT-FOUND.
func (q *Query) Record(ctx context.Context, kind, provider, id string) (json.RawMessage, error) {
	key, err := kvstore.RecordKey(kind, provider, id)
	if err != nil {
		return nil, err
	}
	raw, err := q.view.Load().read(ctx, kindProjection[kind], key)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no %s", describe(kind, provider, id))
	}
	return raw, nil
}

// read returns the record part of the value under key, nil when absent.
// It reads the KV bucket itself, not the store's cache, so that a record
// written by another billfold process is seen at once.
func (v *queryView) read(ctx context.Context, projection, key string) (json.RawMessage, error) {
	store := v.stores[projection]
	if store == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no projection %s", projection)
	}
	value, found, err := store.Latest(ctx, key)
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "read "+projection)
	}
	if !found {
		return nil, nil
	}
	return reducers.RecordOf(value)
}

// readMany reads keys of projection, keeping the order and leaving out
// records that are gone: with batched direct gets (LatestValues), or, where
// the server cannot answer those, one KV Get per key, 16 at a time.
func (v *queryView) readMany(ctx context.Context, projection string, keys []string) ([]json.RawMessage, error) {
	store := v.stores[projection]
	if store == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no projection %s", projection)
	}
	values, err := store.LatestValues(ctx, keys)
	if err != nil {
		return v.readEach(ctx, projection, keys)
	}
	out := make([]json.RawMessage, 0, len(keys))
	for _, key := range keys {
		value := values[key]
		if value == nil {
			continue
		}
		rec, err := reducers.RecordOf(value)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			out = append(out, rec)
		}
	}
	return out, nil
}

// readEach reads keys of projection one Get each, 16 at a time.
func (v *queryView) readEach(ctx context.Context, projection string, keys []string) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, key := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = v.read(ctx, projection, key)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(r json.RawMessage) bool { return r == nil }), nil
}

// AsOf returns a record as it stood at provider time t: the journal is
// folded from the start into memory with the record's projection,
// skipping every event whose provider time (Created) is after t.
//
// It costs a full read of the journal and a fold of every event the
// projection handles, each time: seconds for millions of events, and
// memory for every record of the projection. It is meant for an operator's
// occasional question, not for a hot path.
func (q *Query) AsOf(ctx context.Context, kind, provider, id string, t time.Time) (json.RawMessage, error) {
	key, err := kvstore.RecordKey(kind, provider, id)
	if err != nil {
		return nil, err
	}
	name := kindProjection[kind]
	var proj reducers.Projection
	for _, p := range q.projs {
		if p.Name() == name {
			proj = p
		}
	}
	if proj == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no projection %s", name)
	}
	records := projections.MemoryRecords{}
	err = projections.EachJournalEvent(ctx, q.js, func(env *domain.Envelope) error {
		if env.Created.After(t) || !proj.Handles(env.Provider, env.EventType) {
			return nil
		}
		changes, err := proj.Apply(env, records)
		if domain.Permanent(err) {
			return nil // a dead letter then as now
		}
		if err != nil {
			return err
		}
		maps.Copy(records, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if records[key] == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no %s as of %s", describe(kind, provider, id), t.Format(time.RFC3339))
	}
	return reducers.RecordOf(records[key])
}
