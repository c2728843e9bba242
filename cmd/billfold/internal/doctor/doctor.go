// Package doctor is billfold's debug report: the handler serve mounts at
// GET /v1/doctor (endpoints, streams, clock skew against the NATS server,
// recent failures, lag) and the `billfold doctor` command that prints it.
// It reads the server's parts it is given (JetStream, the endpoints, the
// projection engine): the streams' and consumers' information itself, the
// delivery log's entries through ledger.DeliveryLog (the log's one
// reader) and the open dead letters through query; it must never import
// the serve wiring (package main) nor start anything of its own.
package doctor

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/query"
)

// The debug report of GET /v1/doctor and `billfold doctor`
// (docs/troubleshooting.md, "Debug report"). The server builds it because
// only the server knows its endpoints' configuration; the CLI prints it.
// Nothing in it is a secret: endpoints report how many secrets they have,
// never a value.

// Bounds of the report's scans, so doctor stays cheap on a big server.
const (
	// doctorWindow is how far back the delivery log is read.
	doctorWindow = 24 * time.Hour
	// doctorMaxDeliveries is the most delivery log entries read (the
	// newest ones).
	doctorMaxDeliveries = 5000
	// doctorLastDeliveries is how many deliveries per endpoint are listed.
	doctorLastDeliveries = 5
	// maxClockSkew is the skew doctor always reports as a problem; a
	// quarter of the smallest endpoint tolerance when that is smaller,
	// since past it fresh deliveries start to fail BILLFOLD-SIG-TOO-OLD
	// or -TOO-NEW.
	maxClockSkew = 5 * time.Second
	// stalledAfter is how long a projector may go without acknowledging
	// anything while it has events to fold before doctor calls it stalled.
	stalledAfter = time.Minute
)

// Report is the whole report.
type Report struct {
	Version            string             `json:"version"`
	GeneratedAt        time.Time          `json:"generated_at"`
	InsecureTestBypass bool               `json:"insecure_test_bypass"`
	NATS               natsReport         `json:"nats"`
	Clock              clockReport        `json:"clock"`
	Endpoints          []endpointReport   `json:"endpoints"`
	Streams            []streamReport     `json:"streams"`
	Projections        []projectionReport `json:"projections"`
	DeadLetters        deadLetterReport   `json:"dead_letters"`
	Deliveries         deliveryReport     `json:"deliveries"`
	// Problems name an error code each; any problem makes billfold doctor
	// exit 1.
	Problems []problem `json:"problems"`
	// Notes are worth knowing but not wrong (an unsigned endpoint, the
	// test bypass).
	Notes []string `json:"notes"`
}

// problem is one thing doctor found wrong.
type problem struct {
	Code    domain.Code `json:"code"`
	Message string      `json:"message"`
	// See is the docs/troubleshooting.md row of the code.
	See string `json:"see"`
}

// troubleshootingRow is the link to code's row in docs/troubleshooting.md;
// each row carries an anchor named after its code in lower case.
func troubleshootingRow(code domain.Code) string {
	return "docs/troubleshooting.md#" + strings.ToLower(string(code))
}

func newProblem(code domain.Code, format string, args ...any) problem {
	return problem{Code: code, Message: fmt.Sprintf(format, args...), See: troubleshootingRow(code)}
}

// natsReport is the NATS connection.
type natsReport struct {
	Mode          string `json:"mode"`
	Connected     bool   `json:"connected"`
	URL           string `json:"url,omitempty"`
	ServerName    string `json:"server_name,omitempty"`
	ServerVersion string `json:"server_version,omitempty"`
	Cluster       string `json:"cluster,omitempty"`
}

// clockReport compares billfold's clock with the NATS server's.
type clockReport struct {
	// Method says how the server's time was read.
	Method string `json:"method"`
	// SkewSeconds is billfold's clock minus the server's: positive when
	// billfold runs ahead.
	SkewSeconds float64 `json:"skew_seconds"`
	// UncertaintySeconds is half the best round trip: the true skew is
	// within SkewSeconds ± UncertaintySeconds.
	UncertaintySeconds float64   `json:"uncertainty_seconds"`
	ThresholdSeconds   float64   `json:"threshold_seconds"`
	LocalTime          time.Time `json:"local_time"`
	ServerTime         time.Time `json:"server_time"`
	Error              string    `json:"error,omitempty"`
}

