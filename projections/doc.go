// Package projections is billfold's read side: it folds the journal into the
// projections with the reducers, keeps the projection stores, dead letters
// and rebuilds, and serves the query API and change feeds, including the
// event ledger that shows what became of each provider event.
//
// It must never write to the journal or the delivery log, and it must never
// depend on delivery order for a projection's content: that is the reducers'
// job, by the provider's clock.
package projections
