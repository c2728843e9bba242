// Package jsio is the JetStream I/O every room of projections shares:
// reads that never leave a server consumer behind (direct gets by subject,
// a run of sequences in batched direct gets, ordered consumers deleted
// when done), pulls that survive a lost pull
// request, asynchronous publishes awaited together, and the test for a
// lost compare-and-set.
//
// It owns no stream and no record format. It imports only domain (for
// error codes) and nats.go; it must never import projections or any of its
// rooms, nor reducers.
package jsio
