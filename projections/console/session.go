package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/billfold/billfold/domain"
)

// Session bounds: a browser signs in once per working day, and the table
// of sessions never grows past a fixed size.
const (
	DefaultMaxSessions = 256
	DefaultSessionTTL  = 8 * time.Hour
	sessionCookie      = "billfold_session"
	loginCookie        = "billfold_login"
)

// session is one signed-in browser.
type session struct {
	id string
	// admin is the admin token's name; empty for a read-only session
	// opened with BILLFOLD_API_TOKEN.
	admin   string
	csrf    string
	expires time.Time
}

// Admin is the admin token's name, empty for a read-only session.
func (s *session) Admin() string { return s.admin }

func (s *session) csrfOK(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// sessions is the bounded table of signed-in browsers, in memory: a
// restart signs everyone out, which is the safe direction.
type sessions struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	by  map[string]*session
	now func() time.Time
}

func newSessions(max int, ttl time.Duration) *sessions {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &sessions{max: max, ttl: ttl, by: map[string]*session{}, now: time.Now}
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// open adds a session for admin ("" for read-only); past the bound, after
// dropping expired ones, it is BILLFOLD-CONSOLE-SESSIONS-FULL.
func (ss *sessions) open(admin string) (*session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	if len(ss.by) >= ss.max {
		for id, s := range ss.by {
			if now.After(s.expires) {
				delete(ss.by, id)
			}
		}
	}
	if len(ss.by) >= ss.max {
		return nil, domain.Errorf(domain.CodeConsoleSessionsFull, "the console holds as many sessions as it may (%d): sign out elsewhere or wait for sessions to expire", ss.max)
	}
	s := &session{id: randomToken(), admin: admin, csrf: randomToken(), expires: now.Add(ss.ttl)}
	ss.by[s.id] = s
	return s, nil
}

// fromRequest is the request's live session, or nil.
func (ss *sessions) fromRequest(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.by[ck.Value]
	if s == nil {
		return nil
	}
	if ss.now().After(s.expires) {
		delete(ss.by, s.id)
		return nil
	}
	return s
}

func (ss *sessions) close(id string) {
	ss.mu.Lock()
	delete(ss.by, id)
	ss.mu.Unlock()
}

// cookie is a console cookie: HttpOnly, SameSite=Strict, scoped to the
// console, Secure when the request came over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// loginView is the login page's data.
type loginView struct {
	Next      string
	Token     string // the login form's CSRF token
	Error     string
	ReadToken bool
}

// loginPage shows the form; its CSRF token is a fresh value kept in a
// short-lived cookie as well (double submit), since there is no session
// yet.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, cookie(r, loginCookie, tok, 600))
	c.render(w, r, c.sessions.fromRequest(r), status, "login", "login", "Sign in",
		loginView{Next: safeNext(r.FormValue("next")), Token: tok, Error: msg, ReadToken: c.cfg.ReadToken != ""})
}

// login opens a session for an admin token (actions allowed, by that
// token's name) or the read token (read-only).
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		c.log.Warn("console sign-in refused: CSRF token missing or wrong", "code", domain.CodeUnauthorized)
		c.showLogin(w, r, http.StatusUnauthorized, "The form expired or did not come from this page. Try again.")
		return
	}
	token := r.PostFormValue("token")
	admin, ok := c.adminName(token)
	if !ok && (c.cfg.ReadToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(c.cfg.ReadToken)) != 1) {
		c.log.Warn("console sign-in refused: unknown token", "code", domain.CodeUnauthorized)
		c.showLogin(w, r, http.StatusUnauthorized, "That token is neither an admin token nor the API token.")
		return
	}
	s, err := c.sessions.open(admin)
	if err != nil {
		c.log.Warn("console sign-in refused", "code", domain.ErrorCode(err), "error", err)
		c.fail(w, r, nil, err)
		return
	}
	c.log.Info("console sign-in", "by", admin, "read_only", admin == "")
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	http.SetCookie(w, cookie(r, sessionCookie, s.id, int(c.sessions.ttl/time.Second)))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// adminName is the name of the admin token equal to token.
func (c *Console) adminName(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	for name, t := range c.cfg.AdminTokens {
		if t != "" && subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
			return name, true
		}
	}
	return "", false
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if s := c.sessions.fromRequest(r); s != nil {
		if !s.csrfOK(r.PostFormValue("csrf")) {
			c.fail(w, r, s, domain.Errorf(domain.CodeUnauthorized, "the form's CSRF token is missing or stale: reload the page and try again"))
			return
		}
		c.sessions.close(s.id)
	}
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
