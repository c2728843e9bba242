package ingest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nuid"

	"github.com/billfold/billfold/domain"
)

// Appender is the journal as the receiver uses it.
type Appender interface {
	Append(ctx context.Context, env *domain.Envelope) (AppendResult, error)
}

// Recorder is the delivery log as the receiver uses it. Record must not
// block: it runs after the answer, on the request's goroutine.
type Recorder interface {
	Record(d domain.Delivery)
}

// Answers to webhook senders. They are the same for every cause within a
// status, so they tell an attacker nothing; the cause goes to the delivery
// log and the logs.
var (
	answerAccepted    = []byte(`{"received":true,"status":"accepted"}`)
	answerDuplicate   = []byte(`{"received":true,"status":"duplicate"}`)
	answerIgnored     = []byte(`{"received":true,"status":"ignored"}`)
	answerSigFailed   = []byte(`{"error":"signature verification failed"}`)
	answerMalformed   = []byte(`{"error":"malformed event"}`)
	answerTooLarge    = []byte(`{"error":"body too large"}`)
	answerUnavailable = []byte(`{"error":"journal unavailable, retry later"}`)
	answerNoSecret    = []byte(`{"error":"` + string(domain.CodeConfigNoSecret) + `"}`)
	answerNotFound    = []byte(`{"error":"not found"}`)
	answerNoMethod    = []byte(`{"error":"method not allowed"}`)
	answerRateLimited = []byte(`{"error":"rate limited, retry later"}`)
	answerHealthy     = []byte(`{"status":"ok"}`)
)

// RetryAfter is the Retry-After value, in seconds, sent with a 503.
const RetryAfter = "5"

// Receiver is the public listener: it takes deliveries for its endpoints.
type Receiver struct {
	endpoints     map[string]*Endpoint
	journal       Appender
	deliveries    Recorder
	metrics       *Metrics
	log           *slog.Logger
	now           func() time.Time
	appendTimeout time.Duration
	limiter       *sourceLimiter
	bypass        bool
}

// ReceiverOptions tune a Receiver.
type ReceiverOptions struct {
	// AppendTimeout bounds the wait for the journal's acknowledgement;
	// past it the delivery gets 503. Default 5 s.
	AppendTimeout time.Duration
	// Now is the clock used for timestamps and tolerance checks; default
	// time.Now. Tests of clock skew set it.
	Now func() time.Time
	// RateLimit per source address; the zero value disables it.
	RateLimit RateLimit
	// InsecureTestBypass lets deliveries that fail verification through,
	// marked "bypass". Only serve --insecure-test-bypass sets it.
	InsecureTestBypass bool
}

// NewReceiver returns a Receiver for endpoints. Endpoint names must be
// unique.
func NewReceiver(endpoints []*Endpoint, journal Appender, deliveries Recorder, m *Metrics, log *slog.Logger, o ReceiverOptions) (*Receiver, error) {
	rc := &Receiver{
		endpoints:     make(map[string]*Endpoint, len(endpoints)),
		journal:       journal,
		deliveries:    deliveries,
		metrics:       m,
		log:           log,
		now:           o.Now,
		appendTimeout: o.AppendTimeout,
		limiter:       newSourceLimiter(o.RateLimit),
		bypass:        o.InsecureTestBypass,
	}
	if rc.now == nil {
		rc.now = time.Now
	}
	if rc.appendTimeout <= 0 {
		rc.appendTimeout = 5 * time.Second
	}
	for _, e := range endpoints {
		if _, dup := rc.endpoints[e.Name]; dup {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "endpoint %s is configured twice", e.Name)
		}
		rc.endpoints[e.Name] = e
	}
	return rc, nil
}

// Handler is the public listener's handler: POST /webhooks/{endpoint}
// (and GET for an endpoint that answers verification challenges) and GET
// /healthz, and a JSON 404 for everything else.
func (rc *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhooks/{endpoint}", rc.serveWebhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeAnswer(w, http.StatusOK, answerHealthy)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeAnswer(w, http.StatusNotFound, answerNotFound)
	})
	return mux
}

