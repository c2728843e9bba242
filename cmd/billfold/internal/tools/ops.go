package tools

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/admin"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/rebuild"
)

// The operator commands: replay (rebuilds and bounded replays), dlq,
// verify and events. Each talks to the admin listener; mutations send
// BILLFOLD_ADMIN_TOKEN, reads BILLFOLD_API_TOKEN.

// confirm asks a yes/no question on a terminal; elsewhere it answers no.
func confirm(stdin *os.File, stderr io.Writer, question string) bool {
	if !cli.IsTerminal(stdin) {
		return false
	}
	fmt.Fprint(stderr, question+" [y/N] ")
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	return strings.EqualFold(strings.TrimSpace(line), "y") || strings.EqualFold(strings.TrimSpace(line), "yes")
}

// ---------------------------------------------------------------------------
// billfold replay

// Replay is `billfold replay` with its arguments; it returns the exit code.
func Replay(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	var projs, types, provider, since, until, event string
	var dryRun, yes, republish, detach bool
	fs := cli.NewFlagSet("replay", stderr)
	f.Register(fs)
	fs.StringVar(&projs, "projection", "all", "customers, subscriptions, orders, wallets or all (comma-separated)")
	fs.StringVar(&types, "type", "", "replay only events of these types (comma-separated)")
	fs.StringVar(&provider, "provider", "", "replay only events of this provider (or endpoint)")
	fs.StringVar(&since, "since", "", "replay only events the provider created at or after this time (RFC 3339 or a duration back, such as 24h)")
	fs.StringVar(&until, "until", "", "replay only events the provider created before this time")
	fs.StringVar(&event, "event", "", "replay only this event id")
	fs.BoolVar(&dryRun, "dry-run", false, "print what would be reprocessed and change nothing")
	fs.BoolVar(&yes, "yes", false, "confirm a rebuild or replay of more than 10,000 events")
	fs.BoolVar(&republish, "republish", false, "rebuild: publish every record to the change feed again")
	fs.BoolVar(&detach, "detach", false, "start it and print its id, without waiting")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: billfold replay [--projection P] [--type T] [--provider P] [--since T] [--until T] [--event ID] [--dry-run] [--yes] [--republish] [flags]
       billfold replay list | status <id> | cancel <id>

Without a filter, replay rebuilds the projections from the whole journal into
a new generation and switches to it; with one, it re-applies the matching
events to the current generation (docs/replay.md).`)
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		return replaySub(pos, f, stdout, stderr, fs.Usage)
	}
	req := rebuild.RebuildRequest{Projections: cli.SplitList(projs), Republish: republish, DryRun: dryRun, Force: yes,
		Filter: rebuild.ReplayFilter{Types: cli.SplitList(types), Provider: provider, EventID: event}}
	if req.Filter.Since, err = httpapi.ParseSince("--since", since, time.Now()); err != nil {
		fmt.Fprintln(stderr, "billfold replay:", err)
		return 2
	}
	if req.Filter.Until, err = httpapi.ParseSince("--until", until, time.Now()); err != nil {
		fmt.Fprintln(stderr, "billfold replay:", err)
		return 2
	}
	if dryRun {
		var dry rebuild.DryRun
		if err := cli.AdminJSON(f.Server, http.MethodPost, "/v1/rebuilds", nil, req, &dry); err != nil {
			return cli.Fail(stderr, "replay", err)
		}
		if f.Output == "json" {
			return cli.WriteJSON(stdout, dry)
		}
		fmt.Fprintf(stdout, "%s of %s would reprocess %d events", dry.Kind, strings.Join(dry.Projections, ", "), dry.Events)
		if dry.NeedsForce {
			fmt.Fprint(stdout, " (over 10,000: needs --yes)")
		}
		fmt.Fprintln(stdout)
		if len(dry.Sample) > 0 {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tPROVIDER\tEVENT\tTYPE\tCREATED")
			for _, e := range dry.Sample {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Sequence, e.Provider, e.EventID, e.EventType, e.Created.Format(time.RFC3339))
			}
			_ = tw.Flush()
		}
		return 0
	}
	var rb rebuild.Rebuild
	err = cli.AdminJSON(f.Server, http.MethodPost, "/v1/rebuilds", nil, req, &rb)
	if cli.ErrorCode(err) == domain.CodeConfirmRequired && confirm(os.Stdin, stderr, err.Error()+"\nGo ahead?") {
		req.Force = true
		err = cli.AdminJSON(f.Server, http.MethodPost, "/v1/rebuilds", nil, req, &rb)
	}
	if err != nil {
		return cli.Fail(stderr, "replay", err)
	}
	fmt.Fprintf(stderr, "%s %s started (folding %d journal events)\n", rb.Kind, rb.ID, rb.JournalHead)
	if detach {
		if f.Output == "json" {
			return cli.WriteJSON(stdout, rb)
		}
		fmt.Fprintln(stdout, rb.ID)
		return 0
	}
	return followRebuild(f, rb, stdout, stderr)
}

// followRebuild shows a rebuild's progress until it ends; Ctrl-C cancels
// it.
func followRebuild(f cli.Flags, rb rebuild.Rebuild, stdout, stderr io.Writer) int {
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	defer signal.Stop(interrupt)
	bar := cli.NewBar(int(max(rb.JournalHead, 1)), rb.Kind, stderr)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for !rb.Finished() {
		select {
		case <-interrupt:
			fmt.Fprintln(stderr, "\ncancelling", rb.ID)
			if _, err := cli.AdminCall(f.Server, http.MethodDelete, "/v1/rebuilds/"+url.PathEscape(rb.ID), nil, nil); err != nil {
				return cli.Fail(stderr, "replay", err)
			}
		case <-tick.C:
		}
		if err := cli.AdminJSON(f.Server, http.MethodGet, "/v1/rebuilds/"+url.PathEscape(rb.ID), nil, nil, &rb); err != nil {
			return cli.Fail(stderr, "replay", err)
		}
		_ = bar.Set(int(min(rb.Folded, rb.JournalHead)))
	}
	_ = bar.Finish()
	if f.Output == "json" {
		cli.WriteJSON(stdout, rb)
	} else {
		printRebuilds(stdout, []rebuild.Rebuild{rb})
	}
	if rb.Status != rebuild.RebuildDone {
		fmt.Fprintf(stderr, "billfold replay: %s %s: %s %s\n", rb.ID, rb.Status, rb.Code, rb.Error)
		return 1
	}
	return 0
}

func replaySub(pos []string, f cli.Flags, stdout, stderr io.Writer, usage func()) int {
	switch {
	case pos[0] == "list" && len(pos) == 1:
		var all struct{ Items []rebuild.Rebuild }
		if err := cli.AdminJSON(f.Server, http.MethodGet, "/v1/rebuilds", nil, nil, &all); err != nil {
			return cli.Fail(stderr, "replay", err)
		}
		if f.Output == "json" {
			return cli.WriteJSON(stdout, all.Items)
		}
		printRebuilds(stdout, all.Items)
		return 0
	case pos[0] == "status" && len(pos) == 2:
		var rb rebuild.Rebuild
		if err := cli.AdminJSON(f.Server, http.MethodGet, "/v1/rebuilds/"+url.PathEscape(pos[1]), nil, nil, &rb); err != nil {
			return cli.Fail(stderr, "replay", err)
		}
		if f.Output == "json" {
			return cli.WriteJSON(stdout, rb)
		}
		printRebuilds(stdout, []rebuild.Rebuild{rb})
		return 0
	case pos[0] == "cancel" && len(pos) == 2:
		var rb rebuild.Rebuild
		if err := cli.AdminJSON(f.Server, http.MethodDelete, "/v1/rebuilds/"+url.PathEscape(pos[1]), nil, nil, &rb); err != nil {
			return cli.Fail(stderr, "replay", err)
		}
		fmt.Fprintln(stderr, "cancel requested for", rb.ID)
		return 0
	}
	usage()
	return 2
}

func printRebuilds(w io.Writer, all []rebuild.Rebuild) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tPROJECTIONS\tSTATUS\tFOLDED\tHEAD\tRATE/S\tRECORDS\tDLQ RESOLVED\tBY\tCREATED\tERROR")
	for _, rb := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.0f\t%d\t%d\t%s\t%s\t%s\n", rb.ID, rb.Kind, strings.Join(rb.Projections, ","), rb.Status,
			rb.Folded, rb.JournalHead, rb.RatePerSecond, rb.Records, rb.DeadLettersResolved, cli.Dash(rb.RequestedBy),
			rb.CreatedAt.Format(time.RFC3339), cli.Dash(strings.TrimSpace(string(rb.Code)+" "+rb.Error)))
	}
	_ = tw.Flush()
}

// ---------------------------------------------------------------------------
// billfold dlq

// DLQ is `billfold dlq` with its arguments; it returns the exit code.
func DLQ(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	var projection, code, typ, provider, status, since, where string
	var dryRun, yes bool
	fs := cli.NewFlagSet("dlq", stderr)
	f.Register(fs)
	fs.StringVar(&projection, "projection", "", "list: only this projection")
	fs.StringVar(&code, "code", "", "list: only this error code")
	fs.StringVar(&typ, "type", "", "list: only this event type")
	fs.StringVar(&provider, "provider", "", "list: only this provider")
	fs.StringVar(&status, "status", "open", "list: open, resolved or all")
	fs.StringVar(&since, "since", "", "list: only those that failed since (RFC 3339 or a duration such as 1h)")
	fs.StringVar(&where, "where", "", "requeue: every open dead letter matching type=...,code=...,projection=...,provider=...,since=...")
	fs.BoolVar(&dryRun, "dry-run", false, "requeue --where: list what would be requeued")
	fs.BoolVar(&yes, "yes", false, "requeue --where: go ahead")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: billfold dlq list [--projection P] [--code C] [--type T] [--status open|resolved|all] [--since 1h]
       billfold dlq show <id>
       billfold dlq requeue <id>
       billfold dlq requeue --where type=...,code=...,since=... [--dry-run] [--yes]`)
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	switch {
	case len(pos) == 1 && pos[0] == "list":
		v := url.Values{}
		for k, s := range map[string]string{"projection": projection, "code": code, "type": typ, "provider": provider, "status": status, "since": since} {
			if s != "" {
				v.Set(k, s)
			}
		}
		var list struct{ Items []deadletter.Letter }
		if err := cli.AdminJSON(f.Server, http.MethodGet, "/v1/dead-letters", v, nil, &list); err != nil {
			return cli.Fail(stderr, "dlq", err)
		}
		if f.Output == "json" {
			return cli.WriteJSON(stdout, list.Items)
		}
		printDeadLetters(stdout, list.Items)
		return 0
	case len(pos) == 2 && pos[0] == "show":
		var dl deadletter.Letter
		if err := cli.AdminJSON(f.Server, http.MethodGet, "/v1/dead-letters/"+url.PathEscape(pos[1]), nil, nil, &dl); err != nil {
			return cli.Fail(stderr, "dlq", err)
		}
		if f.Output == "json" {
			return cli.WriteJSON(stdout, dl)
		}
		printDeadLetter(stdout, dl)
		return 0
	case len(pos) == 2 && pos[0] == "requeue" && where == "":
		var dl deadletter.Letter
		if err := cli.AdminJSON(f.Server, http.MethodPost, "/v1/dead-letters/"+url.PathEscape(pos[1])+"/requeue", nil, nil, &dl); err != nil {
			return cli.Fail(stderr, "dlq", err)
		}
		if f.Output == "json" {
			cli.WriteJSON(stdout, dl)
		} else {
			printDeadLetter(stdout, dl)
		}
		if dl.Status != deadletter.Resolved {
			fmt.Fprintf(stderr, "billfold dlq: %s failed again (%s); it stays a dead letter\n", dl.ID, dl.Code)
			return 1
		}
		return 0
	case len(pos) == 1 && pos[0] == "requeue" && where != "":
		return requeueWhere(f, where, dryRun, yes, stdout, stderr)
	}
	fs.Usage()
	return 2
}

