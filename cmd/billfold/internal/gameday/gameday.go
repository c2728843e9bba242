// Package gameday is `billfold gameday`: reliability drills against
// engines on temporary dirs (a NATS server taken away and brought back,
// clock skew, a reducer bug and its dead letters, ...), each a PASS or FAIL
// with figures read from the engines' own metrics. It starts engines
// through the local.Starter it is given and talks to them over HTTP and
// NATS only, so it must never import the serve wiring (package main).
package gameday

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/cmd/billfold/internal/demo"
	"github.com/billfold/billfold/cmd/billfold/internal/doctor"
	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
)

// billfold gameday runs the reliability drills of docs/gameday.md. Each
// drill starts the engines it needs itself (serve, in this process, on
// temporary data dirs and loopback ports, with secrets made up for the
// run; a separate in-process NATS server where the drill takes the journal
// away), does to them what production will, and checks what an operator
// would: the answers providers get, /metrics, the delivery log, the logs,
// the journal and billfold verify. It prints PASS or FAIL per drill with
// the figures it measured, and exits 1 when any drill fails.

// drill is one gameday drill.
type drill struct {
	name    string
	summary string
	run     func(ctx context.Context, r *drillRun) error
}

// drills are the gameday drills, in the order they run.
var drills = []drill{
	{"signature-failure", "forged and tampered deliveries are refused, counted and never journaled", drillSignatureFailure},
	{"clock-skew", "signed timestamps past the tolerance are refused with the right code, within it accepted", drillClockSkew},
	{"journal-outage", "the journal's NATS server stops under load: 503 with Retry-After, /readyz 503, recovery without a restart, nothing lost", drillJournalOutage},
	{"downstream-timeout", "slow change-feed consumers do not slow the answers to providers", drillDownstreamTimeout},
	{"dead-letter-replay", "a reducer bug sends top-ups to the dead letters; after the fix a requeue applies each exactly once", drillDeadLetterReplay},
}

// drillTimeout bounds one drill, so that a hang fails it instead of the
// run never ending.
const drillTimeout = 90 * time.Second

// gamedayOptions are billfold gameday's flags.
type gamedayOptions struct {
	output     string
	only       string
	engineLogs bool
	keep       string
}

