// Package deadletter owns the dead letters: the events a projection could
// not apply, each one's whole state (open or resolved, attempts, retry
// schedule, requeues) kept as the last message of its subject on the
// BILLFOLD_DEADLETTERS stream, and the compare-and-set updates that move
// it on (a failure, a scheduled retry's claim, a resolution).
//
// It knows nothing of reducers, projectors or stores: the projector hands
// it a failure, the engine's requeues and retries and a rebuild resolve
// it. It imports only domain and projections/jsio, and must never import
// projections or reducers.
package deadletter