func requeueWhere(f cli.Flags, where string, dryRun, yes bool, stdout, stderr io.Writer) int {
	req := admin.RequeueWhereRequest{Where: map[string]string{}, DryRun: dryRun || !yes, Force: yes}
	for _, kv := range cli.SplitList(where) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "billfold dlq: --where %q: want key=value pairs\n", where)
			return 2
		}
		req.Where[k] = v
	}
	var res projections.RequeueResult
	if err := cli.AdminJSON(f.Server, http.MethodPost, "/v1/dead-letters/requeue", nil, req, &res); err != nil {
		return cli.Fail(stderr, "dlq", err)
	}
	if f.Output == "json" {
		cli.WriteJSON(stdout, res)
	} else {
		printDeadLetters(stdout, res.Items)
	}
	switch {
	case res.DryRun && !dryRun:
		fmt.Fprintf(stderr, "%d dead letters match; nothing requeued: add --yes to requeue them\n", res.Matched)
		return 1
	case res.DryRun:
		fmt.Fprintf(stderr, "%d dead letters would be requeued\n", res.Matched)
	default:
		fmt.Fprintf(stderr, "%d requeued: %d applied, %d failed again\n", res.Matched, res.Applied, res.Failed)
		if res.Failed > 0 {
			return 1
		}
	}
	return 0
}