// endpointReport is one endpoint's configuration, without its secrets.
type endpointReport struct {
	Name          string          `json:"name"`
	Provider      domain.Provider `json:"provider"`
	Path          string          `json:"path"`
	SecretPresent bool            `json:"secret_present"`
	Secrets       int             `json:"secrets"`
	// Tolerance is empty for schemes that sign no timestamp (Braintree,
	// hmac without a timestamp, unsigned).
	Tolerance        string      `json:"tolerance,omitempty"`
	ToleranceSeconds float64     `json:"tolerance_seconds,omitempty"`
	Livemode         string      `json:"livemode"` // live, test or any
	Unsigned         bool        `json:"unsigned"`
	Bypass           bool        `json:"bypass"`
	MaxBodyBytes     int64       `json:"max_body_bytes"`
	Misconfigured    domain.Code `json:"misconfigured,omitempty"`
}

// streamReport is one JetStream stream billfold owns (KV buckets are
// streams too).
type streamReport struct {
	Name     string       `json:"name"`
	Role     string       `json:"role"`
	Messages uint64       `json:"messages"`
	Bytes    uint64       `json:"bytes"`
	Replicas int          `json:"replicas"`
	Cluster  string       `json:"cluster,omitempty"`
	Leader   string       `json:"leader,omitempty"`
	Peers    []peerReport `json:"peers,omitempty"`
	Healthy  bool         `json:"healthy"`
	Error    string       `json:"error,omitempty"`
}

// peerReport is one replica that is not the leader.
type peerReport struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

// projectionReport is one projection's progress.
type projectionReport struct {
	Name   string `json:"name"`
	Bucket string `json:"bucket"`
	// Lag is the journal events its projector has not acknowledged.
	Lag         uint64     `json:"lag"`
	LastAckedAt *time.Time `json:"last_acked_at,omitempty"`
	DeadLetters int        `json:"dead_letters"`
	// Paused is the operator's hold when the projection is paused: its
	// lag grows on purpose, so it is not called stalled.
	Paused *projections.Pause `json:"paused,omitempty"`
}

// deadLetterReport counts the open dead letters.
type deadLetterReport struct {
	Count  int               `json:"count"`
	ByCode []deadLetterGroup `json:"by_code"`
}

// deadLetterGroup is the dead letters of one code.
type deadLetterGroup struct {
	Code         domain.Code    `json:"code"`
	Count        int            `json:"count"`
	Projections  map[string]int `json:"projections"`
	LastMessage  string         `json:"last_message"`
	LastEventID  string         `json:"last_event_id"`
	LastProvider string         `json:"last_provider"`
}

// deliveryReport is what the delivery log says about recent deliveries.
type deliveryReport struct {
	Since   time.Time              `json:"since"`
	Scanned int                    `json:"scanned"`
	Limit   int                    `json:"limit"`
	Outcome map[domain.Outcome]int `json:"outcomes"`
	// SignatureFailures are the rejected deliveries by reason code.
	SignatureFailures []failureGroup `json:"signature_failures"`
	// OtherFailures are the other deliveries billfold did not journal:
	// malformed, too large, unavailable, misconfigured, rate limited,
	// ignored for their livemode.
	OtherFailures []failureGroup `json:"other_failures"`
	// Last are each endpoint's latest deliveries, newest first.
	Last map[string][]deliveryLine `json:"last"`
	// AcceptedPending is how many journaled events still wait for their
	// accepted entry (the delivery log's consumer on the journal: not yet
	// read, or read and not yet acknowledged).
	AcceptedPending uint64 `json:"accepted_pending"`
	// Error is why the delivery log could not be read.
	Error string `json:"error,omitempty"`
}