// Run is `billfold gameday` with its arguments; start runs each engine
// a drill needs.
func Run(args []string, stdout, stderr io.Writer, start local.Starter) int {
	var o gamedayOptions
	fs := cli.NewFlagSet("gameday", stderr)
	fs.StringVar(&o.output, "o", "table", "output: table or json")
	fs.StringVar(&o.only, "drill", "", "run only these drills (comma-separated): "+strings.Join(drillNames(), ", "))
	fs.BoolVar(&o.engineLogs, "engine-logs", false, "also print the engines' JSON logs to stderr")
	fs.StringVar(&o.keep, "keep", "", "keep every drill's data dirs and NATS stores under this directory (created, must be empty) instead of deleting them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold gameday [-o table|json] [--drill NAME,...] [--engine-logs] [--keep DIR]\n\nRuns the reliability drills against engines it starts on temporary data dirs and\nloopback ports (docs/gameday.md); exits 1 when any drill fails.\n\ndrills:")
		for _, d := range drills {
			fmt.Fprintf(stderr, "  %-20s %s\n", d.name, d.summary)
		}
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	// No environment twins (parseFlags), as for demo: the drills' engines
	// take nothing from a real server's settings.
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (o.output != "table" && o.output != "json") {
		fs.Usage()
		return 2
	}
	selected, err := selectDrills(o.only)
	if err != nil {
		fmt.Fprintln(stderr, "billfold gameday:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := runDrills(ctx, start, selected, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "billfold gameday:", err)
		return 1
	}
	if o.output == "json" {
		cli.WriteJSON(stdout, rep)
	} else {
		rep.print(stdout)
	}
	if !rep.Passed {
		return 1
	}
	return 0
}

func drillNames() []string {
	names := make([]string, 0, len(drills))
	for _, d := range drills {
		names = append(names, d.name)
	}
	return names
}

// selectDrills returns the drills named in only (all when empty), in run
// order.
func selectDrills(only string) ([]drill, error) {
	names := cli.SplitList(only)
	if len(names) == 0 {
		return drills, nil
	}
	for _, n := range names {
		if !slices.Contains(drillNames(), n) {
			return nil, fmt.Errorf("--drill %s: want one of %s", n, strings.Join(drillNames(), ", "))
		}
	}
	var out []drill
	for _, d := range drills {
		if slices.Contains(names, d.name) {
			out = append(out, d)
		}
	}
	return out, nil
}

// gamedayReport is what billfold gameday prints.
type gamedayReport struct {
	Passed  bool          `json:"passed"`
	Seconds float64       `json:"seconds"`
	Drills  []drillReport `json:"drills"`
}

// drillReport is one drill's outcome: its figures, and every check it
// made. A drill passes when it ran to the end and every check passed.
type drillReport struct {
	Name    string       `json:"name"`
	Summary string       `json:"summary"`
	Passed  bool         `json:"passed"`
	Seconds float64      `json:"seconds"`
	Figures figures      `json:"figures"`
	Checks  []drillCheck `json:"checks"`
	// Error is why the drill stopped before its end.
	Error string `json:"error,omitempty"`
}

// drillCheck is one thing a drill asserted.
type drillCheck struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// figure is one measured value; its name carries its unit (_s, _ms).
type figure struct {
	name  string
	value any
}

// figures keep the order a drill measured them in, in JSON too.
type figures []figure

// MarshalJSON writes figures as one object, in order.
func (fs figures) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func runDrills(ctx context.Context, startEngine local.Starter, selected []drill, o gamedayOptions, stderr io.Writer) (gamedayReport, error) {
	start := time.Now()
	rep := gamedayReport{Passed: true, Drills: []drillReport{}}
	root, err := drillRoot(o.keep)
	if err != nil {
		return rep, err
	}
	if o.keep == "" {
		defer os.RemoveAll(root)
	}
	secrets := demo.NewSecrets()
	config := filepath.Join(root, "billfold-gameday.yaml")
	if err := os.WriteFile(config, secrets.Config(), 0o600); err != nil {
		return rep, err
	}
	for _, d := range selected {
		if ctx.Err() != nil {
			break
		}
		r := &drillRun{
			start:  startEngine,
			report: drillReport{Name: d.name, Summary: d.summary, Figures: figures{}, Checks: []drillCheck{}},
			dir:    filepath.Join(root, d.name), config: config, secrets: secrets,
			adminToken: "gameday-" + rand.Text(), logs: &logSink{},
		}
		if o.engineLogs {
			r.tee = stderr
		}
		rep.Drills = append(rep.Drills, r.run(ctx, d))
		rep.Passed = rep.Passed && rep.Drills[len(rep.Drills)-1].Passed
	}
	if ctx.Err() != nil {
		rep.Passed = false
	}
	rep.Seconds = roundTo(time.Since(start).Seconds(), 2)
	return rep, nil
}

// drillRoot is the directory the drills keep their data under: keep,
// created and required empty so that no earlier run's store is mistaken
// for this one's, or a new temporary directory.
func drillRoot(keep string) (string, error) {
	if keep == "" {
		return os.MkdirTemp("", "billfold-gameday-")
	}
	if err := os.MkdirAll(keep, 0o700); err != nil {
		return "", fmt.Errorf("--keep: %w", err)
	}
	entries, err := os.ReadDir(keep)
	if err != nil {
		return "", fmt.Errorf("--keep: %w", err)
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("--keep %s: not empty", keep)
	}
	return keep, nil
}

func (rep gamedayReport) print(w io.Writer) {
	failed := 0
	for _, d := range rep.Drills {
		status := "PASS"
		if !d.Passed {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "%s  %s (%.1fs): %s\n", status, d.Name, d.Seconds, d.Summary)
		width := 0
		for _, f := range d.Figures {
			width = max(width, len(f.name))
		}
		for _, f := range d.Figures {
			fmt.Fprintf(w, "      %-*s  %v\n", width, f.name, f.value)
		}
		for _, c := range d.Checks {
			if !c.Passed {
				fmt.Fprintf(w, "      failed: %s: %s\n", c.Name, c.Detail)
			}
		}
		if d.Error != "" {
			fmt.Fprintf(w, "      stopped: %s\n", d.Error)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d drills in %.1fs: %d passed, %d failed\n", len(rep.Drills), rep.Seconds, len(rep.Drills)-failed, failed)
}

// drillRun is one drill's workspace: its report, its temp dir, the run's
// made-up secrets and the engines and servers it started.
type drillRun struct {
	start      local.Starter // runs an engine on the binary's serve
	report     drillReport
	dir        string
	config     string // the YAML config every engine of the run serves
	secrets    demo.Secrets
	adminToken string
	logs       *logSink  // every engine's log lines
	tee        io.Writer // also writes the log lines there, when set
	cleanups   []func()
}

func (r *drillRun) run(ctx context.Context, d drill) drillReport {
	ctx, cancel := context.WithTimeout(ctx, drillTimeout)
	defer cancel()
	start := time.Now()
	err := d.run(ctx, r)
	for _, c := range slices.Backward(r.cleanups) {
		c()
	}
	rep := r.report
	rep.Seconds = roundTo(time.Since(start).Seconds(), 2)
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Passed = err == nil && len(rep.Checks) > 0
	for _, c := range rep.Checks {
		rep.Passed = rep.Passed && c.Passed
	}
	return rep
}

// figure records a measured value.
func (r *drillRun) figure(name string, value any) {
	r.report.Figures = append(r.report.Figures, figure{name, value})
}

// check records an assertion and returns ok; detail says what was seen.
func (r *drillRun) check(name string, ok bool, detail string, args ...any) bool {
	r.report.Checks = append(r.report.Checks, drillCheck{Name: name, Passed: ok, Detail: fmt.Sprintf(detail, args...)})
	return ok
}

// cleanup runs f when the drill ends, after the cleanups registered later.
func (r *drillRun) cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// startEngine starts serve on the data dir dir/name (kept between starts,
// so a drill can restart an engine on its data) with the run's config and
// admin token, env's settings (BILLFOLD_FAIL_EVENT_TYPES) and tune's
// changes to serve's options.
func (r *drillRun) startEngine(ctx context.Context, name string, env map[string]string, tune func(*local.Options)) (*drillEngine, error) {
	so := local.Defaults(filepath.Join(r.dir, name), r.config, "info")
	vars := map[string]string{"BILLFOLD_ADMIN_TOKEN": r.adminToken}
	for k, v := range env {
		vars[k] = v
	}
	so.Getenv = func(k string) string { return vars[k] }
	if tune != nil {
		tune(&so)
	}
	var out io.Writer = r.logs
	if r.tee != nil {
		out = io.MultiWriter(r.logs, r.tee)
	}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})).With("engine", r.report.Name+"/"+name)
	eng, err := r.start(ctx, so, log)
	if err != nil {
		return nil, fmt.Errorf("engine %s did not start: %w", name, err)
	}
	de := &drillEngine{Engine: eng, token: r.adminToken, http: &http.Client{Timeout: 30 * time.Second}}
	r.cleanup(func() { _ = de.Stop() })
	return de, nil
}

