// Package console is the operator console: server-rendered HTML pages on
// the admin listener under /ui/ over the same in-process services the /v1
// API uses (the ledger, dead letters, rebuilds, the query index, doctor).
// Templates and assets are embedded; html/template escapes every value, a
// strict Content-Security-Policy allows only the console's own script and
// style, and every action is a POST carrying the session's CSRF token and
// made with an admin token's session.
//
// It reads no stream itself: the delivery log through ledger.DeliveryLog,
// events through the ledger, records and dead letters through query.
// It imports projections and its rooms and domain; it must never import
// ingest or cmd (doctor reaches it as a function), nor write a store
// other than through the services' own mutations.
package console

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/projections/rebuild"
)

// Problem is one thing billfold doctor found wrong.
type Problem struct {
	Code    domain.Code
	Message string
}

// Config is what the console reads and acts on: the services billfold
// serve already runs for the /v1 API.
type Config struct {
	Engine   *projections.Engine
	Rebuilds *rebuild.Rebuilds
	Ledger   *ledger.Ledger
	Query    *query.Query
	// JetStream is where the delivery log is read (through
	// ledger.DeliveryLog, its one reader).
	JetStream jetstream.JetStream
	// Changes is the change feed's SSE handler (GET /v1/changes); the
	// console forwards a signed-in browser's stream to it.
	Changes http.Handler
	// Doctor returns billfold doctor's problems; nil shows none.
	Doctor func(ctx context.Context) []Problem
	// ReadToken is BILLFOLD_API_TOKEN: when set, reading needs a session
	// opened with it or an admin token.
	ReadToken   string
	AdminTokens httpapi.AdminTokens
	Log         *slog.Logger
	// MaxSessions bounds the signed-in sessions (DefaultMaxSessions when
	// zero); SessionTTL is how long one lasts (DefaultSessionTTL).
	MaxSessions int
	SessionTTL  time.Duration
}

// Prefix is where the console is mounted.
const Prefix = "/ui/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the pages.
type Console struct {
	cfg         Config
	sessions    *sessions
	pages       map[string]*template.Template
	mux         *http.ServeMux
	log         *slog.Logger
	deliveryLog *ledger.DeliveryLog
}

// New returns the console for cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, log: cfg.Log, mux: http.NewServeMux(),
		sessions: newSessions(cfg.MaxSessions, cfg.SessionTTL), deliveryLog: ledger.NewDeliveryLog(cfg.JetStream)}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	read := func(pattern string, h func(http.ResponseWriter, *http.Request, *session)) {
		c.mux.HandleFunc(pattern, c.reader(h))
	}
	act := func(pattern string, h func(http.ResponseWriter, *http.Request, *session)) {
		c.mux.HandleFunc(pattern, c.actor(h))
	}
	c.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/", http.FileServerFS(staticFS)))
	c.mux.HandleFunc("GET /ui/login", c.loginPage)
	c.mux.HandleFunc("POST /ui/login", c.login)
	c.mux.HandleFunc("POST /ui/logout", c.logout)
	read("GET /ui/{$}", c.overview)
	read("GET /ui/deliveries", c.deliveries)
	read("GET /ui/events/{provider}/{id}", c.event)
	read("GET /ui/dead-letters", c.deadLetters)
	read("GET /ui/rebuilds", c.rebuilds)
	read("GET /ui/rebuilds/{id}", c.rebuild)
	read("GET /ui/rebuilds/{id}/progress", c.rebuildProgress)
	read("GET /ui/subscriptions", c.subscriptions)
	read("GET /ui/subscriptions/{provider}/{id}", c.subscription)
	read("GET /ui/customers/{provider}/{id}", c.customer)
	read("GET /ui/orders/{provider}/{id}", c.order)
	read("GET /ui/wallets/{user}", c.wallet)
	read("GET /ui/changes", c.changes)
	act("POST /ui/dead-letters/requeue", c.requeueWhere)
	act("POST /ui/dead-letters/{id}/requeue", c.requeueOne)
	act("POST /ui/rebuilds", c.startRebuild)
	act("POST /ui/rebuilds/{id}/cancel", c.cancelRebuild)
	act("POST /ui/projections/{name}/pause", c.pauseProjection)
	act("POST /ui/projections/{name}/resume", c.resumeProjection)
	c.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, c.sessions.fromRequest(r), domain.Errorf(domain.CodeNotFound, "no page %s %s", r.Method, r.URL.Path))
	})
}

// ServeHTTP serves every path under Prefix with the console's security
// headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Only the console's own files: no inline script or style, no
	// framing, forms post back here only.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// RedirectRoot answers GET / with a redirect to the console.
func RedirectRoot(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, Prefix, http.StatusFound)
}

// reader wraps a page: with a read token configured it needs a session;
// without one reads are as open as the admin listener, like the API's.
func (c *Console) reader(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.fromRequest(r)
		if s == nil && c.cfg.ReadToken != "" {
			c.toLogin(w, r)
			return
		}
		h(w, r, s)
	}
}

// actor wraps an action: a session opened with an admin token and the
// session's CSRF token in the form.
func (c *Console) actor(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s := c.sessions.fromRequest(r)
		if s == nil || s.admin == "" {
			c.fail(w, r, s, domain.Errorf(domain.CodeUnauthorized, "actions need a session opened with an admin token: sign in at /ui/login"))
			return
		}
		if !s.csrfOK(r.PostFormValue("csrf")) {
			c.log.Warn("console action refused: CSRF token missing or wrong", "code", domain.CodeUnauthorized, "path", r.URL.Path, "by", s.admin)
			c.fail(w, r, s, domain.Errorf(domain.CodeUnauthorized, "the form's CSRF token is missing or stale: reload the page and try again"))
			return
		}
		h(w, r, s)
	}
}

func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	Session *session
	Data    any
	// CSRF is the session's token for the page's forms.
	CSRF string
}

// render writes template name with data.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, nav, title string, data any) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	p := page{Title: title, Nav: nav, Session: s, Data: data}
	if s != nil {
		p.CSRF = s.csrf
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		c.log.Error("console template failed", "template", name, "error", err)
		http.Error(w, "template failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// errorView is the error page's data.
type errorView struct {
	Code    domain.Code
	Message string
}

// fail renders err as an error page with the status the API would answer.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := domain.ErrorCode(err)
	status := http.StatusInternalServerError
	switch code {
	case domain.CodeNotFound:
		status = http.StatusNotFound
	case domain.CodeBadRequest:
		status = http.StatusBadRequest
	case domain.CodeUnauthorized:
		status = http.StatusUnauthorized
	case domain.CodeJournalUnavailable, domain.CodeStoreUnavailable, domain.CodeConsoleSessionsFull:
		status = http.StatusServiceUnavailable
	case domain.CodeConflict, domain.CodeConfirmRequired:
		status = http.StatusConflict
	}
	msg := domain.ErrorMessage(err)
	if status == http.StatusInternalServerError {
		c.log.Error("console page failed", "path", r.URL.Path, "code", code, "error", err)
	}
	c.render(w, r, s, status, "error", "", string(code), errorView{Code: code, Message: msg})
}
