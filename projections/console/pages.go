package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/projections/rebuild"
)

// overviewView is /ui/'s data.
type overviewView struct {
	Intake      intake
	IntakeError string
	// Projections are each projection's lag and hold; LagError says why
	// the lag could not be read.
	Projections []projectionRow
	LagError    string
	DeadLetters []countRow
	OpenDead    int
	DeadError   string
	States      []countRow
	StatesError string
	Rebuilds    []rebuild.Rebuild
	// RebuildsError says why rebuilds could not be read.
	RebuildsError string
	Problems      []Problem
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	var v overviewView
	var err error
	// Each panel shows its own failure, so one unavailable part does not
	// hide the others.
	if v.Intake, err = c.readIntake(ctx, time.Now()); err != nil {
		v.IntakeError = panelError(c, "overview", err)
	}
	lag, err := c.cfg.Engine.Lag(ctx)
	if err != nil {
		v.LagError = panelError(c, "overview", err)
	}
	v.Projections = c.projectionRows(lag)
	if open, err := c.cfg.Query.OpenDeadLetters(ctx, deadletter.Filter{}, 0); err != nil {
		v.DeadError = panelError(c, "overview", err)
	} else {
		v.OpenDead = open.Total
		v.DeadLetters = deadLetterGroups(open.Groups)
	}
	if counts, err := c.cfg.Query.Counts(ctx); err != nil {
		v.StatesError = panelError(c, "overview", err)
	} else {
		for _, st := range domain.LifecycleStates {
			v.States = append(v.States, countRow{Label: string(st), N: counts[st]})
		}
	}
	// Rebuilds run one at a time, so one in progress is the newest.
	if all, _, err := c.cfg.Rebuilds.ListPage(ctx, rebuildsPerPage, ""); err != nil {
		v.RebuildsError = panelError(c, "overview", err)
	} else {
		for _, rb := range all {
			if !rb.Finished() {
				v.Rebuilds = append(v.Rebuilds, rb)
			}
		}
	}
	if c.cfg.Doctor != nil {
		v.Problems = c.cfg.Doctor(ctx)
	}
	c.render(w, r, s, http.StatusOK, "overview", "overview", "Overview", v)
}

// projectionRow is a projection on the overview: how far behind the
// journal it is, and the operator's hold on it.
type projectionRow struct {
	Name   string
	Behind uint64
	// Paused is the hold, nil while the projection folds.
	Paused *projections.Pause
}

// projectionRows are the engine's projections with their lag (when read)
// and the holds this process follows.
func (c *Console) projectionRows(lag map[string]uint64) []projectionRow {
	holds := map[string]projections.Pause{}
	for _, p := range c.cfg.Engine.Paused() {
		holds[p.Projection] = p
	}
	var rows []projectionRow
	for _, name := range c.cfg.Engine.Projections() {
		row := projectionRow{Name: name, Behind: lag[name]}
		if p, ok := holds[name]; ok {
			row.Paused = &p
		}
		rows = append(rows, row)
	}
	return rows
}

// panelError is what a panel shows of err: its code and the message meant
// for operators; the cause goes to the log.
func panelError(c *Console, page string, err error) string {
	c.log.Warn("console panel unavailable", "page", page, "code", domain.ErrorCode(err), "error", err)
	return string(domain.ErrorCode(err)) + ": " + domain.ErrorMessage(err)
}

// deadLetterGroups are the groups as the pages' count rows.
func deadLetterGroups(groups []query.DeadLetterGroup) []countRow {
	out := make([]countRow, len(groups))
	for i, g := range groups {
		out[i] = countRow{Code: g.Code, Label: g.Projection, N: g.Count}
	}
	return out
}

// maxBodyShown bounds the raw body an event page shows.
const maxBodyShown = 64 << 10

// eventView is /ui/events/{provider}/{id}'s data.
type eventView struct {
	Entry       ledger.EventEntry
	Projections []projectionStatus
	Body        string
	BodyCut     bool
	// Records are those the event writes or names, with whether each
	// lists it; RecordsError says why they could not be read.
	Records      []query.EventRecord
	RecordsError string
}

type projectionStatus struct {
	Name string
	ledger.ProjectionStatus
}

func (c *Console) event(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ns, id := r.PathValue("provider"), r.PathValue("id")
	entry, err := c.cfg.Ledger.Event(ctx, ns, id)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := eventView{Entry: entry}
	for _, name := range c.cfg.Engine.Projections() {
		if st, ok := entry.Projections[name]; ok {
			v.Projections = append(v.Projections, projectionStatus{Name: name, ProjectionStatus: st})
		}
	}
	if entry.Journal != nil {
		env, err := c.cfg.Ledger.JournalEvent(ctx, ns, id)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		if env != nil {
			v.Body, v.BodyCut = showBody(env.Body)
			if v.Records, err = c.cfg.Query.RecordsOf(ctx, env, namedRecords(entry.Journal, env.Body)...); err != nil {
				v.RecordsError = panelError(c, "event", err)
			}
		}
	}
	c.render(w, r, s, http.StatusOK, "event", "deliveries", "Event "+id, v)
}

// showBody indents a JSON body for reading (other bodies as they are) and
// cuts it at maxBodyShown; the template escapes it.
func showBody(body []byte) (string, bool) {
	var b bytes.Buffer
	if json.Indent(&b, body, "", "  ") == nil {
		body = b.Bytes()
	}
	if len(body) > maxBodyShown {
		return string(body[:maxBodyShown]), true
	}
	return string(body), false
}

// namedRecords are the records an event is about besides those it writes:
// its object when that is a customer or subscription, and the customer a
// subscription, invoice or payment event names.
func namedRecords(j *projections.JournalEntry, body []byte) []query.EventRecord {
	ns := domain.Namespace(j.Provider, j.Endpoint)
	var out []query.EventRecord
	switch j.ObjectKind {
	case domain.KindCustomer, domain.KindSubscription:
		out = append(out, query.EventRecord{Kind: j.ObjectKind, Provider: ns, ID: j.ObjectID})
	}
	var ev struct {
		Data struct {
			Object struct {
				Customer json.RawMessage `json:"customer"`
			} `json:"object"`
		} `json:"data"`
	}
	var customer string
	if json.Unmarshal(body, &ev) == nil && json.Unmarshal(ev.Data.Object.Customer, &customer) == nil && customer != "" && j.ObjectKind != domain.KindCustomer {
		out = append(out, query.EventRecord{Kind: domain.KindCustomer, Provider: ns, ID: customer})
	}
	return out
}
