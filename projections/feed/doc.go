// Package feed is the change feed: the BILLFOLD_CHANGES stream's
// configuration, the bodies of its messages (a record's Change, a
// subscription's LifecycleChange, and LifecycleStep, which derives the
// second from two versions of a record), the feed's one writer (Relay, which
// follows one projection generation's store and publishes each record write
// once, in order), and the SSE endpoint (ChangeFeed) that shares one ordered
// consumer per filter among its clients.
//
// This package imports domain, projections/kvstore (the stores the relays
// read), projections/jsio and projections/httpapi only, and must never
// import projections or its other rooms, reducers or ingest.
package feed
