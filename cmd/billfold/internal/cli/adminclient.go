// Package cli is what billfold's subcommands share: the flag helpers (a flag
// beats its BILLFOLD_ environment twin, which beats the default) and the
// admin API client (base URL from --server, BILLFOLD_API_TOKEN for reads,
// BILLFOLD_ADMIN_TOKEN for mutations, JSON answers and coded errors, -o json).
// It must never import ingest or the engine's wiring: it only talks HTTP.
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
)

// AdminCall sends method path (with query v and a JSON body) to the admin
// listener and returns the body of a 2xx answer.
func AdminCall(server, method, path string, v url.Values, body any) ([]byte, error) {
	token := os.Getenv("BILLFOLD_API_TOKEN")
	if method != http.MethodGet {
		token = os.Getenv("BILLFOLD_ADMIN_TOKEN")
	}
	return AdminRequest(server, token, method, path, v, body)
}

// AdminRequest is adminCall with the bearer token given.
func AdminRequest(server, token, method, path string, v url.Values, body any) ([]byte, error) {
	u := strings.TrimRight(server, "/") + path
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Minute} // verify and as_of fold the journal
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(out, &e.Body)
		return nil, e
	}
	return out, nil
}

// AdminJSON calls the admin API and decodes the answer into out.
func AdminJSON(server, method, path string, v url.Values, body, out any) error {
	b, err := AdminCall(server, method, path, v, body)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func ErrorCode(err error) domain.Code {
	var e *APIError
	if errors.As(err, &e) {
		return e.Body.Code
	}
	return ""
}

const DefaultAdminServer = "http://127.0.0.1:8081"

// ParseInterleaved parses flags that may come before, between or after
// the positional arguments, and returns the positional ones.
func ParseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := ParseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// APIError is a failed answer of the admin API.
type APIError struct {
	Status int
	Body   httpapi.APIError
}

func (e *APIError) Error() string {
	if e.Body.Code == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("%s %s", e.Body.Code, e.Body.Message)
}

// AdminGet GETs path with query v from the admin listener and returns the
// body of a 200 answer.
func AdminGet(server, path string, v url.Values) ([]byte, error) {
	return AdminCall(server, http.MethodGet, path, v, nil)
}

// Fail prints err for the command and returns the exit code 1.
func Fail(stderr io.Writer, cmd string, err error) int {
	if _, ok := err.(*APIError); ok {
		fmt.Fprintln(stderr, err)
	} else {
		fmt.Fprintf(stderr, "billfold %s: %v\n", cmd, err)
	}
	return 1
}

func WriteJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return 1
	}
	return 0
}

// SplitList splits a comma-separated list, trimming spaces.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Flags are the flags every command that talks to a server shares:
// --server (the admin listener) and -o (table or json).
type Flags struct {
	Server string
	Output string
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Server, "server", DefaultAdminServer, "the admin listener's URL")
	fs.StringVar(&f.Output, "o", "table", "output: table or json")
}

// Dash is s for a table cell, "-" when it is empty.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// TimeOrDash is t in RFC 3339 for a table cell, "-" when it is nil.
func TimeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