// failureGroup is the failed deliveries of one reason code.
type failureGroup struct {
	Code        domain.Code    `json:"code"`
	Count       int            `json:"count"`
	Endpoints   map[string]int `json:"endpoints"`
	LastAt      time.Time      `json:"last_at"`
	LastReason  string         `json:"last_reason,omitempty"`
	LikelyCause string         `json:"likely_cause"`
}

// deliveryLine is one delivery log entry, shortened.
type deliveryLine struct {
	Received  time.Time      `json:"received"`
	EventID   string         `json:"event_id,omitempty"`
	EventType string         `json:"event_type,omitempty"`
	Outcome   domain.Outcome `json:"outcome"`
	Status    int            `json:"status"`
	Code      domain.Code    `json:"code,omitempty"`
	Attempt   int            `json:"attempt,omitempty"`
}

// likelyCauses is the first thing to check for each delivery failure code;
// docs/troubleshooting.md has the full row.
var likelyCauses = map[domain.Code]string{
	domain.CodeSigMismatch:        "wrong secret for this endpoint, or a proxy changed the body (billfold verifies the raw bytes)",
	domain.CodeSigMissing:         "the sender is not the provider, or a proxy strips the signature header",
	domain.CodeSigMalformed:       "a proxy or client rewrote the signature header",
	domain.CodeSigTooOld:          "a replayed or long-queued delivery, or billfold's clock runs fast",
	domain.CodeSigTooNew:          "billfold's clock runs behind",
	domain.CodeEventTooOld:        "an old PactaPay payload replayed or long-queued, or billfold's clock runs fast",
	domain.CodeEventTooNew:        "billfold's clock runs behind",
	domain.CodeEventMalformed:     "the body verified but is not a provider event (a custom test ping?)",
	domain.CodeBodyTooLarge:       "the event is larger than the endpoint's max_body_bytes",
	domain.CodeJournalUnavailable: "NATS was down or lost its stream leader; the provider retries",
	domain.CodeConfigNoSecret:     "the endpoint has no secret configured",
	domain.CodeRateLimited:        "one source sent more than --rate-limit allows",
	domain.CodeLivemodeMismatch:   "test-mode events sent to a live endpoint, or the reverse",
	domain.CodeAccountMismatch:    "the Connect endpoint's URL points at an endpoint without connect: true",
}

// Doctor builds the report from the running server's parts.
type Doctor struct {
	js        jetstream.JetStream
	endpoints []*ingest.Endpoint
	engine    *projections.Engine
	query     *query.Query
	// deliveryLog reads the delivery log (its one reader, the ledger's).
	deliveryLog *ledger.DeliveryLog
	bypass      bool
	natsMode    string
	version     string // billfold's, for the report
	now         func() time.Time
	// unsigned are the names of unsigned endpoints: each is that
	// endpoint's only secret, so the report never shows it whole.
	unsigned map[string]bool
}

// New returns the handler of GET /v1/doctor.
func New(js jetstream.JetStream, endpoints []*ingest.Endpoint, engine *projections.Engine, q *query.Query, bypass bool, version, natsMode string) *Doctor {
	d := &Doctor{js: js, endpoints: endpoints, engine: engine, query: q, deliveryLog: ledger.NewDeliveryLog(js), bypass: bypass, version: version, natsMode: natsMode, now: time.Now, unsigned: map[string]bool{}}
	for _, e := range endpoints {
		if e.Unsigned {
			d.unsigned[e.Name] = true
		}
	}
	return d
}

// shownName is how the report names an endpoint (or a generic provider's
// namespace, which is its endpoint's name): an unsigned endpoint by its
// label, as metrics, logs and the event ledger show it.
func (d *Doctor) shownName(name string) string {
	if !d.unsigned[name] {
		return name
	}
	return domain.UnsignedLabel(name)
}

// ServeHTTP answers the report. It is 200 whatever the report finds: a
// problem is content, not a failure of the route.
func (d *Doctor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	httpapi.WriteJSON(w, http.StatusOK, d.Report(ctx))
}

