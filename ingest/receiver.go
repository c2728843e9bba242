package ingest

import (
	"context"
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

	// The webhook route's two chains: a delivery through the intake
	// limits to receive, a verification challenge through the rate limit.
	deliveryChain  http.Handler
	challengeChain http.Handler
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
	rc.deliveryChain = rc.openDelivery(rc.limitRate(rc.requireSecret(limitBody(http.HandlerFunc(rc.receive)))))
	rc.challengeChain = rc.limitRate(http.HandlerFunc(rc.serveChallenge))
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
	switch {
	case r.Method == http.MethodGet && ep.Challenger != nil:
		rc.challengeChain.ServeHTTP(w, withIntake(r, &intake{ep: ep, delivery: domain.Delivery{SourceAddr: sourceAddr(r), Received: rc.now()}}))
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", allowed(ep))
		writeAnswer(w, http.StatusMethodNotAllowed, answerNoMethod)
	default:
		rc.deliveryChain.ServeHTTP(w, withIntake(r, &intake{ep: ep}))
	}
}

// openDelivery is the outermost middleware of a delivery: it starts the
// delivery's record, runs next, and then records the delivery everywhere
// it is counted, whatever answered it.
func (rc *Receiver) openDelivery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := intakeOf(r)
		in.delivery = domain.Delivery{
			Endpoint:   in.ep.Name,
			Provider:   in.ep.Provider,
			RequestID:  requestID(r),
			SourceAddr: sourceAddr(r),
			Received:   rc.now(),
		}
		w.Header().Set("X-Request-Id", in.delivery.RequestID)
		next.ServeHTTP(w, r)
		rc.finish(&in.delivery, in.status, in.ep.Label())
	})
}

// receive is the receiver proper, behind the intake limits: it verifies
// the body the limits let through, parses its envelope and appends it to
// the journal, and answers.
func (rc *Receiver) receive(w http.ResponseWriter, r *http.Request) {
	in := intakeOf(r)
	in.conclude(w, rc.journalDelivery(r, in))
}

// journalDelivery runs the verified intake steps of one delivery, filling
// its record, and returns how it ends.
func (rc *Receiver) journalDelivery(r *http.Request, in *intake) verdict {
	ep, d, body := in.ep, &in.delivery, in.body
	verification, err := rc.verify(r, ep, body, d.Received)
	d.Verification = verification
	if err != nil {
		if verification != domain.VerifiedBypass {
			rc.metrics.SignatureFailures.WithLabelValues(ep.Label(), string(domain.ErrorCode(err))).Inc()
			return refusal(http.StatusBadRequest, answerSigFailed, domain.OutcomeRejected, err)
		}
		// The test bypass lets it through, marked, with the reason it
		// failed kept in the delivery log.
		d.ReasonCode, d.Reason = domain.ErrorCode(err), domain.ErrorMessage(err)
	}
	env, err := ep.Parser.Parse(r.Header, body)
	if err != nil {
		return refusal(http.StatusBadRequest, answerMalformed, domain.OutcomeMalformed, err)
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
		return verdict{status: http.StatusOK, answer: answerIgnored, outcome: domain.OutcomeIgnored, code: domain.CodeLivemodeMismatch,
			reason: "event livemode " + strconv.FormatBool(*env.Livemode) + ", endpoint livemode " + strconv.FormatBool(*ep.Livemode)}
	}
	if env.Account != "" && !ep.Connect {
		// Stripe sends a connected account's events to Connect endpoints
		// only: this one was pointed at the wrong URL.
		return verdict{status: http.StatusOK, answer: answerIgnored, outcome: domain.OutcomeIgnored, code: domain.CodeAccountMismatch,
			reason: "event of connected account " + env.Account + " on an endpoint without connect: true"}
	}
	// The append is not tied to the sender's connection: once started it
	// runs to its own timeout, so the delivery log says what happened.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), rc.appendTimeout)
	defer cancel()
	res, err := rc.journal.Append(ctx, &env)
	if err != nil {
		rc.metrics.JournalAppendFailures.WithLabelValues(ep.Label()).Inc()
		return verdict{status: http.StatusServiceUnavailable, answer: answerUnavailable, outcome: domain.OutcomeUnavailable,
			code: domain.CodeJournalUnavailable, reason: err.Error()}
	}
	d.JournalSequence = res.Sequence
	if res.Duplicate {
		rc.metrics.Duplicates.WithLabelValues(ep.Label()).Inc()
		return verdict{status: http.StatusOK, answer: answerDuplicate, outcome: domain.OutcomeDuplicate}
	}
	switch d.Verification {
	case domain.VerifiedUnsigned:
		rc.metrics.Unsigned.WithLabelValues(ep.Label()).Inc()
	case domain.VerifiedBypass:
		rc.metrics.Bypassed.WithLabelValues(ep.Label()).Inc()
	}
	return verdict{status: http.StatusOK, answer: answerAccepted, outcome: domain.OutcomeAccepted}
}

// verify checks the body's signature. It returns how the delivery is
// verified, and the failure, if any: with the test bypass a failure is
// VerifiedBypass, otherwise VerifyFailed.
func (rc *Receiver) verify(r *http.Request, ep *Endpoint, body []byte, now time.Time) (domain.Verification, error) {
	if ep.Unsigned {
		return domain.VerifiedUnsigned, nil
	}
	err := ep.Verifier.Verify(r.Header, body, now)
	switch {
	case err == nil:
		return domain.VerifiedSignature, nil
	case rc.bypass:
		return domain.VerifiedBypass, err
	default:
		return domain.VerifyFailed, err
	}
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
