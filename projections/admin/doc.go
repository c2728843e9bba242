// Package admin is the admin API's operations over HTTP: rebuilds and
// replays, dead letters and their requeues, verify, the event ledger's
// routes, and pausing and resuming projections (Operations.Register). Each
// handler parses a request, calls the engine, the rebuilds, the ledger or
// the verification jobs of projections, and answers with httpapi; the work
// itself is theirs.
//
// It sits above projections: it imports projections and its lower rooms,
// and nothing in projections imports it. It must never import ingest or
// cmd, nor reach into a store or stream itself.
package admin
