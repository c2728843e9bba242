package feed

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// Every SSE client of /v1/changes is served from one shared reader per
// projection filter: a consumer per client once let 1,100 clients that
// came and went exhaust the stream's consumer cap. A client that resumes
// from a position first reads the history it missed with direct gets (no
// consumer), then follows the shared reader.

// DefaultMaxFeedClients caps the SSE clients of /v1/changes served at once;
// past it a new client gets 429 BILLFOLD-BUSY.
const DefaultMaxFeedClients = 512

// feedClientBuffer is how many live changes a client may fall behind by
// before it is disconnected (it then resumes with Last-Event-ID).
const feedClientBuffer = 1024

// feedChange is one change as the shared reader saw it.
type feedChange struct {
	seq  uint64
	data []byte
}

// feedSubscriber is one client's end of a hub: the live changes and a
// signal that it fell too far behind.
type feedSubscriber struct {
	changes  chan feedChange
	overflow chan struct{}
}

// feedHub is the shared reader of one filter: one ordered consumer from
// the moment the first client came, delivering new changes to every
// subscriber.
type feedHub struct {
	js     jetstream.JetStream
	filter string
	log    *slog.Logger

	mu    sync.Mutex
	subs  map[*feedSubscriber]struct{}
	ready chan struct{} // closed once the consumer exists
	err   error         // why it could not start, when ready is closed without it
	done  chan struct{} // closed when the reader stopped
}

// startFeedHub creates the hub's consumer and runs its reader until ctx
// ends; ready is closed once the consumer exists (or failed: err).
func startFeedHub(ctx context.Context, js jetstream.JetStream, filter string, log *slog.Logger) *feedHub {
	h := &feedHub{js: js, filter: filter, log: log, subs: map[*feedSubscriber]struct{}{}, ready: make(chan struct{}), done: make(chan struct{})}
	go h.run(ctx)
	return h
}

func (h *feedHub) run(ctx context.Context) {
	defer h.stopped()
	r, err := OpenReader(ctx, h.js, h.filter, 0)
	if err != nil {
		h.err = err
		close(h.ready)
		return
	}
	close(h.ready)
	defer r.Close()
	for {
		seq, data, err := r.Next()
		if err != nil {
			return // stopped
		}
		h.broadcast(feedChange{seq: seq, data: data})
	}
}

// stopped disconnects every subscriber (each resumes with Last-Event-ID
// on a new hub) and marks the hub done.
func (h *feedHub) stopped() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		close(s.overflow)
		delete(h.subs, s)
	}
	close(h.done)
}

// broadcast hands ch to every subscriber without waiting: one that is
// feedClientBuffer changes behind is told to go, and removed.
func (h *feedHub) broadcast(ch feedChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.changes <- ch:
		default:
			close(s.overflow)
			delete(h.subs, s)
			h.log.Warn("change feed client fell too far behind and was disconnected; it resumes with Last-Event-ID",
				"code", domain.CodeBusy, "filter", h.filter, "behind", feedClientBuffer)
		}
	}
}

// subscribe waits until the hub reads, then returns a subscriber that gets
// every change stored from now on.
func (h *feedHub) subscribe(ctx context.Context) (*feedSubscriber, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, domain.Errorf(domain.CodeJournalUnavailable, "change feed reader not ready")
	}
	if h.err != nil {
		return nil, h.err
	}
	s := &feedSubscriber{changes: make(chan feedChange, feedClientBuffer), overflow: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.done:
		return nil, domain.Errorf(domain.CodeJournalUnavailable, "change feed reader stopped")
	default:
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// unsubscribe removes s.
func (h *feedHub) unsubscribe(s *feedSubscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// feedHubs holds the hubs of a ChangeFeed, started on first use; one that
// failed to start is replaced by the next client.
type feedHubs struct {
	js     jetstream.JetStream
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	hubs map[string]*feedHub
}

func newFeedHubs(js jetstream.JetStream, log *slog.Logger) *feedHubs {
	ctx, cancel := context.WithCancel(context.Background())
	return &feedHubs{js: js, log: log, ctx: ctx, cancel: cancel, hubs: map[string]*feedHub{}}
}

// get returns the hub of filter, starting it when there is none or the
// last one could not start.
func (hs *feedHubs) get(filter string) *feedHub {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h := hs.hubs[filter]; h != nil {
		select {
		case <-h.done:
		default:
			return h
		}
	}
	h := startFeedHub(hs.ctx, hs.js, filter, hs.log)
	hs.hubs[filter] = h
	return h
}

// close stops every hub and deletes its consumer.
func (hs *feedHubs) close() { hs.cancel() }
