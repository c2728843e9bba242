// Package feed is the change feed as downstream services read it: the
// BILLFOLD_CHANGES stream's configuration, the bodies of its messages (a
// record's Change, a subscription's LifecycleChange, and LifecycleStep,
// which derives the second from two versions of a record), and the SSE
// endpoint (ChangeFeed) that shares one ordered consumer per filter among
// its clients.
//
// The feed's one writer, the relay that follows each projection store, is
// projections.Relay, beside the store it reads. This package imports
// domain, projections/jsio and projections/httpapi only, and must never
// import projections, reducers or ingest.
package feed
