// Package httpapi holds the admin API's HTTP conventions, which every
// handler of projections and the console share: JSON answers, errors as
// JSON with their stable code (the status follows from the code, and a
// 5xx or 429 is logged with its cause), and admin bearer tokens.
//
// It imports only domain, and must never import projections or any of its
// rooms: they all answer through it.
package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/billfold/billfold/domain"
)

// APIError is the JSON body of every admin API error: a short machine word,
// the stable code and a message for the person reading it.
type APIError struct {
	Error   string      `json:"error"`
	Code    domain.Code `json:"code"`
	Message string      `json:"message,omitempty"`
}

// WriteJSON writes v as a JSON answer with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WritePage writes a list answer, {"items": [...], "next_cursor": "..."}
// (next_cursor left out when empty), with status 200. The outer
// structure is indented as WriteJSON indents it; each item is written
// as it is, not re-indented: items are stored records, already compact
// JSON, and re-indenting a page of them cost a copy and a scan of every
// byte of every list answer. The answer is built in a pooled buffer and
// written at once, so that a page costs no garbage of its size.
func WritePage(w http.ResponseWriter, items []json.RawMessage, nextCursor string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bp := pageBuffers.Get().(*[]byte)
	b := append((*bp)[:0], "{\n  \"items\": ["...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		b = append(b, it...)
	}
	if len(items) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, ']')
	if nextCursor != "" {
		b = append(b, ",\n  \"next_cursor\": "...)
		cursor, _ := json.Marshal(nextCursor) // a string always marshals
		b = append(b, cursor...)
	}
	b = append(b, "\n}\n"...)
	_, _ = w.Write(b)
	if cap(b) <= maxPooledPage {
		*bp = b
		pageBuffers.Put(bp)
	}
}

// pageBuffers holds the buffers WritePage builds answers in; one larger
// than maxPooledPage (a page of unusually large records) is left to the
// collector rather than kept.
var pageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

const maxPooledPage = 1 << 20

// errorLog is where WriteError logs the answers an operator must see: every
// 5xx and every 429, with the code and the whole cause, which the answer
// itself carries only as a short message.
var errorLog atomic.Pointer[slog.Logger]

// LogErrorsTo makes WriteError log every 5xx and 429 answer to log (the
// default is slog.Default()).
func LogErrorsTo(log *slog.Logger) { errorLog.Store(log) }

// WriteError answers err as an APIError; the status and the machine word
// follow from its code. A 5xx or 429 is logged with its code and cause.
func WriteError(w http.ResponseWriter, err error) {
	code := domain.ErrorCode(err)
	status, word := http.StatusInternalServerError, "internal"
	switch code {
	case domain.CodeNotFound:
		status, word = http.StatusNotFound, "not_found"
	case domain.CodeBadRequest:
		status, word = http.StatusBadRequest, "bad_request"
	case domain.CodeUnauthorized:
		status, word = http.StatusUnauthorized, "unauthorized"
	case domain.CodeJournalUnavailable, domain.CodeStoreUnavailable:
		status, word = http.StatusServiceUnavailable, "unavailable"
	case domain.CodeIndexLoading:
		status, word = http.StatusServiceUnavailable, "loading"
		w.Header().Set("Retry-After", "1")
	case domain.CodeConflict:
		status, word = http.StatusConflict, "conflict"
	case domain.CodeConfirmRequired:
		status, word = http.StatusConflict, "confirmation_required"
	case domain.CodeBusy:
		status, word = http.StatusTooManyRequests, "busy"
		w.Header().Set("Retry-After", "5")
	}
	if status >= 500 || status == http.StatusTooManyRequests {
		log := errorLog.Load()
		if log == nil {
			log = slog.Default()
		}
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, "admin API answered an error", "status", status, "code", code, "error", err)
	}
	var e *domain.Error
	msg := "internal error"
	if errors.As(err, &e) {
		msg = e.Message
	}
	WriteJSON(w, status, APIError{Error: word, Code: code, Message: msg})
}

// AdminTokens names the tokens that may make admin mutations: name →
// token. The name is what logs and dead-letter histories record as who
// asked.
type AdminTokens map[string]string

type adminNameKey struct{}

// RequireAdmin returns a middleware that lets a request through only with
// "Authorization: Bearer <token>" for one of tokens, and records the
// token's name for AdminName. With no tokens configured every request is
// refused: admin mutations are never open.
func RequireAdmin(tokens AdminTokens) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for name, token := range tokens {
				if token != "" && BearerOK(r, token) {
					h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminNameKey{}, name)))
					return
				}
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="billfold-admin"`)
			msg := "this route needs Authorization: Bearer <BILLFOLD_ADMIN_TOKEN>"
			if len(tokens) == 0 {
				msg = "admin mutations are disabled: the server has no BILLFOLD_ADMIN_TOKEN"
			}
			WriteError(w, domain.Errorf(domain.CodeUnauthorized, "%s", msg))
		})
	}
}

// AdminName is the name of the admin token a request was let through with.
func AdminName(ctx context.Context) string {
	name, _ := ctx.Value(adminNameKey{}).(string)
	return name
}

// BearerOK reports whether r carries "Authorization: Bearer <token>".
func BearerOK(r *http.Request, token string) bool {
	got, ok := bytes.CutPrefix([]byte(r.Header.Get("Authorization")), []byte("Bearer "))
	return ok && subtle.ConstantTimeCompare(got, []byte(token)) == 1
}

// DecodeBody reads a JSON request body into v; an empty body leaves v as
// it is.
func DecodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return domain.Errorf(domain.CodeBadRequest, "request body: %v", err)
	}
	return nil
}

// ParseSince reads a time bound as the API and the CLI take it: RFC 3339,
// or a duration back from now ("1h", "30m"); "" is the zero time. A bad
// value is BILLFOLD-BAD-REQUEST naming name.
func ParseSince(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, domain.Errorf(domain.CodeBadRequest, "%s %q: want RFC 3339 or a duration such as 1h", name, v)
	}
	return t, nil
}

// Mux is where handlers are registered: an *http.ServeMux, or a wrapper
// that also records the patterns.
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// RequireToken returns a middleware that lets a request through only with
// "Authorization: Bearer <token>", answering 401 BILLFOLD-UNAUTHORIZED
// otherwise. An empty token lets every request through: reads are then as
// open as the admin listener is (loopback by default).
func RequireToken(token string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		if token == "" {
			return h
		}
		want := []byte("Bearer " + token)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="billfold"`)
				WriteError(w, domain.Errorf(domain.CodeUnauthorized, "this route needs Authorization: Bearer <BILLFOLD_API_TOKEN>"))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// Limits of a list page, for every list the API answers.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ParseLimit validates a limit parameter: 1 to MaxListLimit, "" for
// DefaultListLimit.
func ParseLimit(s string) (int, error) {
	if s == "" {
		return DefaultListLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxListLimit {
		return 0, domain.Errorf(domain.CodeBadRequest, "limit %q: want an integer from 1 to %d", s, MaxListLimit)
	}
	return n, nil
}
