package projections

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/httpapi"
)

// Operations is the admin API of rebuilds, replays, dead letters, verify
// and the event ledger.
type Operations struct {
	Engine   *Engine
	Rebuilds *Rebuilds
	Ledger   *Ledger
	// FoldJobs bounds verify runs (nil: unbounded).
	FoldJobs *FoldJobs
	// Verifications runs verify in the background (POST
	// /v1/verifications), in FoldJobs' slots.
	Verifications *VerifyJobs
}

// Register adds the routes to mux: reads wrapped in read, mutations in
// admin (RequireAdmin).
func (o *Operations) Register(mux Mux, read, admin func(http.Handler) http.Handler) {
	mux.Handle("POST /v1/rebuilds", admin(http.HandlerFunc(o.startRebuild)))
	mux.Handle("GET /v1/rebuilds", read(http.HandlerFunc(o.listRebuilds)))
	mux.Handle("GET /v1/rebuilds/{id}", read(http.HandlerFunc(o.getRebuild)))
	mux.Handle("DELETE /v1/rebuilds/{id}", admin(http.HandlerFunc(o.cancelRebuild)))
	mux.Handle("GET /v1/dead-letters", read(http.HandlerFunc(o.listDeadLetters)))
	mux.Handle("GET /v1/dead-letters/{id}", read(http.HandlerFunc(o.getDeadLetter)))
	mux.Handle("POST /v1/dead-letters/{id}/requeue", admin(http.HandlerFunc(o.requeue)))
	mux.Handle("POST /v1/dead-letters/requeue", admin(http.HandlerFunc(o.requeueWhere)))
	mux.Handle("GET /v1/verify", read(http.HandlerFunc(o.verify)))
	mux.Handle("POST /v1/verifications", read(http.HandlerFunc(o.startVerification)))
	mux.Handle("GET /v1/verifications/{id}", read(http.HandlerFunc(o.getVerification)))
	mux.Handle("GET /v1/events", read(http.HandlerFunc(o.listEvents)))
	mux.Handle("GET /v1/events/{provider}/{event_id}", read(http.HandlerFunc(o.Ledger.ServeEvent)))
	mux.Handle("GET /v1/projections/paused", read(http.HandlerFunc(o.listPaused)))
	mux.Handle("POST /v1/projections/pause", admin(http.HandlerFunc(o.pause)))
	mux.Handle("POST /v1/projections/resume", admin(http.HandlerFunc(o.resume)))
}

// decodeBody reads a JSON request body into v; an empty body leaves v as
// it is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return domain.Errorf(domain.CodeBadRequest, "request body: %v", err)
	}
	return nil
}

func (o *Operations) startRebuild(w http.ResponseWriter, r *http.Request) {
	var req RebuildRequest
	if err := decodeBody(r, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	rb, dry, err := o.Rebuilds.Start(r.Context(), req, httpapi.AdminName(r.Context()))
	switch {
	case err != nil:
		httpapi.WriteError(w, err)
	case dry != nil:
		httpapi.WriteJSON(w, http.StatusOK, dry)
	default:
		w.Header().Set("Location", "/v1/rebuilds/"+rb.ID)
		httpapi.WriteJSON(w, http.StatusAccepted, rb)
	}
}

func (o *Operations) listRebuilds(w http.ResponseWriter, r *http.Request) {
	all, err := o.Rebuilds.List(r.Context())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": all})
}

func (o *Operations) getRebuild(w http.ResponseWriter, r *http.Request) {
	rb, err := o.Rebuilds.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, rb)
}

func (o *Operations) cancelRebuild(w http.ResponseWriter, r *http.Request) {
	rb, err := o.Rebuilds.Cancel(r.Context(), r.PathValue("id"), httpapi.AdminName(r.Context()))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusAccepted, rb)
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

// deadLetterFilter reads a filter from query parameters (projection, code,
// type, provider, status, since).
func deadLetterFilter(get func(string) string) (deadletter.Filter, error) {
	since, err := ParseSince("since", get("since"), time.Now())
	return deadletter.Filter{
		Projection: get("projection"), Code: domain.Code(get("code")), EventType: get("type"),
		Provider: get("provider"), Status: get("status"), Since: since,
	}, err
}

func (o *Operations) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	f, err := deadLetterFilter(r.URL.Query().Get)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	dls, err := o.Engine.DeadLetters(r.Context(), f)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": dls})
}

func (o *Operations) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	dl, _, err := o.Engine.DeadLetter(r.Context(), r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, dl)
}

func (o *Operations) requeue(w http.ResponseWriter, r *http.Request) {
	dl, err := o.Engine.Requeue(r.Context(), r.PathValue("id"), httpapi.AdminName(r.Context()))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, dl)
}

// RequeueWhereRequest is the body of POST /v1/dead-letters/requeue.
type RequeueWhereRequest struct {
	// Where holds filter fields: projection, code, type, provider, since.
	Where  map[string]string `json:"where"`
	DryRun bool              `json:"dry_run,omitempty"`
	Force  bool              `json:"force,omitempty"`
}

// requeueWhereFields are the fields a bulk requeue may filter on.
var requeueWhereFields = []string{"projection", "code", "type", "provider", "since"}

func (o *Operations) requeueWhere(w http.ResponseWriter, r *http.Request) {
	var req RequeueWhereRequest
	if err := decodeBody(r, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if len(req.Where) == 0 {
		httpapi.WriteError(w, domain.Errorf(domain.CodeBadRequest, "where is empty: name at least one of %s", strings.Join(requeueWhereFields, ", ")))
		return
	}
	for k := range req.Where {
		if !slices.Contains(requeueWhereFields, k) {
			httpapi.WriteError(w, domain.Errorf(domain.CodeBadRequest, "where.%s: want one of %s", k, strings.Join(requeueWhereFields, ", ")))
			return
		}
	}
	f, err := deadLetterFilter(func(k string) string { return req.Where[k] })
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	res, err := o.Engine.RequeueWhere(r.Context(), f, httpapi.AdminName(r.Context()), req.DryRun, req.Force)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func (o *Operations) verify(w http.ResponseWriter, r *http.Request) {
	var projs []string
	if p := r.URL.Query().Get("projection"); p != "" && p != "all" {
		projs = strings.Split(p, ",")
	}
	var rep VerifyReport
	err := o.FoldJobs.Run(r.Context(), "verify", func(ctx context.Context) (ferr error) {
		rep, ferr = o.Engine.Verify(ctx, projs)
		return ferr
	})
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, rep)
}

func (o *Operations) listEvents(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	since, err := ParseSince("since", v.Get("since"), time.Now())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	limit := 0
	if v.Get("limit") != "" {
		if limit, err = ParseLimit(v.Get("limit")); err != nil {
			httpapi.WriteError(w, err)
			return
		}
	}
	items, err := o.Ledger.List(r.Context(), EventFilter{Status: v.Get("status"), Provider: v.Get("provider"), Since: since, Limit: limit})
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}
