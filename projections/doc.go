// Package projections is billfold's read side: the engine that folds the
// journal into the projections with the reducers (the projectors, their
// per-event handler and its middleware, requeues and scheduled retries),
// the projection stores and their generations, rebuilds, replays and
// verifications, the relays that publish the change feed, and the event
// ledger that shows what became of each provider event.
// Rooms of their own sit under it: projections/deadletter (the dead
// letters), projections/feed (the change feed's format and SSE),
// projections/httpapi (the admin API's HTTP conventions), projections/jsio
// (the JetStream I/O every room shares), projections/index (the query
// indexes), and, above it, projections/query (the query API),
// projections/admin (the admin operations over HTTP), projections/console
// and projections/client.
//
// It must never write to the journal or the delivery log, and it must never
// depend on delivery order for a projection's content: that is the reducers'
// job, by the provider's clock. It imports domain, reducers and its own
// lower rooms; it must never import ingest, cmd, or the rooms above it
// (query, admin, console, client).
package projections