func (rc *Receiver) serveWebhook(w http.ResponseWriter, r *http.Request) {
	ep := rc.endpoints[r.PathValue("endpoint")]
	if ep == nil {
		// Unknown names are not recorded or labelled: they are chosen by
		// whoever sends, and would let anyone grow the log and the metrics.
		rc.log.Debug("delivery to unknown endpoint", "path", r.URL.Path, "source", sourceAddr(r))
		writeAnswer(w, http.StatusNotFound, answerNotFound)
		return
	}
	if r.Method == http.MethodGet && ep.Challenger != nil {
		rc.serveChallenge(w, r, ep)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", allowed(ep))
		writeAnswer(w, http.StatusMethodNotAllowed, answerNoMethod)
		return
	}
	d := domain.Delivery{
		Endpoint:   ep.Name,
		Provider:   ep.Provider,
		RequestID:  requestID(r),
		SourceAddr: sourceAddr(r),
		Received:   rc.now(),
	}
	w.Header().Set("X-Request-Id", d.RequestID)
	status, answer := rc.receive(r, ep, &d)
	switch status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", RetryAfter)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	writeAnswer(w, status, answer)
	rc.finish(&d, status, ep.Label())
}

// receive runs one delivery through the intake steps, filling d, and
// returns the answer.
func (rc *Receiver) receive(r *http.Request, ep *Endpoint, d *domain.Delivery) (int, []byte) {
	if !rc.limiter.allow(d.SourceAddr, d.Received) {
		d.Outcome, d.ReasonCode = domain.OutcomeRateLimited, domain.CodeRateLimited
		return http.StatusTooManyRequests, answerRateLimited
	}
	if ep.Misconfigured != nil && !rc.bypass {
		d.Outcome, d.ReasonCode, d.Reason = domain.OutcomeMisconfigured, domain.ErrorCode(ep.Misconfigured), ep.Misconfigured.Error()
		return http.StatusInternalServerError, answerNoSecret
	}
	body, err := readBody(r, ep.MaxBody)
	if err != nil {
		d.Outcome, d.ReasonCode, d.Reason = domain.OutcomeTooLarge, domain.ErrorCode(err), domain.ErrorMessage(err)
		return http.StatusRequestEntityTooLarge, answerTooLarge
	}
	if status, answer := rc.verify(r, ep, body, d); status != 0 {
		return status, answer
	}
	env, err := ep.Parser.Parse(r.Header, body)
	if err != nil {
		d.Outcome, d.ReasonCode, d.Reason = domain.OutcomeMalformed, domain.ErrorCode(err), domain.ErrorMessage(err)
		return http.StatusBadRequest, answerMalformed
	}
	env.Provider, env.Endpoint, env.Received, env.RequestID, env.Verification, env.Body =
		ep.Provider, ep.Name, d.Received, d.RequestID, d.Verification, body
	// The delivery's record travels with the append: the delivery log
	// derives the accepted entry from the journal.
	env.SourceAddr, env.ReasonCode, env.Reason = d.SourceAddr, d.ReasonCode, d.Reason
	if env.Created.IsZero() {
		// The provider gave no clock; receipt time, journaled once, keeps
		// folds deterministic.
		env.Created = d.Received
	}
	d.EventID, d.EventType, d.ProviderRequestID = env.EventID, env.EventType, env.ProviderRequestID
	created := env.Created
	d.Created = &created
	if ep.Livemode != nil && env.Livemode != nil && *ep.Livemode != *env.Livemode {
		d.Outcome, d.ReasonCode = domain.OutcomeIgnored, domain.CodeLivemodeMismatch
		d.Reason = "event livemode " + strconv.FormatBool(*env.Livemode) + ", endpoint livemode " + strconv.FormatBool(*ep.Livemode)
		return http.StatusOK, answerIgnored
	}
	if env.Account != "" && !ep.Connect {
		// Stripe sends a connected account's events to Connect endpoints
		// only: this one was pointed at the wrong URL.
		d.Outcome, d.ReasonCode = domain.OutcomeIgnored, domain.CodeAccountMismatch
		d.Reason = "event of connected account " + env.Account + " on an endpoint without connect: true"
		return http.StatusOK, answerIgnored
	}
	// The append is not tied to the sender's connection: once started it
	// runs to its own timeout, so the delivery log says what happened.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), rc.appendTimeout)
	defer cancel()
	res, err := rc.journal.Append(ctx, &env)
	if err != nil {
		d.Outcome, d.ReasonCode, d.Reason = domain.OutcomeUnavailable, domain.CodeJournalUnavailable, err.Error()
		rc.metrics.JournalAppendFailures.WithLabelValues(ep.Label()).Inc()
		return http.StatusServiceUnavailable, answerUnavailable
	}
	d.JournalSequence = res.Sequence
	if res.Duplicate {
		d.Outcome = domain.OutcomeDuplicate
		rc.metrics.Duplicates.WithLabelValues(ep.Label()).Inc()
		return http.StatusOK, answerDuplicate
	}
	d.Outcome = domain.OutcomeAccepted
	switch d.Verification {
	case domain.VerifiedUnsigned:
		rc.metrics.Unsigned.WithLabelValues(ep.Label()).Inc()
	case domain.VerifiedBypass:
		rc.metrics.Bypassed.WithLabelValues(ep.Label()).Inc()
	}
	return http.StatusOK, answerAccepted
}

