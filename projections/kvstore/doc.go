// Package kvstore owns the projection stores and their generations: each
// projection generation's records in a JetStream KV bucket (Store: a
// bounded cache, compare-and-set writes that carry the event that caused
// them as headers, batched direct gets, the record part of a stored value),
// a burst of asynchronous writes awaited together (Burst), the generation
// pointers a rebuild switches (Generations, with where a generation's
// relay starts) and the small bookkeeping buckets. Nothing outside this
// package reads a store's bucket: the rooms above use Store's methods.
//
// It imports domain, reducers (for record keys) and projections/jsio
// only; it must never import projections or any other room of it, nor
// ingest or cmd.
package kvstore
