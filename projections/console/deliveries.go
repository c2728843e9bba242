package console

import (
	"context"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
)

// deliveriesPerPage is how many delivery log entries one page of
// /ui/deliveries reads: the page shows those of them its filter keeps, so
// no page reads more than this, however long the log.
const deliveriesPerPage = 100

// intakeSample is how many of the newest delivery log entries the
// overview reads for the intake rate and refusals.
const intakeSample = 500

// intakeWindow is the longest span the overview's intake figures cover.
const intakeWindow = 15 * time.Minute

// readDeliveries reads at most n delivery log entries before sequence
// before (0: from the newest), newest first, and returns the sequence to
// pass as before for the next older page (0 when none is left).
func (c *Console) readDeliveries(ctx context.Context, before uint64, n int) ([]ledger.DeliveryEntry, uint64, error) {
	page, err := c.deliveryLog.Newest(ctx, before, n)
	return page.Entries, page.Older, err
}

// deliveryFilter is /ui/deliveries' filter.
type deliveryFilter struct {
	Provider, Outcome, Code, Since string
	since                          time.Time
}

func (f deliveryFilter) keep(d *domain.Delivery) bool {
	return (f.Provider == "" || f.Provider == string(d.Provider) || f.Provider == d.Endpoint || f.Provider == d.Namespace()) &&
		(f.Outcome == "" || f.Outcome == string(d.Outcome)) &&
		(f.Code == "" || f.Code == string(d.ReasonCode)) &&
		(f.since.IsZero() || !d.Received.Before(f.since))
}

// deliveriesView is /ui/deliveries' data.
type deliveriesView struct {
	Filter   deliveryFilter
	Rows     []ledger.DeliveryEntry
	Scanned  int
	Older    template.URL // the next page, empty on the last page
	Outcomes []domain.Outcome
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := deliveryFilter{Provider: q.Get("provider"), Outcome: q.Get("outcome"), Code: q.Get("code"), Since: q.Get("since")}
	var err error
	if f.since, err = httpapi.ParseSince("since", f.Since, time.Now()); err != nil {
		c.fail(w, r, s, err)
		return
	}
	if f.Outcome != "" && !domain.Outcome(f.Outcome).Valid() {
		c.fail(w, r, s, domain.Errorf(domain.CodeBadRequest, "outcome %q: want one of %v", f.Outcome, domain.Outcomes))
		return
	}
	var before uint64
	if b := q.Get("before"); b != "" {
		if before, err = strconv.ParseUint(b, 10, 64); err != nil || before == 0 {
			c.fail(w, r, s, domain.Errorf(domain.CodeBadRequest, "before %q: want a position this page gave", b))
			return
		}
	}
	rows, next, err := c.readDeliveries(r.Context(), before, deliveriesPerPage)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	v := deliveriesView{Filter: f, Scanned: len(rows), Outcomes: domain.Outcomes}
	for _, row := range rows {
		if f.keep(&row.Delivery) {
			v.Rows = append(v.Rows, row)
		}
	}
	// Older pages past the since bound hold nothing the filter keeps.
	if next > 0 && (f.since.IsZero() || len(rows) == 0 || !rows[len(rows)-1].Received.Before(f.since)) {
		older := q
		older.Set("before", strconv.FormatUint(next, 10))
		v.Older = template.URL("/ui/deliveries?" + older.Encode())
	}
	c.render(w, r, s, http.StatusOK, "deliveries", "deliveries", "Deliveries", v)
}

// intake is the overview's summary of the newest deliveries.
type intake struct {
	Deliveries int
	Window     time.Duration
	PerMinute  float64
	Accepted   int
	Refusals   []countRow
}

// countRow is a label and how many.
type countRow struct {
	Label string
	Code  domain.Code
	N     int
}

// readIntake sums the newest deliveries of the last intakeWindow, at most
// intakeSample of them.
func (c *Console) readIntake(ctx context.Context, now time.Time) (intake, error) {
	rows, _, err := c.readDeliveries(ctx, 0, intakeSample)
	if err != nil {
		return intake{}, err
	}
	in := intake{Window: intakeWindow}
	from := now.Add(-intakeWindow)
	refusals := map[string]*countRow{}
	var oldest time.Time
	for _, row := range rows {
		if row.Received.Before(from) {
			break
		}
		oldest = row.Received
		in.Deliveries++
		switch row.Outcome {
		case domain.OutcomeAccepted, domain.OutcomeDuplicate, domain.OutcomeIgnored:
			in.Accepted++
		default:
			label := string(row.Outcome)
			if refusals[label+string(row.ReasonCode)] == nil {
				refusals[label+string(row.ReasonCode)] = &countRow{Label: label, Code: row.ReasonCode}
			}
			refusals[label+string(row.ReasonCode)].N++
		}
	}
	// With more deliveries in the window than the sample, the rate is over
	// the span the sample covers.
	if in.Deliveries == intakeSample {
		in.Window = now.Sub(oldest)
	}
	if minutes := in.Window.Minutes(); minutes > 0 {
		in.PerMinute = float64(in.Deliveries) / minutes
	}
	for _, r := range refusals {
		in.Refusals = append(in.Refusals, *r)
	}
	slices.SortFunc(in.Refusals, func(a, b countRow) int { return b.N - a.N })
	return in, nil
}
