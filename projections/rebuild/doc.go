// Package rebuild owns the jobs that fold the journal again: rebuilds (the
// whole journal into new generations, a catch-up with live deliveries and
// an atomic switch, DESIGN.md invariant 6), replays (the events a filter
// selects, re-applied through the live projectors), their records in the
// BILLFOLD_REBUILDS bucket and the janitor that tidies after them, and
// verify (a clean fold in memory compared with the live projections,
// on request or as a background job).
//
// It reaches the engine only through the narrow Engine interface that
// *projections.Engine satisfies, never its fields. It imports domain,
// reducers, projections and projections' lower rooms (deadletter, httpapi,
// jsio); it must never import ingest, cmd, the rooms beside it (query,
// ledger) or the rooms above it (admin, console, client).
package rebuild
