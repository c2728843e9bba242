package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
)

// Exit codes of billfold doctor (docs/troubleshooting.md, "Debug report").
const (
	doctorOK          = 0 // the report has no problem line
	doctorProblems    = 1 // the report has at least one problem line
	doctorUnreachable = 2 // no report: the server is unreachable or refused (also bad flags)
)

func Run(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	fs := cli.NewFlagSet("doctor", stderr)
	f.Register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold doctor [--server URL] [-o table|json]\n\nA debug report of a running server; exit 0: no problems, 1: problems, 2: no report.")
		fs.PrintDefaults()
	}
	if err := cli.ParseFlags(fs, args); err != nil {
		return doctorUnreachable
	}
	body, err := cli.AdminGet(f.Server, "/v1/doctor", nil)
	if err != nil {
		return doctorFailed(stdout, f, err)
	}
	var rep Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return doctorFailed(stdout, f, fmt.Errorf("the answer is not a doctor report: %w", err))
	}
	if f.Output == "json" {
		_, _ = stdout.Write(body)
	} else {
		printDoctor(stdout, f.Server, rep)
	}
	if len(rep.Problems) > 0 {
		return doctorProblems
	}
	return doctorOK
}

// doctorFailed reports that there is no report, and why.
func doctorFailed(stdout io.Writer, f cli.Flags, err error) int {
	var p *problem
	var ae *cli.APIError
	if errors.As(err, &ae) && ae.Body.Code != "" {
		q := newProblem(ae.Body.Code, "%s", ae.Body.Message)
		if ae.Body.Code == domain.CodeNotFound {
			q.Message = "this server has no /v1/doctor route: it is an older billfold"
		}
		p = &q
	}
	if f.Output == "json" {
		out := map[string]any{"server": f.Server, "reachable": ae != nil, "error": err.Error()}
		if p != nil {
			out["problems"] = []problem{*p}
		}
		cli.WriteJSON(stdout, out)
		return doctorUnreachable
	}
	if p != nil {
		fmt.Fprintf(stdout, "server      %s answered but gave no report\n", f.Server)
		printProblems(stdout, []problem{*p})
		return doctorUnreachable
	}
	fmt.Fprintf(stdout, "server      %s UNREACHABLE: %v\n            is billfold serve running, and is --server its admin listener (--admin-listen)?\n", f.Server, err)
	return doctorUnreachable
}

