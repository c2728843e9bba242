// Package gameday is `billfold gameday`: reliability drills against
// engines on temporary dirs (a NATS server taken away and brought back,
// clock skew, a reducer bug and its dead letters, ...), each a PASS or FAIL
// with figures read from the engines' own metrics. It starts engines
// through the local.Starter it is given and talks to them over HTTP and
// NATS only, so it must never import the serve wiring (package main).
package gameday

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/cmd/billfold/internal/demo"
	"github.com/billfold/billfold/cmd/billfold/internal/local"
)

// billfold gameday runs the reliability drills of docs/gameday.md. Each
// drill starts the engines it needs itself (serve, in this process, on
// temporary data dirs and loopback ports, with secrets made up for the
// run; a separate in-process NATS server where the drill takes the journal
// away), does to them what production will, and checks what an operator
// would: the answers providers get, /metrics, the delivery log, the logs,
// the journal and billfold verify. It prints PASS or FAIL per drill with
// the figures it measured, and exits 1 when any drill fails.

// drill is one gameday drill.
type drill struct {
	name    string
	summary string
	run     func(ctx context.Context, r *drillRun) error
}

// drills are the gameday drills, in the order they run.
var drills = []drill{
	{"signature-failure", "forged and tampered deliveries are refused, counted and never journaled", drillSignatureFailure},
	{"clock-skew", "signed timestamps past the tolerance are refused with the right code, within it accepted", drillClockSkew},
	{"journal-outage", "the journal's NATS server stops under load: 503 with Retry-After, /readyz 503, recovery without a restart, nothing lost", drillJournalOutage},
	{"downstream-timeout", "slow change-feed consumers do not slow the answers to providers", drillDownstreamTimeout},
	{"dead-letter-replay", "a reducer bug sends top-ups to the dead letters; after the fix a requeue applies each exactly once", drillDeadLetterReplay},
}

// drillTimeout bounds one drill, so that a hang fails it instead of the
// run never ending.
const drillTimeout = 90 * time.Second

// gamedayOptions are billfold gameday's flags.
type gamedayOptions struct {
	output     string
	only       string
	engineLogs bool
	keep       string
}