// Report builds the debug report.
func (d *Doctor) Report(ctx context.Context) Report {
	rep := Report{
		Version: d.version, GeneratedAt: d.now().UTC(), InsecureTestBypass: d.bypass,
		Problems: []problem{}, Notes: []string{},
	}
	rep.NATS = d.natsReport()
	if !rep.NATS.Connected {
		rep.Problems = append(rep.Problems, newProblem(domain.CodeJournalUnavailable, "billfold is not connected to NATS (%s)", rep.NATS.Mode))
	}
	rep.Endpoints = d.endpointReports(&rep)
	rep.Clock = measureClock(ctx, d.now, d.serverTime, skewThreshold(d.endpoints))
	if p := clockProblem(rep.Clock); p != nil {
		rep.Problems = append(rep.Problems, *p)
	}
	rep.Streams = d.streamReports(ctx, &rep)
	rep.DeadLetters = d.deadLetters(ctx, &rep)
	rep.Projections = d.projectionReports(ctx, &rep)
	rep.Deliveries = d.deliveries(ctx, &rep)
	if d.bypass {
		rep.Notes = append(rep.Notes, "--insecure-test-bypass is on: deliveries that fail verification are journaled, marked verified=bypass")
	}
	return rep
}

func (d *Doctor) natsReport() natsReport {
	nc := d.js.Conn()
	return natsReport{
		Mode: d.natsMode, Connected: nc.IsConnected(), URL: nc.ConnectedUrlRedacted(),
		ServerName: nc.ConnectedServerName(), ServerVersion: nc.ConnectedServerVersion(), Cluster: nc.ConnectedClusterName(),
	}
}

func (d *Doctor) endpointReports(rep *Report) []endpointReport {
	out := make([]endpointReport, 0, len(d.endpoints))
	if len(d.endpoints) == 0 {
		rep.Problems = append(rep.Problems, newProblem(domain.CodeConfigNoSecret,
			"no webhook endpoint is configured: set a provider variable such as STRIPE_WEBHOOK_SECRET or use --config"))
	}
	for _, e := range d.endpoints {
		er := endpointReport{
			Name: d.shownName(e.Name), Provider: e.Provider, Path: "/webhooks/" + d.shownName(e.Name),
			SecretPresent: e.Secrets > 0, Secrets: e.Secrets, Livemode: "any",
			Unsigned: e.Unsigned, Bypass: d.bypass, MaxBodyBytes: e.MaxBody,
		}
		if e.Livemode != nil {
			er.Livemode = map[bool]string{true: "live", false: "test"}[*e.Livemode]
		}
		if signsTimestamp(e) {
			er.Tolerance, er.ToleranceSeconds = e.Tolerance.String(), e.Tolerance.Seconds()
		}
		if e.Misconfigured != nil {
			er.Misconfigured = domain.ErrorCode(e.Misconfigured)
			rep.Problems = append(rep.Problems, newProblem(er.Misconfigured, "%s", domain.ErrorMessage(e.Misconfigured)))
		}
		if e.Unsigned {
			rep.Notes = append(rep.Notes, fmt.Sprintf("endpoint %s takes unsigned deliveries: its name is its only secret (shown cut short here), and every record it journals is marked verified=unsigned", d.shownName(e.Name)))
		}
		out = append(out, er)
	}
	return out
}

// signsTimestamp reports whether e's scheme signs a time, so that its
// tolerance applies.
func signsTimestamp(e *ingest.Endpoint) bool {
	switch v := e.Verifier.(type) {
	case nil, braintree.Verifier:
		return false
	case hmacsig.Verifier:
		return v.Config.TimestampHeader != ""
	}
	return true
}

// skewThreshold is the clock skew doctor calls a problem: maxClockSkew, or
// a quarter of the smallest tolerance of an endpoint that checks one.
func skewThreshold(endpoints []*ingest.Endpoint) time.Duration {
	t := maxClockSkew
	for _, e := range endpoints {
		if signsTimestamp(e) && e.Tolerance > 0 {
			t = min(t, e.Tolerance/4)
		}
	}
	return t
}
