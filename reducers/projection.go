// Package reducers holds billfold's pure folds: each projection's Apply
// turns (current records, journal event) into new records.
//
// Reducers are deterministic: no clock, no randomness, no I/O of their own.
// The records they read come through a Lookup the caller provides (the live
// projector's KV store, a rebuild's memory, a test's map). Records are
// mergeable state (last-writer-wins registers ordered by the provider's
// clock, sets keyed by provider ids), so folding the same set of events in
// any order, with any duplicates, gives the same records.
//
// They import domain (with its provider wire packages) and lifecycle only,
// and must never import ingest or projections.
package reducers

import "github.com/billfold/billfold/domain"

// Lookup reads a record by key as stored: nil when there is none. An error
// is the store's (transient) failure, never a missing record.
type Lookup interface {
	Get(key string) ([]byte, error)
}

// Changes are the records an event changed, encoded, by key.
type Changes map[string][]byte

// Projection is one projection's fold.
type Projection interface {
	// Name is the projection's name: customers, subscriptions, orders,
	// wallets.
	Name() string
	// Handles reports whether the projection has a reducer for events of
	// this type; events it does not handle are "skipped".
	Handles(provider domain.Provider, eventType string) bool
	// Apply folds ev into the records it reads through records and returns
	// those it changed. Applying an event already folded in changes
	// nothing. A *domain.Error with a BILLFOLD-REDUCER-* code is permanent
	// (the event goes to the dead letters); any other error is the
	// Lookup's and is retried.
	Apply(ev *domain.Envelope, records Lookup) (Changes, error)
}