func printDeadLetters(w io.Writer, dls []deadletter.Letter) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROJECTION\tPROVIDER\tEVENT\tTYPE\tCODE\tATTEMPTS\tSTATUS\tRETRY\tFAILED AT")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", dl.ID, dl.Projection, dl.Namespace, dl.EventID, dl.EventType,
			dl.Code, dl.Attempts, dl.Status, cli.Dash(dl.RetryState), dl.FailedAt.Format(time.RFC3339))
	}
	_ = tw.Flush()
}

func printDeadLetter(w io.Writer, dl deadletter.Letter) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"id", dl.ID}, {"projection", dl.Projection}, {"provider", dl.Namespace}, {"event", dl.EventID}, {"type", dl.EventType},
		{"journal sequence", fmt.Sprint(dl.JournalSequence)}, {"status", dl.Status}, {"class", dl.Class}, {"code", string(dl.Code)},
		{"message", dl.Message}, {"attempts", fmt.Sprint(dl.Attempts)}, {"retry state", cli.Dash(dl.RetryState)}, {"scheduled retries", fmt.Sprint(dl.Retries)}, {"next retry", nextRetry(dl)},
		{"provider request id", cli.Dash(dl.ProviderRequestID)}, {"failed at", dl.FailedAt.Format(time.RFC3339)},
		{"resolved by", cli.Dash(dl.ResolvedBy)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	for _, rq := range dl.Requeues {
		fmt.Fprintf(tw, "requeue:\t%s by %s: %s %s\n", rq.At.Format(time.RFC3339), rq.By, rq.Outcome, rq.Code)
	}
	_ = tw.Flush()
}