// verify sets d.Verification, or returns the answer to a delivery that
// failed it. The test bypass lets a failed delivery through, marked, with
// the reason it failed kept in the delivery log.
func (rc *Receiver) verify(r *http.Request, ep *Endpoint, body []byte, d *domain.Delivery) (int, []byte) {
	if ep.Unsigned {
		d.Verification = domain.VerifiedUnsigned
		return 0, nil
	}
	err := ep.Verifier.Verify(r.Header, body, d.Received)
	switch {
	case err == nil:
		d.Verification = domain.VerifiedSignature
	case rc.bypass:
		d.Verification, d.ReasonCode, d.Reason = domain.VerifiedBypass, domain.ErrorCode(err), domain.ErrorMessage(err)
	default:
		d.Verification, d.Outcome, d.ReasonCode, d.Reason = domain.VerifyFailed, domain.OutcomeRejected, domain.ErrorCode(err), domain.ErrorMessage(err)
		rc.metrics.SignatureFailures.WithLabelValues(ep.Label(), string(d.ReasonCode)).Inc()
		return http.StatusBadRequest, answerSigFailed
	}
	return 0, nil
}

// finish records the delivery everywhere it is counted: metrics, the log
// line, the delivery log.
// label is the endpoint's Label: an unsigned endpoint's name is never
// shown.
func (rc *Receiver) finish(d *domain.Delivery, status int, label string) {
	d.Status = status
	d.Completed = rc.now()
	elapsed := d.Completed.Sub(d.Received)
	rc.metrics.Deliveries.WithLabelValues(label, string(d.Outcome)).Inc()
	rc.metrics.AckDuration.WithLabelValues(label).Observe(elapsed.Seconds())
	level := slog.LevelInfo
	switch {
	case d.Outcome == domain.OutcomeRateLimited:
		// Counted in billfold_deliveries_total; a line each would let one
		// sender fill the log.
		level = slog.LevelDebug
	case status >= 500 || d.Verification == domain.VerifiedUnsigned || d.Verification == domain.VerifiedBypass:
		level = slog.LevelWarn
	}
	rc.log.LogAttrs(context.Background(), level, "delivery",
		slog.String("endpoint", label),
		slog.String("event_id", d.EventID),
		slog.String("event_type", d.EventType),
		slog.String("outcome", string(d.Outcome)),
		slog.String("verification", string(d.Verification)),
		slog.Int("status", status),
		slog.String("code", string(d.ReasonCode)),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("request_id", d.RequestID),
		slog.String("source", d.SourceAddr),
	)
	rc.deliveries.Record(*d)
}

// readBody reads at most limit bytes of the body; a longer body is
// BILLFOLD-BODY-TOO-LARGE.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, domain.Errorf(domain.CodeBodyTooLarge, "Content-Length %d over the limit of %d bytes", r.ContentLength, limit)
	}
	// A known length is read into one buffer of that size, so a body
	// costs what the intake budget reserved for it, not the doubling
	// growth of io.ReadAll.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return nil, domain.Wrap(domain.CodeBodyTooLarge, err, "body could not be read")
	}
	body := buf.Bytes()
	if int64(len(body)) > limit {
		return nil, domain.Errorf(domain.CodeBodyTooLarge, "body over the limit of %d bytes", limit)
	}
	return body, nil
}

// requestID is the sender's X-Request-Id when it is a sane token, else a
// new one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); saneRequestID(id) {
		return id
	}
	return nuid.Next()
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func sourceAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func writeAnswer(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
