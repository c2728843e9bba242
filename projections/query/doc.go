// Package query is the query API's room: single records read straight from
// the projection stores (batched direct gets for pages), the in-memory
// secondary indexes that KV watchers keep up to date over the current
// generations (subscriptions by lifecycle state, provider and customer;
// customers by link; customer and order lists), the open dead letters'
// index, as_of reads by a fold of the journal, the records an event
// touched (for the ledger), and the query routes' HTTP handlers with the
// OpenAPI document of the admin API (openapi.json; docs/openapi.json is
// its copy).
//
// It never writes a projection. It reads the stores only through the
// store's exported methods (kvstore.Store), never its bucket. It
// imports domain, reducers, projections and projections' lower rooms
// (index, httpapi, jsio, deadletter); it must never import ingest, cmd,
// the rooms beside it (rebuild, ledger) or the rooms above it (admin,
// console, client).
package query
