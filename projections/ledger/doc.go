// Package ledger is the event ledger (GET /v1/events/...): what became of
// each provider event, read from where it lives, with no state of its
// own: its journal entry, every delivery of it from the delivery log
// (BILLFOLD_DELIVERIES), its
// status in each projection (processed, failed, skipped or pending, from
// the projectors' progress and the dead letters) and when each projection
// stored it; and the list of recent events by outcome. Unsigned
// endpoints are shown by their label only.
//
// It owns the delivery log's reads: DeliveryLog (deliverylog.go) is the
// one reader of BILLFOLD_DELIVERIES, which ingest writes; the ledger, the
// console's deliveries page and overview, and billfold doctor all read the
// log through it. The journal it reads through projections
// (LookupJournalEvent), the dead letters through deadletter.
//
// It reads the engine through its exported methods, never its fields. It
// imports domain, reducers, projections and projections' lower rooms
// (deadletter, httpapi, jsio); it must never import ingest, cmd, the rooms
// beside it (query, rebuild) or the rooms above it (admin, console,
// client).
package ledger