// ---------------------------------------------------------------------------
// billfold verify

// Verify is `billfold verify` with its arguments; it returns the exit code.
func Verify(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	var projection string
	fs := cli.NewFlagSet("verify", stderr)
	f.Register(fs)
	fs.StringVar(&projection, "projection", "all", "customers, subscriptions, orders, wallets or all (comma-separated)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold verify [--projection P] [flags]\n\nFolds the journal afresh (a job on the server, followed to its end) and compares\nevery record with the live projections;\nexits 0 when they are identical, 1 when any record differs.")
		fs.PrintDefaults()
	}
	if pos, err := cli.ParseInterleaved(fs, args); err != nil || len(pos) > 0 {
		fs.Usage()
		return 2
	}
	rep, err := runVerification(f.Server, projection, stderr)
	if err != nil {
		return cli.Fail(stderr, "verify", err)
	}
	if f.Output == "json" {
		cli.WriteJSON(stdout, rep)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROJECTION\tGENERATION\tRECORDS\tDIFFERENCES\tMOVED")
		for _, name := range slices.Sorted(maps.Keys(rep.Projections)) {
			p := rep.Projections[name]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", name, p.Generation, p.Records, p.Differences, p.Moved)
		}
		_ = tw.Flush()
		for _, d := range rep.Differences {
			fmt.Fprintf(stdout, "\n%s %s: %s\n", d.Projection, d.Key, d.Kind)
			for _, fd := range d.Fields {
				fmt.Fprintf(stdout, "  %s\n    live:     %s\n    expected: %s\n", fd.Path, fd.Live, fd.Expected)
			}
		}
	}
	if !rep.Identical {
		fmt.Fprintf(stderr, "%s: live projections differ from the journal (journal head %d)\n", domain.CodeVerifyMismatch, rep.JournalHead)
		return 1
	}
	fmt.Fprintf(stderr, "identical to a clean fold of the journal up to sequence %d\n", rep.JournalHead)
	return 0
}

