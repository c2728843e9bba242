package console

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/rebuild"
)

// maxDeadLettersShown bounds the dead letters a page lists (and reads);
// the groups count all of them from the query's dead-letter index.
const maxDeadLettersShown = 200

// deadLetterFields are the filter fields of /ui/dead-letters and of a
// bulk requeue, as the API takes them.
var deadLetterFields = []string{"projection", "code", "type", "provider"}

// deadLettersView is /ui/dead-letters' data.
type deadLettersView struct {
	Filter   map[string]string
	Groups   []countRow
	Items    []deadletter.Letter
	Total    int
	Shown    int
	Filtered bool
	// DryRun is set on the confirmation page of a bulk requeue.
	DryRun *projections.RequeueResult
	// Result is set after a requeue.
	Result *projections.RequeueResult
}

// readDeadLetterFilter reads the filter fields from get.
func readDeadLetterFilter(get func(string) string) (map[string]string, deadletter.Filter) {
	m := map[string]string{}
	for _, k := range deadLetterFields {
		if v := strings.TrimSpace(get(k)); v != "" {
			m[k] = v
		}
	}
	return m, deadletter.Filter{Projection: m["projection"], Code: domain.Code(m["code"]), EventType: m["type"],
		Provider: m["provider"], Status: deadletter.Open}
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	m, f := readDeadLetterFilter(r.URL.Query().Get)
	c.showDeadLetters(w, r, s, http.StatusOK, m, f, nil, nil)
}

func (c *Console) showDeadLetters(w http.ResponseWriter, r *http.Request, s *session, status int, m map[string]string,
	f deadletter.Filter, dry, result *projections.RequeueResult) {
	open, err := c.cfg.Query.OpenDeadLetters(r.Context(), f, maxDeadLettersShown)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := deadLettersView{Filter: m, Groups: deadLetterGroups(open.Groups), Total: open.Total, Filtered: len(m) > 0, DryRun: dry, Result: result,
		Items: open.Items, Shown: open.Matched}
	c.render(w, r, s, status, "deadletters", "dead-letters", "Dead letters", v)
}

// requeueWhere is a bulk requeue: without confirm it is the dry run,
// which lists what would be requeued and asks to confirm.
func (c *Console) requeueWhere(w http.ResponseWriter, r *http.Request, s *session) {
	m, f := readDeadLetterFilter(r.PostFormValue)
	if len(m) == 0 {
		c.fail(w, r, s, domain.Errorf(domain.CodeBadRequest, "choose a group or a filter first: a requeue names at least one of %s", strings.Join(deadLetterFields, ", ")))
		return
	}
	confirm := r.PostFormValue("confirm") == "yes"
	// The operator saw the list in the dry run, so confirming is the
	// explicit decision the API's force stands for.
	res, err := c.cfg.Engine.RequeueWhere(r.Context(), f, s.admin, !confirm, confirm)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if !confirm {
		if len(res.Items) > maxDeadLettersShown {
			res.Items = res.Items[:maxDeadLettersShown]
		}
		c.showDeadLetters(w, r, s, http.StatusOK, m, f, &res, nil)
		return
	}
	c.log.Info("console requeue", "by", s.admin, "where", m, "matched", res.Matched, "applied", res.Applied, "failed", res.Failed)
	c.showDeadLetters(w, r, s, http.StatusOK, m, f, nil, &res)
}

// requeueOne requeues one dead letter and returns to its event.
func (c *Console) requeueOne(w http.ResponseWriter, r *http.Request, s *session) {
	dl, err := c.cfg.Engine.Requeue(r.Context(), r.PathValue("id"), s.admin)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.log.Info("console requeue", "by", s.admin, "dead_letter", dl.ID, "status", dl.Status)
	http.Redirect(w, r, eventURL(dl.Namespace, dl.EventID), http.StatusSeeOther)
}

// rebuildsView is /ui/rebuilds' data.
type rebuildsView struct {
	Rebuilds    []rebuild.Rebuild
	Projections []string
	// Form is the submitted form, kept for the confirmation page.
	Form   url.Values
	DryRun *rebuild.DryRun
	// Paused are the operator's holds: a rebuild folds a paused
	// projection too, and its live projector stays held after the switch.
	Paused []projections.Pause
	// Older is the next page of the list; First the first, when this is
	// a later one.
	Older, First template.URL
}

// rebuildsPerPage bounds the rebuilds a page lists (and the overview
// looks through for those in progress).
const rebuildsPerPage = 50

func (c *Console) rebuilds(w http.ResponseWriter, r *http.Request, s *session) {
	c.showRebuilds(w, r, s, nil, nil)
}

