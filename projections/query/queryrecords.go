package query

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
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
	value, err := v.readValue(ctx, projection, key)
	if err != nil || value == nil {
		return nil, err
	}
	return reducers.RecordOf(value)
}

// readValue returns the stored value under key, nil when absent.
func (v *queryView) readValue(ctx context.Context, projection, key string) ([]byte, error) {
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
	return value, nil
}

// readMany reads the records of keys of projection, keeping the order and
// leaving out records that are gone, and, with keep, those whose indexed
// fields keep refuses (a list checks again what its index chose the page
// by: reducers.IndexedOf, one pass over the record, nothing decoded). It
// reads with batched direct gets (LatestValues), or, where the server
// cannot answer those, one KV Get per key, 16 at a time.
func (v *queryView) readMany(ctx context.Context, projection string, keys []string, keep func(reducers.Indexed) bool) ([]json.RawMessage, error) {
	store := v.stores[projection]
	if store == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no projection %s", projection)
	}
	values, err := store.LatestValues(ctx, keys)
	if err != nil {
		if values, err = v.readEach(ctx, projection, keys); err != nil {
			return nil, err
		}
	}
	out := make([]json.RawMessage, 0, len(keys))
	for _, key := range keys {
		value := values[key]
		if value == nil {
			continue
		}
		if keep != nil {
			if ix, ok := reducers.IndexedOf(value); !ok || !keep(ix) {
				continue
			}
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

// readEach reads the stored values of keys of projection, one Get each,
// 16 at a time; absent ones are left out.
func (v *queryView) readEach(ctx context.Context, projection string, keys []string) (map[string][]byte, error) {
	values := make([][]byte, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, key := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			values[i], errs[i] = v.readValue(ctx, projection, key)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(keys))
	for i, key := range keys {
		if values[i] != nil {
			out[key] = values[i]
		}
	}
	return out, nil
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
