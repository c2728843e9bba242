package admin

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/rebuild"
)

// Operations is the admin API of rebuilds, replays, dead letters, verify
// and the event ledger.
type Operations struct {
	Engine   *projections.Engine
	Rebuilds *rebuild.Rebuilds
	Ledger   *ledger.Ledger
	// FoldJobs bounds verify runs (nil: unbounded).
	FoldJobs *projections.FoldJobs
	// Verifications runs verify in the background (POST
	// /v1/verifications), in FoldJobs' slots.
	Verifications *rebuild.VerifyJobs
}

// Register adds the routes to mux: reads wrapped in read, mutations in
// admin (RequireAdmin).
func (o *Operations) Register(mux httpapi.Mux, read, admin func(http.Handler) http.Handler) {
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

func (o *Operations) startRebuild(w http.ResponseWriter, r *http.Request) {
	var req rebuild.RebuildRequest
	if err := httpapi.DecodeBody(r, &req); err != nil {
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

// deadLetterFilter reads a filter from query parameters (projection, code,
// type, provider, status, since).
func deadLetterFilter(get func(string) string) (deadletter.Filter, error) {
	since, err := httpapi.ParseSince("since", get("since"), time.Now())
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
	if err := httpapi.DecodeBody(r, &req); err != nil {
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
	var rep rebuild.VerifyReport
	err := o.FoldJobs.Run(r.Context(), "verify", func(ctx context.Context) (ferr error) {
		rep, ferr = rebuild.Verify(ctx, o.Engine, projs)
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
	since, err := httpapi.ParseSince("since", v.Get("since"), time.Now())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	limit := 0
	if v.Get("limit") != "" {
		if limit, err = httpapi.ParseLimit(v.Get("limit")); err != nil {
			httpapi.WriteError(w, err)
			return
		}
	}
	items, err := o.Ledger.List(r.Context(), ledger.EventFilter{Status: v.Get("status"), Provider: v.Get("provider"), Since: since, Limit: limit})
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

// PauseRequest is the body of a pause or resume: the projections, none
// meaning all.
type PauseRequest struct {
	Projections []string `json:"projections"`
}

func (o *Operations) pause(w http.ResponseWriter, r *http.Request) {
	o.hold(w, r, func(ctx context.Context, names []string) ([]projections.Pause, error) {
		return o.Engine.Pause(ctx, names, httpapi.AdminName(ctx))
	})
}

func (o *Operations) resume(w http.ResponseWriter, r *http.Request) {
	o.hold(w, r, o.Engine.Resume)
}

func (o *Operations) hold(w http.ResponseWriter, r *http.Request, change func(context.Context, []string) ([]projections.Pause, error)) {
	var req PauseRequest
	if err := httpapi.DecodeBody(r, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	paused, err := change(r.Context(), req.Projections)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"paused": paused})
}

func (o *Operations) listPaused(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"paused": o.Engine.Paused()})
}

func (o *Operations) startVerification(w http.ResponseWriter, r *http.Request) {
	var projs []string
	if p := r.URL.Query().Get("projection"); p != "" && p != "all" {
		projs = strings.Split(p, ",")
	}
	job, err := o.Verifications.Start(projs)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/verifications/"+job.ID)
	httpapi.WriteJSON(w, http.StatusAccepted, job)
}

func (o *Operations) getVerification(w http.ResponseWriter, r *http.Request) {
	job, err := o.Verifications.Get(r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, job)
}