func (c *Console) showRebuilds(w http.ResponseWriter, r *http.Request, s *session, form url.Values, dry *rebuild.DryRun) {
	after := r.URL.Query().Get("after")
	page, next, err := c.cfg.Rebuilds.ListPage(r.Context(), rebuildsPerPage, after)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if form == nil {
		form = url.Values{}
	}
	v := rebuildsView{Rebuilds: page, Projections: c.cfg.Engine.Projections(), Form: form, DryRun: dry, Paused: c.cfg.Engine.Paused()}
	if next != "" {
		v.Older = link("/ui/rebuilds", "after", next)
	}
	if after != "" {
		v.First = link("/ui/rebuilds")
	}
	c.render(w, r, s, http.StatusOK, "rebuilds", "rebuilds", "Rebuilds and replays", v)
}

// rebuildRequest reads the start form.
func rebuildRequest(form url.Values) (rebuild.RebuildRequest, error) {
	req := rebuild.RebuildRequest{Projections: form["projection"], Republish: form.Get("republish") == "yes"}
	f := &req.Filter
	for _, t := range strings.Split(form.Get("types"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			f.Types = append(f.Types, t)
		}
	}
	f.Provider, f.EventID = strings.TrimSpace(form.Get("provider")), strings.TrimSpace(form.Get("event_id"))
	var err error
	now := time.Now()
	if f.Since, err = httpapi.ParseSince("since", strings.TrimSpace(form.Get("since")), now); err != nil {
		return req, err
	}
	if f.Until, err = httpapi.ParseSince("until", strings.TrimSpace(form.Get("until")), now); err != nil {
		return req, err
	}
	return req, nil
}

// startRebuild: without confirm it is the dry run, which shows how many
// events it would reprocess and asks to confirm.
func (c *Console) startRebuild(w http.ResponseWriter, r *http.Request, s *session) {
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, s, domain.Errorf(domain.CodeBadRequest, "form: %v", err))
		return
	}
	req, err := rebuildRequest(r.PostForm)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	confirm := r.PostForm.Get("confirm") == "yes"
	req.DryRun, req.Force = !confirm, confirm
	rb, dry, err := c.cfg.Rebuilds.Start(r.Context(), req, s.admin)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if dry != nil {
		form := url.Values{}
		for k, v := range r.PostForm {
			if k != "csrf" && k != "confirm" {
				form[k] = v
			}
		}
		c.showRebuilds(w, r, s, form, dry)
		return
	}
	c.log.Info("console rebuild started", "by", s.admin, "rebuild", rb.ID, "kind", rb.Kind, "projections", rb.Projections)
	http.Redirect(w, r, "/ui/rebuilds/"+url.PathEscape(rb.ID), http.StatusSeeOther)
}

func (c *Console) cancelRebuild(w http.ResponseWriter, r *http.Request, s *session) {
	rb, err := c.cfg.Rebuilds.Cancel(r.Context(), r.PathValue("id"), s.admin)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.log.Info("console rebuild cancel", "by", s.admin, "rebuild", rb.ID)
	http.Redirect(w, r, "/ui/rebuilds/"+url.PathEscape(rb.ID), http.StatusSeeOther)
}

func (c *Console) rebuild(w http.ResponseWriter, r *http.Request, s *session) {
	rb, err := c.cfg.Rebuilds.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, s, http.StatusOK, "rebuild", "rebuilds", "Rebuild "+rb.ID, rb)
}

// rebuildProgress is the rebuild as JSON, for the page's script to follow.
func (c *Console) rebuildProgress(w http.ResponseWriter, r *http.Request, _ *session) {
	rb, err := c.cfg.Rebuilds.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, rb)
}

// pauseProjection holds a projection's projectors in every billfold
// process, as POST /v1/projections/pause does; resumeProjection lifts the hold.
func (c *Console) pauseProjection(w http.ResponseWriter, r *http.Request, s *session) {
	c.hold(w, r, s, "pause", func(names []string) error {
		_, err := c.cfg.Engine.Pause(r.Context(), names, s.admin)
		return err
	})
}

func (c *Console) resumeProjection(w http.ResponseWriter, r *http.Request, s *session) {
	c.hold(w, r, s, "resume", func(names []string) error {
		_, err := c.cfg.Engine.Resume(r.Context(), names)
		return err
	})
}

func (c *Console) hold(w http.ResponseWriter, r *http.Request, s *session, action string, change func([]string) error) {
	name := r.PathValue("name")
	if err := change([]string{name}); err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.log.Info("console "+action, "by", s.admin, "projection", name)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}
