package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/cmd/billfold/internal/doctor"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/admin"
	"github.com/billfold/billfold/projections/console"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/query"
)

// adminTokensFromEnv reads the tokens allowed to make admin mutations:
// BILLFOLD_ADMIN_TOKEN (named "admin") and BILLFOLD_ADMIN_TOKENS, a comma
// list of name=token, so that each operator or automation has a token of
// its own and requeues record who asked. getenv reads the environment.
// Every token needs minTokenLength characters, whichever variable gives it:
// a short one is BILLFOLD-CONFIG-INVALID and serve does not start.
func adminTokensFromEnv(getenv func(string) string) (httpapi.AdminTokens, error) {
	tokens := httpapi.AdminTokens{}
	if t := getenv("BILLFOLD_ADMIN_TOKEN"); t != "" {
		if len(t) < minTokenLength {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "BILLFOLD_ADMIN_TOKEN must be %d characters or more", minTokenLength)
		}
		tokens["admin"] = t
	}
	for _, item := range strings.Split(getenv("BILLFOLD_ADMIN_TOKENS"), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, token, ok := strings.Cut(item, "=")
		if !ok || name == "" || len(token) < minTokenLength {
			return nil, domain.Errorf(domain.CodeConfigInvalid, "BILLFOLD_ADMIN_TOKENS: want name=token pairs, tokens of %d characters or more", minTokenLength)
		}
		for other, t := range tokens {
			if t == token {
				return nil, domain.Errorf(domain.CodeConfigInvalid, "BILLFOLD_ADMIN_TOKENS: %s and %s share a token; each name needs its own", other, name)
			}
		}
		tokens[name] = token
	}
	return tokens, nil
}

// newConsole is the operator console over the services the /v1 API uses.
func newConsole(ops *admin.Operations, q *query.Query, js jetstream.JetStream, changes http.Handler,
	doc *doctor.Doctor, readToken string, adminTokens httpapi.AdminTokens, log *slog.Logger) (*console.Console, error) {
	return console.New(console.Config{
		Engine: ops.Engine, Rebuilds: ops.Rebuilds, Ledger: ops.Ledger, Query: q, JetStream: js, Changes: changes,
		Doctor: func(ctx context.Context) []console.Problem {
			var out []console.Problem
			for _, p := range doc.Report(ctx).Problems {
				out = append(out, console.Problem{Code: p.Code, Message: p.Message})
			}
			return out
		},
		ReadToken: readToken, AdminTokens: adminTokens, Log: log,
	})
}

// registerProfiler mounts Go's profiler (net/http/pprof) under
// /debug/pprof/ on the admin listener, behind an admin token: a profile
// shows the process's code paths, command line and memory, and taking one
// costs CPU, so it is an operator's action, not a read. Mounted on the mux
// itself, like the console: these are Go's routes, not billfold's API, so
// the OpenAPI document's route check does not see them.
// docs/performance.md#profiling-a-running-server has the commands.
func registerProfiler(m *adminMux, admin func(http.Handler) http.Handler) {
	m.ServeMux.Handle("GET /debug/pprof/", admin(http.HandlerFunc(pprof.Index)))
	m.ServeMux.Handle("GET /debug/pprof/cmdline", admin(http.HandlerFunc(pprof.Cmdline)))
	m.ServeMux.Handle("GET /debug/pprof/profile", admin(http.HandlerFunc(pprof.Profile)))
	m.ServeMux.Handle("GET /debug/pprof/symbol", admin(http.HandlerFunc(pprof.Symbol)))
	m.ServeMux.Handle("POST /debug/pprof/symbol", admin(http.HandlerFunc(pprof.Symbol)))
	m.ServeMux.Handle("GET /debug/pprof/trace", admin(http.HandlerFunc(pprof.Trace)))
}

// adminMux is the admin listener's mux; it remembers every pattern
// registered on it so a test can check them against the OpenAPI document.
type adminMux struct {
	*http.ServeMux
	mu       sync.Mutex
	patterns []string
}

var (
	adminMuxesMu sync.Mutex
	adminMuxes   []*adminMux // every admin mux built in this process, for tests
)

func newAdminMux() *adminMux {
	m := &adminMux{ServeMux: http.NewServeMux()}
	adminMuxesMu.Lock()
	adminMuxes = append(adminMuxes, m)
	adminMuxesMu.Unlock()
	return m
}

// Handle implements httpapi.Mux.
func (m *adminMux) Handle(pattern string, h http.Handler) {
	m.record(pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers a handler function.
func (m *adminMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.record(pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

func (m *adminMux) record(pattern string) {
	m.mu.Lock()
	m.patterns = append(m.patterns, pattern)
	m.mu.Unlock()
}

// Patterns returns the registered patterns in registration order.
func (m *adminMux) Patterns() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.patterns...)
}
