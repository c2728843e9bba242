package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	eh "github.com/looplab/eventhorizon"
	"github.com/looplab/eventhorizon/uuid"

	"github.com/billfold/billfold/domain"
)

// Entity is a projection record type: an eventhorizon entity with its
// version.
type Entity interface {
	eh.Entity
	eh.Versionable
}

// Repo is one kind of record of a projection seen as an eventhorizon
// repository, for services that read projections through eventhorizon
// (eventhorizon's repo/cache can wrap it; repo/memory can stand in for it
// in their tests). R is the record type (domain.SubscriptionRecord), P its
// pointer type. Each call reads the projection's current generation, so a
// rebuild's switch is followed.
//
// Records are written by the projection's reducers alone, because a record
// is a function of the journal: Save and Remove refuse with
// BILLFOLD-PROJECTION-READ-ONLY. Change what the journal says instead (a
// provider event, or a rebuild after a reducer fix).
type Repo[R any, P interface {
	*R
	Entity
}] struct {
	c          *Client
	projection string
	kind       string
}

// NewRepo is the repository of the records of kind ("customer",
// "subscription", "order", "wallet") in projection, read through c.
func NewRepo[R any, P interface {
	*R
	Entity
}](c *Client, projection, kind string) *Repo[R, P] {
	return &Repo[R, P]{c: c, projection: projection, kind: kind}
}

var _ eh.ReadWriteRepo = (*Repo[domain.SubscriptionRecord, *domain.SubscriptionRecord])(nil)

// InnerRepo implements eh.ReadRepo; a Repo wraps no other.
func (r *Repo[R, P]) InnerRepo(context.Context) eh.ReadRepo { return nil }

// Find implements eh.ReadRepo. A missing record is eh.ErrEntityNotFound.
func (r *Repo[R, P]) Find(ctx context.Context, id uuid.UUID) (eh.Entity, error) {
	value, _, err := r.c.Get(ctx, r.projection, domain.RecordKey(r.kind, id))
	if errors.Is(err, ErrNotFound) || (err == nil && value == nil) {
		return nil, &eh.RepoError{Err: eh.ErrEntityNotFound, Op: eh.RepoOpFind, EntityID: id}
	}
	if err != nil {
		return nil, &eh.RepoError{Err: domain.Wrap(domain.CodeStoreUnavailable, err, "read "+r.kind), Op: eh.RepoOpFind, EntityID: id}
	}
	rec := P(new(R))
	if err := json.Unmarshal(value, rec); err != nil {
		return nil, &eh.RepoError{Err: domain.Wrap(domain.CodeReducerDecode, err, "stored record"), Op: eh.RepoOpFind, EntityID: id}
	}
	return rec, nil
}

// FindAll implements eh.ReadRepo: every record of the kind, in key order.
func (r *Repo[R, P]) FindAll(ctx context.Context) ([]eh.Entity, error) {
	keys, err := r.c.List(ctx, r.projection)
	if err != nil {
		return nil, &eh.RepoError{Err: domain.Wrap(domain.CodeStoreUnavailable, err, "list "+r.kind), Op: eh.RepoOpFindAll}
	}
	var out []eh.Entity
	for _, key := range keys {
		id, err := uuid.Parse(strings.TrimPrefix(key, r.kind+"."))
		if err != nil || !strings.HasPrefix(key, r.kind+".") {
			continue // not a record of this kind
		}
		rec, err := r.Find(ctx, id)
		if errors.Is(err, eh.ErrEntityNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Close implements eh.ReadRepo; the connection belongs to the caller.
func (r *Repo[R, P]) Close() error { return nil }

// Save implements eh.WriteRepo by refusing: projections are read-only.
func (r *Repo[R, P]) Save(_ context.Context, e eh.Entity) error {
	return &eh.RepoError{Err: errReadOnly, Op: eh.RepoOpSave, EntityID: e.EntityID()}
}

// Remove implements eh.WriteRepo by refusing: projections are read-only.
func (r *Repo[R, P]) Remove(_ context.Context, id uuid.UUID) error {
	return &eh.RepoError{Err: errReadOnly, Op: eh.RepoOpRemove, EntityID: id}
}

var errReadOnly = domain.Errorf(domain.CodeProjectionReadOnly, "projection records are written by their reducers only; change the journal, or rebuild")