// Run is `billfold gameday` with its arguments; start runs each engine
// a drill needs.
func Run(args []string, stdout, stderr io.Writer, start local.Starter) int {
	var o gamedayOptions
	fs := cli.NewFlagSet("gameday", stderr)
	fs.StringVar(&o.output, "o", "table", "output: table or json")
	fs.StringVar(&o.only, "drill", "", "run only these drills (comma-separated): "+strings.Join(drillNames(), ", "))
	fs.BoolVar(&o.engineLogs, "engine-logs", false, "also print the engines' JSON logs to stderr")
	fs.StringVar(&o.keep, "keep", "", "keep every drill's data dirs and NATS stores under this directory (created, must be empty) instead of deleting them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold gameday [-o table|json] [--drill NAME,...] [--engine-logs] [--keep DIR]\n\nRuns the reliability drills against engines it starts on temporary data dirs and\nloopback ports (docs/gameday.md); exits 1 when any drill fails.\n\ndrills:")
		for _, d := range drills {
			fmt.Fprintf(stderr, "  %-20s %s\n", d.name, d.summary)
		}
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	// No environment twins (parseFlags), as for demo: the drills' engines
	// take nothing from a real server's settings.
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (o.output != "table" && o.output != "json") {
		fs.Usage()
		return 2
	}
	selected, err := selectDrills(o.only)
	if err != nil {
		fmt.Fprintln(stderr, "billfold gameday:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := runDrills(ctx, start, selected, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "billfold gameday:", err)
		return 1
	}
	if o.output == "json" {
		cli.WriteJSON(stdout, rep)
	} else {
		rep.print(stdout)
	}
	if !rep.Passed {
		return 1
	}
	return 0
}

func drillNames() []string {
	names := make([]string, 0, len(drills))
	for _, d := range drills {
		names = append(names, d.name)
	}
	return names
}

// selectDrills returns the drills named in only (all when empty), in run
// order.
func selectDrills(only string) ([]drill, error) {
	names := cli.SplitList(only)
	if len(names) == 0 {
		return drills, nil
	}
	for _, n := range names {
		if !slices.Contains(drillNames(), n) {
			return nil, fmt.Errorf("--drill %s: want one of %s", n, strings.Join(drillNames(), ", "))
		}
	}
	var out []drill
	for _, d := range drills {
		if slices.Contains(names, d.name) {
			out = append(out, d)
		}
	}
	return out, nil
}

// gamedayReport is what billfold gameday prints.
type gamedayReport struct {
	Passed  bool          `json:"passed"`
	Seconds float64       `json:"seconds"`
	Drills  []drillReport `json:"drills"`
}

// drillReport is one drill's outcome: its figures, and every check it
// made. A drill passes when it ran to the end and every check passed.
type drillReport struct {
	Name    string       `json:"name"`
	Summary string       `json:"summary"`
	Passed  bool         `json:"passed"`
	Seconds float64      `json:"seconds"`
	Figures figures      `json:"figures"`
	Checks  []drillCheck `json:"checks"`
	// Error is why the drill stopped before its end.
	Error string `json:"error,omitempty"`
}

// drillCheck is one thing a drill asserted.
type drillCheck struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// figure is one measured value; its name carries its unit (_s, _ms).
type figure struct {
	name  string
	value any
}

// figures keep the order a drill measured them in, in JSON too.
type figures []figure

// MarshalJSON writes figures as one object, in order.
func (fs figures) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func runDrills(ctx context.Context, startEngine local.Starter, selected []drill, o gamedayOptions, stderr io.Writer) (gamedayReport, error) {
	start := time.Now()
	rep := gamedayReport{Passed: true, Drills: []drillReport{}}
	root, err := drillRoot(o.keep)
	if err != nil {
		return rep, err
	}
	if o.keep == "" {
		defer os.RemoveAll(root)
	}
	secrets := demo.NewSecrets()
	config := filepath.Join(root, "billfold-gameday.yaml")
	if err := os.WriteFile(config, secrets.Config(), 0o600); err != nil {
		return rep, err
	}
	for _, d := range selected {
		if ctx.Err() != nil {
			break
		}
		r := &drillRun{
			start:  startEngine,
			report: drillReport{Name: d.name, Summary: d.summary, Figures: figures{}, Checks: []drillCheck{}},
			dir:    filepath.Join(root, d.name), config: config, secrets: secrets,
			adminToken: "gameday-" + rand.Text(), logs: &logSink{},
		}
		if o.engineLogs {
			r.tee = stderr
		}
		rep.Drills = append(rep.Drills, r.run(ctx, d))
		rep.Passed = rep.Passed && rep.Drills[len(rep.Drills)-1].Passed
	}
	if ctx.Err() != nil {
		rep.Passed = false
	}
	rep.Seconds = roundTo(time.Since(start).Seconds(), 2)
	return rep, nil
}

// drillRoot is the directory the drills keep their data under: keep,
// created and required empty so that no earlier run's store is mistaken
// for this one's, or a new temporary directory.
func drillRoot(keep string) (string, error) {
	if keep == "" {
		return os.MkdirTemp("", "billfold-gameday-")
	}
	if err := os.MkdirAll(keep, 0o700); err != nil {
		return "", fmt.Errorf("--keep: %w", err)
	}
	entries, err := os.ReadDir(keep)
	if err != nil {
		return "", fmt.Errorf("--keep: %w", err)
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("--keep %s: not empty", keep)
	}
	return keep, nil
}

func (rep gamedayReport) print(w io.Writer) {
	failed := 0
	for _, d := range rep.Drills {
		status := "PASS"
		if !d.Passed {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "%s  %s (%.1fs): %s\n", status, d.Name, d.Seconds, d.Summary)
		width := 0
		for _, f := range d.Figures {
			width = max(width, len(f.name))
		}
		for _, f := range d.Figures {
			fmt.Fprintf(w, "      %-*s  %v\n", width, f.name, f.value)
		}
		for _, c := range d.Checks {
			if !c.Passed {
				fmt.Fprintf(w, "      failed: %s: %s\n", c.Name, c.Detail)
			}
		}
		if d.Error != "" {
			fmt.Fprintf(w, "      stopped: %s\n", d.Error)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d drills in %.1fs: %d passed, %d failed\n", len(rep.Drills), rep.Seconds, len(rep.Drills)-failed, failed)
}

// drillRun is one drill's workspace: its report, its temp dir, the run's
// made-up secrets and the engines and servers it started.
type drillRun struct {
	start      local.Starter // runs an engine on the binary's serve
	report     drillReport
	dir        string
	config     string // the YAML config every engine of the run serves
	secrets    demo.Secrets
	adminToken string
	logs       *logSink  // every engine's log lines
	tee        io.Writer // also writes the log lines there, when set
	cleanups   []func()
}

func (r *drillRun) run(ctx context.Context, d drill) drillReport {
	ctx, cancel := context.WithTimeout(ctx, drillTimeout)
	defer cancel()
	start := time.Now()
	err := d.run(ctx, r)
	for _, c := range slices.Backward(r.cleanups) {
		c()
	}
	rep := r.report
	rep.Seconds = roundTo(time.Since(start).Seconds(), 2)
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Passed = err == nil && len(rep.Checks) > 0
	for _, c := range rep.Checks {
		rep.Passed = rep.Passed && c.Passed
	}
	return rep
}

// figure records a measured value.
func (r *drillRun) figure(name string, value any) {
	r.report.Figures = append(r.report.Figures, figure{name, value})
}

// check records an assertion and returns ok; detail says what was seen.
func (r *drillRun) check(name string, ok bool, detail string, args ...any) bool {
	r.report.Checks = append(r.report.Checks, drillCheck{Name: name, Passed: ok, Detail: fmt.Sprintf(detail, args...)})
	return ok
}

// cleanup runs f when the drill ends, after the cleanups registered later.
func (r *drillRun) cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