// runVerification starts a verification job (a read: it sends the API
// token) and follows it to its end with a progress bar on a terminal, so
// a journal too large to fold within one request is verified all the same.
func runVerification(server, projection string, stderr io.Writer) (rebuild.VerifyReport, error) {
	b, err := cli.AdminRequest(server, os.Getenv("BILLFOLD_API_TOKEN"), http.MethodPost, "/v1/verifications", url.Values{"projection": {projection}}, nil)
	var job rebuild.VerifyJob
	if err == nil {
		err = json.Unmarshal(b, &job)
	}
	if err != nil {
		return rebuild.VerifyReport{}, err
	}
	var bar *progressbar.ProgressBar
	for job.Status == rebuild.VerifyRunning {
		time.Sleep(200 * time.Millisecond)
		if err := cli.AdminJSON(server, http.MethodGet, "/v1/verifications/"+job.ID, nil, nil, &job); err != nil {
			return rebuild.VerifyReport{}, err
		}
		if bar == nil && job.JournalHead > 0 {
			bar = cli.NewBar(int(job.JournalHead), "verify: folding the journal", stderr)
		}
		if bar != nil {
			_ = bar.Set64(int64(job.Folded))
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if job.Status != rebuild.VerifyDone || job.Report == nil {
		return rebuild.VerifyReport{}, &cli.APIError{Status: http.StatusOK, Body: httpapi.APIError{Error: "failed", Code: job.Code, Message: job.Message}}
	}
	return *job.Report, nil
}

// ---------------------------------------------------------------------------
// billfold events

// Events is `billfold events` with its arguments; it returns the exit code.
func Events(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	var status, since, provider string
	var limit int
	fs := cli.NewFlagSet("events", stderr)
	f.Register(fs)
	fs.StringVar(&status, "status", "", "list: failed (open dead letters) or a delivery outcome (accepted, duplicate, rejected, ...)")
	fs.StringVar(&since, "since", "1h", "list: since (RFC 3339 or a duration back, such as 1h)")
	fs.StringVar(&provider, "provider", "", "list: only this provider (or endpoint)")
	fs.IntVar(&limit, "limit", httpapi.DefaultListLimit, "list: at most this many, newest first")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold events show <provider> <event_id> [flags]\n       billfold events list [--status failed|accepted|rejected|...] [--since 1h] [--provider P] [flags]")
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	switch {
	case len(pos) == 3 && pos[0] == "show":
		var e ledger.EventEntry
		if err := cli.AdminJSON(f.Server, http.MethodGet, "/v1/events/"+url.PathEscape(pos[1])+"/"+url.PathEscape(pos[2]), nil, nil, &e); err != nil {
			return cli.Fail(stderr, "events", err)
		}
		if f.Output == "json" {
			return cli.WriteJSON(stdout, e)
		}
		printEvent(stdout, e)
		return 0
	case len(pos) == 1 && pos[0] == "list":
		v := url.Values{"since": {since}, "limit": {fmt.Sprint(limit)}}
		if status != "" {
			v.Set("status", status)
		}
		if provider != "" {
			v.Set("provider", provider)
		}
		var list struct{ Items []ledger.EventSummary }
		if err := cli.AdminJSON(f.Server, http.MethodGet, "/v1/events", v, nil, &list); err != nil {
			return cli.Fail(stderr, "events", err)
		}
		if f.Output == "json" {
			return cli.WriteJSON(stdout, list.Items)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AT\tPROVIDER\tEVENT\tTYPE\tSTATUS\tCODE\tPROJECTION\tATTEMPT\tRETRY\tPROVIDER REQUEST")
		for _, e := range list.Items {
			attempt := "-" // a delivery's attempt is numbered by the event's ledger (billfold events show)
			if e.Attempt > 0 {
				attempt = strconv.Itoa(e.Attempt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Provider, cli.Dash(e.EventID), cli.Dash(e.EventType),
				e.Status, cli.Dash(string(e.Code)), cli.Dash(e.Projection), attempt, cli.Dash(e.RetryState), cli.Dash(e.ProviderRequestID))
		}
		_ = tw.Flush()
		return 0
	}
	fs.Usage()
	return 2
}

func printEvent(w io.Writer, e ledger.EventEntry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "event:\t%s/%s\n", e.Namespace, e.EventID)
	if j := e.Journal; j != nil {
		fmt.Fprintf(tw, "journal:\tsequence %d, %s, created %s, received %s, %s\n", j.Sequence, j.EventType,
			j.Created.Format(time.RFC3339), j.Received.Format(time.RFC3339), j.Verification)
		fmt.Fprintf(tw, "provider request:\t%s\n", cli.Dash(j.ProviderRequestID))
		if j.Account != "" {
			fmt.Fprintf(tw, "account:\t%s\n", j.Account)
		}
	} else {
		fmt.Fprintf(tw, "journal:\tnot journaled\n")
	}
	fmt.Fprintf(tw, "deliveries:\t%d (%d duplicates), last %s\n", e.Deliveries.Count, e.Deliveries.Duplicates, cli.Dash(string(e.Deliveries.LastOutcome)))
	for _, d := range e.Deliveries.Deliveries {
		fmt.Fprintf(tw, "  delivery:\t%s attempt %d: %s %d %s\n", d.Received.Format(time.RFC3339), d.Attempt, d.Outcome, d.Status, d.ReasonCode)
	}
	for _, name := range slices.Sorted(maps.Keys(e.Projections)) {
		st := e.Projections[name]
		status := st.Status
		if st.ProcessedAt != nil {
			status += " at " + st.ProcessedAt.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(tw, "%s:\t%s\n", name, status)
		if dl := st.DeadLetter; dl != nil {
			fmt.Fprintf(tw, "  dead letter:\t%s %s %s, %d attempts, retries %s\n", dl.ID, dl.Status, dl.Code, dl.Attempts, cli.Dash(dl.RetryState))
			for _, rq := range dl.Requeues {
				fmt.Fprintf(tw, "  requeue:\t%s by %s: %s\n", rq.At.Format(time.RFC3339), rq.By, rq.Outcome)
			}
		}
	}
	_ = tw.Flush()
}

// nextRetry is when a retrying dead letter's next scheduled retry is due.
func nextRetry(dl deadletter.Letter) string {
	if dl.NextRetryAt.IsZero() {
		return "-"
	}
	return dl.NextRetryAt.Format(time.RFC3339)
}
