package feed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/jsio"
)

// SSEHeartbeat is how often an idle change feed connection gets a comment
// line, so proxies and clients see it is alive.
const SSEHeartbeat = 15 * time.Second

// ChangeFeed serves GET /v1/changes: the change feed as Server-Sent Events.
// Each event's id is its position in BILLFOLD_CHANGES; a client that
// reconnects with Last-Event-ID gets every change after it, and none twice.
type ChangeFeed struct {
	js        jetstream.JetStream
	token     string
	heartbeat time.Duration
	hubs      *feedHubs
	log       *slog.Logger
	clients   atomic.Int64
	// MaxClients caps the clients served at once (DefaultMaxFeedClients
	// when zero); past it a new client gets 429 BILLFOLD-BUSY.
	MaxClients int
}

// NewChangeFeed returns the handler. When token is not empty, every request
// must carry "Authorization: Bearer <token>". Close stops its shared
// readers.
func NewChangeFeed(js jetstream.JetStream, token string) *ChangeFeed {
	log := slog.Default()
	return &ChangeFeed{js: js, token: token, heartbeat: SSEHeartbeat, hubs: newFeedHubs(js, log), log: log}
}

// SetLogger sets where the feed logs what it refuses or drops.
func (f *ChangeFeed) SetLogger(log *slog.Logger) {
	f.log = log
	f.hubs.mu.Lock()
	f.hubs.log = log
	f.hubs.mu.Unlock()
}

// Close stops the shared readers and deletes their consumers; clients
// still attached are disconnected.
func (f *ChangeFeed) Close() { f.hubs.close() }

// Clients is how many clients the feed serves now.
func (f *ChangeFeed) Clients() int { return int(f.clients.Load()) }

// feedRequest is a validated GET /v1/changes.
type feedRequest struct {
	projection string
	policy     jetstream.DeliverPolicy
	startSeq   uint64
}

func parseFeedRequest(r *http.Request) (feedRequest, error) {
	q := r.URL.Query()
	fr := feedRequest{projection: q.Get("projection"), policy: jetstream.DeliverNewPolicy}
	if fr.projection != "" && !slices.Contains(domain.Projections, fr.projection) {
		return fr, domain.Errorf(domain.CodeBadRequest, "projection %q: want one of %v", fr.projection, domain.Projections)
	}
	switch from := q.Get("from"); from {
	case "":
	case "start":
		fr.policy = jetstream.DeliverAllPolicy
	default:
		return fr, domain.Errorf(domain.CodeBadRequest, "from %q: want start, or resume with Last-Event-ID", from)
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("last_event_id")
	}
	if last != "" {
		n, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			return fr, domain.Errorf(domain.CodeBadRequest, "Last-Event-ID %q: want a feed position (a whole number)", last)
		}
		fr.policy, fr.startSeq = jetstream.DeliverByStartSequencePolicy, n+1
	}
	return fr, nil
}

// ServeHTTP streams changes until the client goes away.
func (f *ChangeFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.token != "" && !httpapi.BearerOK(r, f.token) {
		httpapi.WriteError(w, domain.Errorf(domain.CodeUnauthorized, "send Authorization: Bearer <BILLFOLD_API_TOKEN>"))
		return
	}
	fr, err := parseFeedRequest(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	maxClients := f.MaxClients
	if maxClients <= 0 {
		maxClients = DefaultMaxFeedClients
	}
	if n := f.clients.Add(1); n > int64(maxClients) {
		f.clients.Add(-1)
		httpapi.WriteError(w, domain.Errorf(domain.CodeBusy, "the change feed serves %d clients, its cap: retry later", maxClients))
		return
	}
	defer f.clients.Add(-1)
	ctx := r.Context()
	filter := domain.ChangeFilter(fr.projection)
	hub := f.hubs.get(filter)
	sub, err := hub.subscribe(ctx)
	if err != nil {
		httpapi.WriteError(w, domain.Wrap(domain.CodeJournalUnavailable, err, "change feed unavailable"))
		return
	}
	defer hub.unsubscribe(sub)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The comment tells the client the feed is attached: changes stored
	// from now on will reach it.
	if !f.write(rc, w, []byte(": billfold change feed\n\n")) {
		return
	}
	// History first, with direct gets, up to where the shared reader took
	// over; the live changes wait in sub meanwhile.
	var sent uint64
	if fr.policy != jetstream.DeliverNewPolicy {
		from := max(fr.startSeq, 1)
		for {
			ok := true
			n, last, err := jsio.EachOnSubject(ctx, f.js, domain.ChangesStream, filter, from, 256, func(m *jetstream.RawStreamMsg) {
				ok = ok && f.write(rc, w, sseEvent(m.Sequence, m.Data))
			})
			if err != nil || !ok {
				if err != nil && ctx.Err() == nil {
					f.log.Warn("change feed history read failed; the client resumes with Last-Event-ID", "code", domain.ErrorCode(err), "error", err)
				}
				return
			}
			if n > 0 {
				sent, from = last, last+1
			}
			if n < 256 {
				break
			}
		}
	}
	beat := time.NewTicker(f.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.overflow:
			return
		case <-beat.C:
			if !f.write(rc, w, []byte(": heartbeat\n\n")) {
				return
			}
		case ch := <-sub.changes:
			if ch.seq <= sent {
				continue // read with the history already
			}
			if !f.write(rc, w, sseEvent(ch.seq, ch.data)) {
				return
			}
			sent = ch.seq
		}
	}
}

// write sends b and flushes it, allowing a slow client 30 s per event (the
// server's write timeout is meant for short answers, not for a feed).
func (f *ChangeFeed) write(rc *http.ResponseController, w http.ResponseWriter, b []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.Write(b); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// sseEvent is one change as an SSE event; data is one line.
func sseEvent(seq uint64, data []byte) []byte {
	if bytes.ContainsAny(data, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, data) == nil {
			data = b.Bytes()
		}
	}
	return fmt.Appendf(nil, "id: %d\nevent: change\ndata: %s\n\n", seq, data)
}

var _ http.Handler = (*ChangeFeed)(nil)