// drillNATS is a NATS server with JetStream in this process, on
// loopback, storing under its own dir: the separate journal server a drill
// can take away from an engine and bring back. It runs the embedded
// server's code, so it behaves as billfold's own.
type drillNATS struct {
	dir  string
	port int
	srv  *server.Server
}

// startNATS starts the drill's NATS server name on any free port; it is
// shut down when the drill ends, after the engines started later.
func (r *drillRun) startNATS(name string) (*drillNATS, error) {
	n := &drillNATS{dir: filepath.Join(r.dir, name)}
	if err := n.start(); err != nil {
		return nil, err
	}
	n.port = n.srv.Addr().(*net.TCPAddr).Port
	r.cleanup(n.stop)
	return n, nil
}

// start starts the server on its store and port (0 the first time).
func (n *drillNATS) start() error {
	// An open server on loopback, as an operator's own NATS would be, with
	// room for the engines' journal messages.
	srv, err := local.StartEmbeddedNATS(n.dir, "127.0.0.1:"+strconv.Itoa(n.port), false, nil, int32(ingest.JournalPayloadNeeded(nil)))
	if err != nil {
		return err
	}
	n.srv = srv
	return nil
}

// stop shuts the server down and waits until it is gone.
func (n *drillNATS) stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// URL is the server's client URL; it stays the same across restarts.
func (n *drillNATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// drillEngine is a local engine with the client calls the drills make.
type drillEngine struct {
	*local.Engine
	token string
	http  *http.Client
}

// Stop closes the drill's idle connections first: the server's graceful
// shutdown waits up to 5 s for a connection that never sent a request.
func (e *drillEngine) Stop() error {
	e.http.CloseIdleConnections()
	return e.Engine.Stop()
}

// deliver posts a signed delivery to endpoint and returns the status (0
// when there was no answer) and the answer's headers.
func (e *drillEngine) deliver(ctx context.Context, endpoint string, s samples.Signed) (int, http.Header) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.PublicURL+"/webhooks/"+endpoint, bytes.NewReader(s.Body))
	if err != nil {
		return 0, nil
	}
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// call sends method path to the admin listener (mutations with the admin
// token), decodes a 2xx JSON answer into out, and returns the status.
func (e *drillEngine) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.AdminURL+path, rd)
	if err != nil {
		return 0, err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// get is call with GET.
func (e *drillEngine) get(ctx context.Context, path string, out any) (int, error) {
	return e.call(ctx, http.MethodGet, path, nil, out)
}

// metrics returns the admin listener's /metrics text.
func (e *drillEngine) metrics(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.AdminURL+"/metrics", nil)
	if err != nil {
		return ""
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// readyz returns /readyz's status (0: no answer).
func (e *drillEngine) readyz(ctx context.Context) int {
	code, _ := e.get(ctx, "/readyz", nil)
	return code
}

// doctor returns the debug report.
func (e *drillEngine) doctor(ctx context.Context) (doctor.Report, error) {
	var rep doctor.Report
	code, err := e.get(ctx, "/v1/doctor", &rep)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /v1/doctor answered %d", code)
	}
	return rep, err
}

// journalMessages is the number of events in the journal, from doctor.
func (e *drillEngine) journalMessages(ctx context.Context) (uint64, error) {
	rep, err := e.doctor(ctx)
	if err != nil {
		return 0, err
	}
	for _, s := range rep.Streams {
		if s.Name == domain.JournalStream {
			return s.Messages, nil
		}
	}
	return 0, fmt.Errorf("doctor lists no %s stream", domain.JournalStream)
}

// waitProjected waits until every projector has folded the whole journal.
func (e *drillEngine) waitProjected(ctx context.Context, timeout time.Duration) error {
	return waitFor(ctx, timeout, func() bool {
		rep, err := e.doctor(ctx)
		if err != nil || len(rep.Projections) == 0 {
			return false
		}
		for _, p := range rep.Projections {
			if p.Lag > 0 {
				return false
			}
		}
		return true
	}, "the projectors did not catch up")
}

// verify runs GET /v1/verify: the live projections against a clean fold
// of the journal.
func (e *drillEngine) verify(ctx context.Context) (projections.VerifyReport, error) {
	var rep projections.VerifyReport
	code, err := e.get(ctx, "/v1/verify", &rep)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /v1/verify answered %d", code)
	}
	return rep, err
}

