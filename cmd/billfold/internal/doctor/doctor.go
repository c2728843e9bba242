// Package doctor is billfold's debug report: the handler serve mounts at
// GET /v1/doctor (endpoints, streams, clock skew against the NATS server,
// recent failures, lag) and the `billfold doctor` command that prints it.
// It reads the server's parts it is given (JetStream, the endpoints, the
// projection engine); it must never import the serve wiring (package main)
// nor start anything of its own.
package doctor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/projections"
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
	bypass    bool
	natsMode  string
	version   string // billfold's, for the report
	now       func() time.Time
	// unsigned are the names of unsigned endpoints: each is that
	// endpoint's only secret, so the report never shows it whole.
	unsigned map[string]bool
}

// New returns the handler of GET /v1/doctor.
func New(js jetstream.JetStream, endpoints []*ingest.Endpoint, engine *projections.Engine, bypass bool, version, natsMode string) *Doctor {
	d := &Doctor{js: js, endpoints: endpoints, engine: engine, bypass: bypass, version: version, natsMode: natsMode, now: time.Now, unsigned: map[string]bool{}}
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
	projections.WriteJSON(w, http.StatusOK, d.Report(ctx))
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

// serverTime reads the NATS server's clock: JetStream stamps every stream
// info answer with the server's time when it gathered it ("ts", added in
// nats-server 2.10 so that tools can compute deltas in the server's
// clock). Reading it writes nothing, so doctor stays read-only.
func (d *Doctor) serverTime(ctx context.Context) (time.Time, error) {
	s, err := d.js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return time.Time{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if info.TimeStamp.IsZero() {
		return time.Time{}, fmt.Errorf("the NATS server does not report its time (nats-server 2.10 or later does)")
	}
	return info.TimeStamp, nil
}

// clockSample is one reading of the server's clock between two readings
// of billfold's.
type clockSample struct {
	sent, received, server time.Time
}

// estimateSkew is billfold's clock minus the server's, from the sample with
// the shortest round trip (the one the network distorted least), assuming
// the server read its clock half-way through; the uncertainty is half that
// round trip.
func estimateSkew(samples []clockSample) (skew, uncertainty time.Duration, best clockSample) {
	for i, s := range samples {
		if i == 0 || s.received.Sub(s.sent) < best.received.Sub(best.sent) {
			best = s
		}
	}
	rtt := best.received.Sub(best.sent)
	local := best.sent.Add(rtt / 2)
	return local.Sub(best.server), rtt / 2, best
}

// clockSamples is how many times measureClock reads the server's clock.
const clockSamples = 3

// measureClock compares now with the server's clock.
func measureClock(ctx context.Context, now func() time.Time, server func(context.Context) (time.Time, error), threshold time.Duration) clockReport {
	c := clockReport{Method: "JetStream stream info timestamp (server time), best of 3 round trips", ThresholdSeconds: threshold.Seconds()}
	var samples []clockSample
	for range clockSamples {
		sent := now()
		st, err := server(ctx)
		if err != nil {
			c.Error = err.Error()
			return c
		}
		samples = append(samples, clockSample{sent: sent, received: now(), server: st})
	}
	skew, unc, best := estimateSkew(samples)
	c.SkewSeconds, c.UncertaintySeconds = skew.Seconds(), unc.Seconds()
	c.LocalTime, c.ServerTime = best.received.UTC(), best.server.UTC()
	return c
}

// clockProblem is BILLFOLD-CLOCK-SKEW when the skew is past the threshold
// even at the favourable end of its uncertainty.
func clockProblem(c clockReport) *problem {
	if c.Error != "" {
		return nil // reported in the clock section; the streams say why NATS is unreadable
	}
	skew := c.SkewSeconds
	if skew < 0 {
		skew = -skew
	}
	if skew-c.UncertaintySeconds <= c.ThresholdSeconds {
		return nil
	}
	dir := "ahead of"
	if c.SkewSeconds < 0 {
		dir = "behind"
	}
	p := newProblem(domain.CodeClockSkew, "billfold's clock is %.1fs %s the NATS server's (threshold %.1fs): signature timestamps will be judged wrongly; sync both with NTP",
		skew, dir, c.ThresholdSeconds)
	return &p
}

// streamReports reads every stream billfold owns.
func (d *Doctor) streamReports(ctx context.Context, rep *Report) []streamReport {
	type named struct{ name, role string }
	list := []named{
		{domain.JournalStream, "journal"},
		{domain.DeliveryStream, "delivery log"},
		{domain.DeadLetterStream, "dead letters"},
		{domain.ChangesStream, "change feed"},
	}
	for _, p := range domain.Projections {
		if s := d.engine.Store(p); s != nil {
			list = append(list, named{domain.BucketStream(s.Bucket()), "projection " + p})
		}
	}
	out := make([]streamReport, 0, len(list))
	for _, n := range list {
		sr := streamReport{Name: n.name, Role: n.role}
		code := domain.CodeStoreUnavailable
		if n.name == domain.JournalStream || n.name == domain.DeliveryStream {
			code = domain.CodeJournalUnavailable
		}
		info, err := streamInfo(ctx, d.js, n.name)
		if err != nil {
			sr.Error = err.Error()
			rep.Problems = append(rep.Problems, newProblem(code, "stream %s (%s) cannot be read: %v", n.name, n.role, err))
			out = append(out, sr)
			continue
		}
		sr.Messages, sr.Bytes, sr.Replicas = info.State.Msgs, info.State.Bytes, info.Config.Replicas
		sr.Healthy = true
		if ci := info.Cluster; ci != nil {
			sr.Cluster, sr.Leader = ci.Name, ci.Leader
			for _, p := range ci.Replicas {
				sr.Peers = append(sr.Peers, peerReport{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
				if p.Offline || !p.Current {
					sr.Healthy = false
					rep.Problems = append(rep.Problems, newProblem(code, "stream %s (%s): replica %s is %s", n.name, n.role, p.Name, peerState(p)))
				}
			}
			if ci.Leader == "" && sr.Replicas > 1 {
				sr.Healthy = false
				rep.Problems = append(rep.Problems, newProblem(code, "stream %s (%s) has no leader: writes to it fail until a quorum of its %d replicas is back", n.name, n.role, sr.Replicas))
			}
		}
		out = append(out, sr)
	}
	return out
}

func peerState(p *jetstream.PeerInfo) string {
	if p.Offline {
		return "offline"
	}
	return fmt.Sprintf("behind the leader by %d operations", p.Lag)
}

func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// projectionReports reads each projector's lag (Engine.Lag) and calls a
// projector stalled when it has events to fold but acknowledged nothing
// for stalledAfter, measured on the server's clock so skew cannot fake it.
func (d *Doctor) projectionReports(ctx context.Context, rep *Report) []projectionReport {
	lag, err := d.engine.Lag(ctx)
	if err != nil {
		rep.Problems = append(rep.Problems, newProblem(domain.CodeStoreUnavailable, "projector lag cannot be read: %v", err))
	}
	byProjection := map[string]int{}
	for _, g := range rep.DeadLetters.ByCode {
		for p, n := range g.Projections {
			byProjection[p] += n
		}
	}
	paused := map[string]*projections.Pause{}
	for _, p := range d.engine.Paused() {
		paused[p.Projection] = &p
	}
	out := make([]projectionReport, 0, len(domain.Projections))
	for _, name := range domain.Projections {
		pr := projectionReport{Name: name, Lag: lag[name], DeadLetters: byProjection[name], Paused: paused[name]}
		if s := d.engine.Store(name); s != nil {
			pr.Bucket = s.Bucket()
		}
		if c, err := d.js.Consumer(ctx, domain.JournalStream, domain.ProjectorDurable(name, d.engine.Generation(name).Number)); err == nil {
			if ci, err := c.Info(ctx); err == nil {
				pr.LastAckedAt = ci.AckFloor.Last
				if pr.Paused == nil && pr.Lag > 0 && !ci.TimeStamp.IsZero() && (ci.AckFloor.Last == nil || ci.TimeStamp.Sub(*ci.AckFloor.Last) > stalledAfter) {
					rep.Problems = append(rep.Problems, newProblem(domain.CodeStoreUnavailable,
						"projector %s has %d events to fold and acknowledged none for over %s: it is stalled (check its log lines and the KV bucket %s)", name, pr.Lag, stalledAfter, pr.Bucket))
				}
			}
		}
		out = append(out, pr)
	}
	return out
}

// deadLetters counts the open dead letters and groups them by code, one
// problem line per code.
func (d *Doctor) deadLetters(ctx context.Context, rep *Report) deadLetterReport {
	dl := deadLetterReport{ByCode: []deadLetterGroup{}}
	groups := map[domain.Code]*deadLetterGroup{}
	open, err := d.engine.DeadLetters(ctx, projections.DeadLetterFilter{})
	if err != nil {
		return dl // the streams section reports the unreadable stream
	}
	dl.Count = len(open)
	for _, l := range open {
		g := groups[l.Code]
		if g == nil {
			g = &deadLetterGroup{Code: l.Code, Projections: map[string]int{}}
			groups[l.Code] = g
		}
		g.Count++
		g.Projections[l.Projection]++
		// The message often repeats the code it is grouped under.
		g.LastMessage, g.LastEventID, g.LastProvider = strings.TrimPrefix(l.Message, string(l.Code)+": "), l.EventID, d.shownName(l.Namespace)
	}
	for _, code := range slices.Sorted(maps.Keys(groups)) {
		g := groups[code]
		dl.ByCode = append(dl.ByCode, *g)
		rep.Problems = append(rep.Problems, newProblem(code, "%s (%s); newest: %s %s: %s",
			plural(g.Count, "dead letter"), countsText(g.Projections), g.LastProvider, g.LastEventID, g.LastMessage))
	}
	return dl
}

// deliveries reads the newest delivery log entries of the window: outcome
// counts, failures by reason code with their likely cause, and the last
// deliveries per endpoint.
func (d *Doctor) deliveries(ctx context.Context, rep *Report) deliveryReport {
	since := d.now().Add(-doctorWindow).UTC()
	dr := deliveryReport{Since: since, Limit: doctorMaxDeliveries, Outcome: map[domain.Outcome]int{},
		SignatureFailures: []failureGroup{}, OtherFailures: []failureGroup{}, Last: map[string][]deliveryLine{}}
	sig, other := map[domain.Code]*failureGroup{}, map[domain.Code]*failureGroup{}
	if c, err := d.js.Consumer(ctx, domain.JournalStream, ingest.DeliveryLogDurable); err == nil {
		if ci, err := c.Info(ctx); err == nil {
			dr.AcceptedPending = ci.NumPending + uint64(ci.NumAckPending)
		}
	}
	n, _, err := readNewest(ctx, d.js, domain.DeliveryStream, doctorMaxDeliveries, func(data []byte) {
		var del domain.Delivery
		if json.Unmarshal(data, &del) != nil || del.Received.Before(since) {
			return
		}
		del.Endpoint = d.shownName(del.Endpoint)
		dr.Outcome[del.Outcome]++
		last := append(dr.Last[del.Endpoint], deliveryLine{
			Received: del.Received, EventID: del.EventID, EventType: del.EventType, Outcome: del.Outcome,
			Status: del.Status, Code: del.ReasonCode, Attempt: del.Attempt,
		})
		dr.Last[del.Endpoint] = last[max(0, len(last)-doctorLastDeliveries):]
		groups := other
		switch del.Outcome {
		case domain.OutcomeAccepted, domain.OutcomeDuplicate:
			return
		case domain.OutcomeRejected:
			groups = sig
		}
		g := groups[del.ReasonCode]
		if g == nil {
			g = &failureGroup{Code: del.ReasonCode, Endpoints: map[string]int{}, LikelyCause: likelyCauses[del.ReasonCode]}
			groups[del.ReasonCode] = g
		}
		g.Count++
		g.Endpoints[del.Endpoint]++
		if !del.Received.Before(g.LastAt) {
			g.LastAt, g.LastReason = del.Received, del.Reason
		}
	})
	dr.Scanned = n
	if err != nil {
		dr.Error = err.Error()
		return dr
	}
	for _, l := range dr.Last {
		slices.Reverse(l) // newest first
	}
	flatten := func(groups map[domain.Code]*failureGroup, what string) []failureGroup {
		out := make([]failureGroup, 0, len(groups))
		for _, g := range groups {
			out = append(out, *g)
		}
		slices.SortFunc(out, func(a, b failureGroup) int {
			return cmp.Or(b.Count-a.Count, strings.Compare(string(a.Code), string(b.Code)))
		})
		for _, g := range out {
			msg := fmt.Sprintf("%s %s in the last %d hours (%s)", plural(g.Count, "delivery"), what, int(doctorWindow.Hours()), countsText(g.Endpoints))
			if g.LikelyCause != "" {
				msg += ": likely " + g.LikelyCause
			}
			rep.Problems = append(rep.Problems, newProblem(g.Code, "%s", msg))
		}
		return out
	}
	dr.SignatureFailures = flatten(sig, "failed signature verification")
	dr.OtherFailures = flatten(other, "not journaled")
	return dr
}

// plural is "1 delivery", "2 deliveries", "3 dead letters".
func plural(n int, noun string) string {
	switch {
	case n == 1:
	case strings.HasSuffix(noun, "y"):
		noun = strings.TrimSuffix(noun, "y") + "ies"
	default:
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}

// countsText is "a 3, b 1", by name.
func countsText(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// readNewest calls fn with the data of the newest at most limit messages
// of stream, oldest first, through an ordered consumer, and returns how
// many it read and how many the stream holds.
func readNewest(ctx context.Context, js jetstream.JetStream, stream string, limit int, fn func([]byte)) (int, uint64, error) {
	info, err := streamInfo(ctx, js, stream)
	if err != nil {
		return 0, 0, err
	}
	st := info.State
	if st.Msgs == 0 {
		return 0, 0, nil
	}
	start := st.FirstSeq
	if st.LastSeq >= uint64(limit) {
		start = max(start, st.LastSeq-uint64(limit)+1)
	}
	// Direct gets, one per message, so that a doctor run (on demand, over
	// HTTP) creates no consumer on the server.
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, st.Msgs, err
	}
	read := 0
	for seq := start; seq <= st.LastSeq && read < limit; seq++ {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return read, st.Msgs, err
		}
		if m.Sequence > st.LastSeq {
			break // appended since the info: for the next report
		}
		read++
		fn(m.Data)
		seq = m.Sequence
	}
	return read, st.Msgs, nil
}
