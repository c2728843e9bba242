package gameday

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/billfold/billfold/cmd/billfold/internal/doctor"
	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/rebuild"
)

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
func (e *drillEngine) verify(ctx context.Context) (rebuild.VerifyReport, error) {
	var rep rebuild.VerifyReport
	code, err := e.get(ctx, "/v1/verify", &rep)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /v1/verify answered %d", code)
	}
	return rep, err
}

// deliveryLog returns the delivery log's entries of the last ten minutes
// with outcome, newest first.
func (e *drillEngine) deliveryLog(ctx context.Context, outcome domain.Outcome) ([]ledger.EventSummary, error) {
	var page struct {
		Items []ledger.EventSummary `json:"items"`
	}
	_, err := e.get(ctx, fmt.Sprintf("/v1/events?status=%s&since=10m&limit=%d", outcome, httpapi.MaxListLimit), &page)
	return page.Items, err
}

// countCodes counts entries by reason code.
func countCodes(entries []ledger.EventSummary) map[domain.Code]int {
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