// deliveryLog returns the delivery log's entries of the last ten minutes
// with outcome, newest first.
func (e *drillEngine) deliveryLog(ctx context.Context, outcome domain.Outcome) ([]projections.EventSummary, error) {
	var page struct {
		Items []projections.EventSummary `json:"items"`
	}
	_, err := e.get(ctx, fmt.Sprintf("/v1/events?status=%s&since=10m&limit=%d", outcome, projections.MaxListLimit), &page)
	return page.Items, err
}

// countCodes counts entries by reason code.
func countCodes(entries []projections.EventSummary) map[domain.Code]int {
	out := map[domain.Code]int{}
	for _, e := range entries {
		out[e.Code]++
	}
	return out
}

// waitFor polls cond every 50 ms until it holds, or fails with what after
// timeout.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool, what string) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s within %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// metricLine is one sample of the Prometheus text format:
// name{label="value",...} number.
var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)`)

// metricLabel is one label="value" pair.
var metricLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// metricSum adds up the samples of metric name in text whose labels
// include every pair of match.
func metricSum(text, name string, match map[string]string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, l := range metricLabel.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		ok := true
		for k, v := range match {
			ok = ok && labels[k] == v
		}
		if v, err := strconv.ParseFloat(m[3], 64); ok && err == nil {
			sum += v
		}
	}
	return sum
}

// logSink keeps the engines' JSON log lines for the drills to read, as an
// operator reads the logs.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer for the engines' log handlers.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// count returns how many log lines have message msg and every attribute
// of attrs.
func (s *logSink) count(msg string, attrs map[string]string) int {
	s.mu.Lock()
	lines := bytes.Split(s.buf.Bytes(), []byte("\n"))
	s.mu.Unlock()
	n := 0
	for _, line := range lines {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range attrs {
			ok = ok && fmt.Sprint(rec[k]) == v
		}
		if ok {
			n++
		}
	}
	return n
}

// percentile is the q-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*q)) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ms is d in milliseconds, to the hundredth.
func ms(d time.Duration) float64 { return roundTo(float64(d)/float64(time.Millisecond), 2) }

// secs is d in seconds, to the millisecond.
func secs(d time.Duration) float64 { return roundTo(d.Seconds(), 3) }

func roundTo(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p)/p + 0 // + 0: no "-0"
}
