// Package projections is billfold's read side engine: it folds the journal
// into the projections with the reducers (the projectors, their per-event
// handler and its middleware, the joint fold that feeds every projector
// from one journal consumer, requeues and scheduled retries, pause and
// resume), runs each projection's current generation (its projector and
// its change feed relay) and follows the generation pointers a rebuild
// switches, and reads the journal for the rooms above it: journal.go is the
// journal's one reader on the read side (its head, the fold's read of
// every event, an event by id or by sequence), which ledger, rebuild and
// the bench call instead of reading the stream themselves.
//
// Rooms of their own sit below it: projections/kvstore (the projection
// stores and generations), projections/feed (the change feed: its format,
// its relays and SSE), projections/deadletter (the dead letters),
// projections/httpapi (the admin API's HTTP conventions), projections/jsio
// (the JetStream I/O every room shares) and projections/index (the query
// indexes). Above it: projections/query (the query API),
// projections/rebuild (rebuilds, replays, verify), projections/ledger (the
// event ledger and the delivery log's reader), and over those projections/admin (the admin operations
// over HTTP), projections/console and projections/client. The rooms above
// read the engine through its exported methods only (jobs.go).
//
// It must never write to the journal or the delivery log, and it must never
// depend on delivery order for a projection's content: that is the reducers'
// job, by the provider's clock. It imports domain, reducers and its own
// lower rooms; it must never import ingest, cmd, or the rooms above it
// (query, rebuild, ledger, admin, console, client).
package projections
