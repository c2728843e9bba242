package projections

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
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
}

// NewChangeFeed returns the handler. When token is not empty, every request
// must carry "Authorization: Bearer <token>".
func NewChangeFeed(js jetstream.JetStream, token string) *ChangeFeed {
	return &ChangeFeed{js: js, token: token, heartbeat: SSEHeartbeat}
}

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
	if f.token != "" && !bearerOK(r, f.token) {
		WriteError(w, domain.Errorf(domain.CodeUnauthorized, "send Authorization: Bearer <BILLFOLD_API_TOKEN>"))
		return
	}
	fr, err := parseFeedRequest(r)
	if err != nil {
		WriteError(w, err)
		return
	}
	ctx := r.Context()
	c, err := f.js.OrderedConsumer(ctx, domain.ChangesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{domain.ChangeFilter(fr.projection)},
		DeliverPolicy:  fr.policy,
		OptStartSeq:    fr.startSeq,
	})
	if err != nil {
		WriteError(w, domain.Wrap(domain.CodeJournalUnavailable, err, "change feed unavailable"))
		return
	}
	it, err := c.Messages()
	if err != nil {
		WriteError(w, domain.Wrap(domain.CodeJournalUnavailable, err, "change feed unavailable"))
		return
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return // stopped; a NATS outage is handled by the ordered consumer
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

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
	beat := time.NewTicker(f.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if !f.write(rc, w, []byte(": heartbeat\n\n")) {
				return
			}
		case m, ok := <-msgs:
			if !ok {
				return
			}
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			if !f.write(rc, w, sseEvent(meta.Sequence.Stream, m.Data())) {
				return
			}
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

// bearerOK reports whether r carries "Authorization: Bearer <token>".
func bearerOK(r *http.Request, token string) bool {
	got, ok := bytes.CutPrefix([]byte(r.Header.Get("Authorization")), []byte("Bearer "))
	return ok && subtle.ConstantTimeCompare(got, []byte(token)) == 1
}

var _ http.Handler = (*ChangeFeed)(nil)