// printDoctor prints the report as sections of aligned tables.
func printDoctor(w io.Writer, server string, r Report) {
	fmt.Fprintf(w, "billfold doctor  %s  %s\n\n", server, r.GeneratedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "server      reachable, billfold %s\n", r.Version)
	conn := "connected"
	if !r.NATS.Connected {
		conn = "DISCONNECTED"
	}
	fmt.Fprintf(w, "nats        %s, %s to %s (nats-server %s)%s\n", r.NATS.Mode, conn, cli.Dash(r.NATS.ServerName), cli.Dash(r.NATS.ServerVersion), prefixed(", cluster ", r.NATS.Cluster))
	if r.Clock.Error != "" {
		fmt.Fprintf(w, "clock       not measured: %s\n", r.Clock.Error)
	} else {
		fmt.Fprintf(w, "clock       billfold %+.3fs against the NATS server (±%.3fs; problem past %.1fs)\n", r.Clock.SkewSeconds, r.Clock.UncertaintySeconds, r.Clock.ThresholdSeconds)
	}

	section(w, "ENDPOINTS")
	tw := table(w)
	fmt.Fprintln(tw, "NAME\tPROVIDER\tPATH\tSECRET\tTOLERANCE\tLIVEMODE\tFLAGS")
	for _, e := range r.Endpoints {
		secret := "missing"
		switch {
		case e.SecretPresent:
			secret = fmt.Sprintf("present (%d)", e.Secrets)
		case e.Unsigned:
			secret = "none (unsigned)"
		}
		var flags []string
		for flag, on := range map[string]bool{"unsigned": e.Unsigned, "bypass": e.Bypass} {
			if on {
				flags = append(flags, flag)
			}
		}
		slices.Sort(flags)
		if e.Misconfigured != "" {
			flags = append(flags, string(e.Misconfigured))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Provider, e.Path, secret, cli.Dash(e.Tolerance), e.Livemode, cli.Dash(strings.Join(flags, ",")))
	}
	_ = tw.Flush()
	if len(r.Endpoints) == 0 {
		fmt.Fprintln(w, "(none)")
	}

	section(w, "STREAMS")
	tw = table(w)
	fmt.Fprintln(tw, "NAME\tROLE\tMESSAGES\tBYTES\tREPLICAS\tLEADER\tHEALTH")
	for _, s := range r.Streams {
		health := "ok"
		switch {
		case s.Error != "":
			health = "UNREADABLE"
		case !s.Healthy:
			health = "DEGRADED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", s.Name, s.Role, s.Messages, s.Bytes, s.Replicas, cli.Dash(s.Leader), health)
	}
	_ = tw.Flush()

	section(w, "PROJECTIONS")
	tw = table(w)
	fmt.Fprintln(tw, "NAME\tBUCKET\tLAG\tDEAD LETTERS\tLAST ACK\tPAUSED")
	for _, p := range r.Projections {
		paused := "-"
		if p.Paused != nil {
			paused = "by " + p.Paused.By + " since " + p.Paused.At.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", p.Name, cli.Dash(p.Bucket), p.Lag, p.DeadLetters, cli.TimeOrDash(p.LastAckedAt), paused)
	}
	_ = tw.Flush()

	section(w, fmt.Sprintf("DEAD LETTERS  %d open", r.DeadLetters.Count))
	if len(r.DeadLetters.ByCode) > 0 {
		tw = table(w)
		fmt.Fprintln(tw, "CODE\tCOUNT\tPROJECTIONS\tNEWEST")
		for _, g := range r.DeadLetters.ByCode {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s %s: %s\n", g.Code, g.Count, countsText(g.Projections), g.LastProvider, g.LastEventID, g.LastMessage)
		}
		_ = tw.Flush()
	}

	d := r.Deliveries
	window := fmt.Sprintf("since %s, %d delivery log entries read", d.Since.Format(time.RFC3339), d.Scanned)
	if d.Error != "" {
		window = "delivery log unreadable: " + d.Error
	}
	section(w, "SIGNATURE FAILURES  "+window)
	printFailures(w, d.SignatureFailures)
	section(w, "OTHER DELIVERIES NOT JOURNALED")
	printFailures(w, d.OtherFailures)

	section(w, fmt.Sprintf("LAST DELIVERIES  %d accepted entries still to write", d.AcceptedPending))
	if len(d.Last) == 0 {
		fmt.Fprintln(w, "(none)")
	} else {
		tw = table(w)
		fmt.Fprintln(tw, "ENDPOINT\tRECEIVED\tEVENT\tTYPE\tOUTCOME\tSTATUS\tCODE")
		for _, name := range slices.Sorted(maps.Keys(d.Last)) {
			for _, l := range d.Last[name] {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", name, l.Received.Format(time.RFC3339), cli.Dash(l.EventID), cli.Dash(l.EventType), l.Outcome, l.Status, cli.Dash(string(l.Code)))
			}
		}
		_ = tw.Flush()
	}

	if len(r.Notes) > 0 {
		section(w, "NOTES")
		for _, n := range r.Notes {
			fmt.Fprintln(w, "note: "+n)
		}
	}
	section(w, "PROBLEMS")
	printProblems(w, r.Problems)
}

func printFailures(w io.Writer, groups []failureGroup) {
	if len(groups) == 0 {
		fmt.Fprintln(w, "(none)")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "CODE\tCOUNT\tENDPOINTS\tLAST\tLIKELY CAUSE")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", g.Code, g.Count, countsText(g.Endpoints), g.LastAt.Format(time.RFC3339), cli.Dash(g.LikelyCause))
	}
	_ = tw.Flush()
}

// printProblems prints one line per problem: its code, what is wrong, and
// the troubleshooting row.
func printProblems(w io.Writer, ps []problem) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "no problems found")
		return
	}
	for _, p := range ps {
		fmt.Fprintf(w, "problem: %s: %s (see %s)\n", p.Code, p.Message, p.See)
	}
}

func section(w io.Writer, title string) { fmt.Fprintf(w, "\n%s\n", title) }

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
