// Package ingest receives webhook deliveries: it verifies each one on its raw
// bytes, reads its envelope, appends it to the journal and answers only after
// the journal acknowledged, and records every delivery, accepted or not, in
// the delivery log.
//
// It owns the public webhook listener's handler, the endpoint set, the
// journal and delivery-log streams, and the intake metrics. Verification
// schemes live in subpackages (ingest/stripe, ...), each pure.
//
// It must never read projections, parse a body before its signature is
// verified, put an unverified body in the journal, or answer 2xx before the
// journal's acknowledgement. It imports domain and its own scheme
// subpackages only, and must never import reducers or projections.
package ingest
