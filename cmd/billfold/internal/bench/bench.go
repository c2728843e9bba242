// Package bench is `billfold bench`: it starts an engine on loopback with a
// temporary data dir, drives a signed workload through it (ingest, end to
// end, lag, queries, rebuild phases) and prints the figures against the
// machine's own limits. It starts the engine through the Engine it is
// given, so it must never import the serve wiring (package main); it
// writes to NATS directly only to measure ceilings and to load records.
package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
)

// benchOptions are billfold bench's flags.
type benchOptions struct {
	events        int
	customers     int
	concurrency   int
	duration      time.Duration
	rate          float64
	subscriptions int
	queries       int
	phases        string
	output        string
	natsURL       string
	cpuprofile    string
	memprofile    string
	peakProfile   string
	keep          bool
}

// benchPhase is one measured part of billfold bench. A phase talks to the
// server only through benchRun and returns its rows, so adding one (the
// rebuild phase, once rebuilds have an API) is one function and one entry
// in benchPhases.
type benchPhase struct {
	name string
	run  func(ctx context.Context, b *benchRun) ([]benchRow, error)
}

// benchPhases run in this order; --phases picks a subset.
var benchPhases = []benchPhase{
	{"ingest", benchIngest},
	{"e2e", benchE2E},
	{"lag", benchLag},
	{"queries", benchQueries},
	{"journal", benchJournal},
	{"rebuild", benchRebuild},
}

// benchRow is one line of the report: a figure measured on billfold and,
// where one exists, the limit the same machine reaches in the same run with
// the same building blocks (net/http, JetStream, KV) doing nothing else.
// Ratio is Value/Limit: for a rate the share of the ceiling reached, for a
// latency how many times the floor it takes.
type benchRow struct {
	Phase   string   `json:"phase"`
	Figure  string   `json:"figure"`
	Unit    string   `json:"unit"`
	Value   float64  `json:"value"`
	Limit   *float64 `json:"limit,omitempty"`
	LimitOf string   `json:"limit_of,omitempty"`
	Ratio   *float64 `json:"ratio,omitempty"`
	Target  string   `json:"target,omitempty"`
	// Met says whether the target was reached; absent without a target.
	Met  *bool  `json:"met,omitempty"`
	Note string `json:"note,omitempty"`
}

// withLimit sets the row's limit and ratio.
func (r benchRow) withLimit(limit float64, of string) benchRow {
	if limit > 0 && !math.IsInf(limit, 0) {
		ratio := r.Value / limit
		r.Limit, r.Ratio, r.LimitOf = &limit, &ratio, of
	}
	return r
}

// withTarget sets the row's target and whether it was met.
func (r benchRow) withTarget(target string, met bool) benchRow {
	r.Target, r.Met = target, &met
	return r
}

// Report is what -o json prints.
type Report struct {
	Machine benchMachine   `json:"machine"`
	Options map[string]any `json:"options"`
	Phases  []string       `json:"phases"`
	Rows    []benchRow     `json:"rows"`
}

// benchMachine describes where the figures were measured.
type benchMachine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	MemoryMiB  int    `json:"memory_mib,omitempty"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
}

// Run is `billfold bench` with its arguments: it starts an engine with e
// and measures it; the exit code is 0, 1 on a failed run, 2 on bad flags.
func Run(args []string, stdout, stderr io.Writer, e Engine) int {
	var o benchOptions
	fs := cli.NewFlagSet("bench", stderr)
	fs.IntVar(&o.events, "events", 20000, "ingest and e2e phases: deliveries at full rate (ingest: half as many again at half rate)")
	fs.IntVar(&o.customers, "customers", 2000, "customers the workload spreads over")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent senders and readers")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "lag phase: how long to deliver at --rate")
	fs.Float64Var(&o.rate, "rate", 1000, "lag phase: deliveries per second")
	fs.IntVar(&o.subscriptions, "subscriptions", 100_000, "queries phase: subscription records loaded into the store (the target is stated at 1,000,000)")
	fs.IntVar(&o.queries, "queries", 20000, "queries phase: point lookups measured (lists: a tenth as many)")
	fs.StringVar(&o.phases, "phases", "ingest,e2e,lag,queries", "phases to run, comma-separated")
	fs.StringVar(&o.output, "o", "table", "output: table or json")
	fs.StringVar(&o.natsURL, "nats-url", "", "run against this NATS instead of an embedded one")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured phases to this file")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile at the end to this file")
	fs.StringVar(&o.peakProfile, "peak-memprofile", "", "queries and rebuild phases: write a heap profile to this file whenever resident memory reaches a new peak (every 128 MiB more)")
	fs.BoolVar(&o.keep, "keep-data", false, "keep the temporary data dir")
	if err := cli.ParseFlags(fs, args); err != nil {
		return 2
	}
	phases, err := selectPhases(o.phases)
	if err != nil {
		fmt.Fprintln(stderr, "billfold bench:", err)
		return 2
	}
	if o.output != "table" && o.output != "json" {
		fmt.Fprintf(stderr, "billfold bench: -o %q: want table or json\n", o.output)
		return 2
	}
	if o.events < 1 || o.concurrency < 1 || o.rate <= 0 || o.subscriptions < 1 || o.queries < 1 {
		fmt.Fprintln(stderr, "billfold bench: --events, --concurrency, --rate, --subscriptions and --queries must be positive")
		return 2
	}
	rows, err := bench(e, o, phases, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "billfold bench:", err)
		return 1
	}
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			fmt.Fprintln(stderr, "billfold bench:", err)
			return 1
		}
	}
	report := Report{Machine: machine(), Rows: rows, Options: map[string]any{
		"events": o.events, "customers": o.customers, "concurrency": o.concurrency, "duration": o.duration.String(),
		"rate": o.rate, "subscriptions": o.subscriptions, "queries": o.queries,
	}}
	for _, p := range phases {
		report.Phases = append(report.Phases, p.name)
	}
	if o.output == "json" {
		return cli.WriteJSON(stdout, report)
	}
	writeBenchTable(stdout, report)
	return 0
}

func selectPhases(list string) ([]benchPhase, error) {
	var out []benchPhase
	for _, name := range cli.SplitList(list) {
		i := slices.IndexFunc(benchPhases, func(p benchPhase) bool { return p.name == name })
		if i < 0 {
			names := make([]string, len(benchPhases))
			for j, p := range benchPhases {
				names[j] = p.name
			}
			return nil, fmt.Errorf("--phases: unknown phase %q (phases: %s)", name, strings.Join(names, ", "))
		}
		out = append(out, benchPhases[i])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--phases: no phase")
	}
	// Always in the documented order: each phase starts from the state
	// the earlier ones leave (an idle server, a settled journal).
	slices.SortFunc(out, func(a, b benchPhase) int {
		return slices.IndexFunc(benchPhases, func(p benchPhase) bool { return p.name == a.name }) -
			slices.IndexFunc(benchPhases, func(p benchPhase) bool { return p.name == b.name })
	})
	return slices.CompactFunc(out, func(a, b benchPhase) bool { return a.name == b.name }), nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC() // up-to-date statistics of what is live
	return pprof.WriteHeapProfile(f)
}

func writeBenchTable(w io.Writer, r Report) {
	m := r.Machine
	fmt.Fprintf(w, "billfold bench: %d CPUs (%s), %d MiB, %s\n\n", m.CPUs, m.CPUModel, m.MemoryMiB, m.GoVersion)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tfigure\tvalue\tlimit\tratio\ttarget")
	for _, row := range r.Rows {
		limit, ratio := "", ""
		if row.Limit != nil {
			limit = formatValue(*row.Limit, row.Unit)
			if row.Unit == "/s" {
				ratio = fmt.Sprintf("%.0f%%", *row.Ratio*100)
			} else {
				ratio = fmt.Sprintf("%.1f×", *row.Ratio)
			}
		}
		target := row.Target
		if row.Met != nil {
			target += map[bool]string{true: "  met", false: "  MISSED"}[*row.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.Phase, row.Figure, formatValue(row.Value, row.Unit), limit, ratio, target)
	}
	tw.Flush()
	// What each limit is, once per phase and kind, then the rows' notes.
	var notes []string
	for _, row := range r.Rows {
		if n := row.Phase + " limits: " + row.LimitOf; row.LimitOf != "" && !slices.Contains(notes, n) {
			notes = append(notes, n)
		}
	}
	for _, row := range r.Rows {
		if row.Note != "" {
			notes = append(notes, fmt.Sprintf("%s / %s: %s", row.Phase, row.Figure, row.Note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "/s", "records", "deliveries":
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + " " + unit
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " " + unit
}

// machine describes this machine from the runtime and /proc.
func machine() benchMachine {
	m := benchMachine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPUModel, _ = procField("/proc/cpuinfo", "model name")
	if mem, ok := procField("/proc/meminfo", "MemTotal"); ok {
		if kb, err := strconv.Atoi(strings.TrimSuffix(mem, " kB")); err == nil {
			m.MemoryMiB = kb / 1024
		}
	}
	return m
}

// procField reads the first "name: value" line of a /proc file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// benchRun is the server under measurement and what the phases share.
type benchRun struct {
	o      benchOptions
	public string // base URL of the webhook listener
	admin  string // base URL of the admin listener (query API)
	token  string // BILLFOLD_API_TOKEN, sent to the query API
	nc     *nats.Conn
	js     jetstream.JetStream
	client *http.Client
	stderr io.Writer
	// runID makes this run's ids distinct from every earlier run's against
	// the same NATS (--nats-url).
	runID string
	// paused is set once the journal phase has paused the projections:
	// nothing catches up after it.
	paused bool
}

// bench starts billfold on loopback with a temporary data dir, as `billfold
// serve` does, and runs the phases against it. The CPU profile covers the
// phases only, not the start.
func bench(e Engine, o benchOptions, phases []benchPhase, stderr io.Writer) ([]benchRow, error) {
	dir, err := os.MkdirTemp("", "billfold-bench")
	if err != nil {
		return nil, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	so := EngineOptions{
		DataDir: dir, Listen: fmt.Sprintf("127.0.0.1:%d", ports[0]), AdminListen: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		NATSURL: o.natsURL, NATSListen: fmt.Sprintf("127.0.0.1:%d", ports[2]), Replicas: 1,
		AppendTimeout: 5 * time.Second, DeliveryRetention: time.Hour, LogLevel: "error",
		Endpoints: []ingest.EndpointConfig{
			{Name: "stripe", Provider: domain.Stripe, Secrets: []string{benchStripeSecret}},
			{Name: "clerk", Provider: domain.Clerk, Secrets: []string{benchClerkSecret}},
		},
		Getenv: func(name string) string {
			if name == "BILLFOLD_ADMIN_TOKEN" {
				return benchAdminToken // the rebuild phase is an admin mutation
			}
			return os.Getenv(name)
		},
	}
	// bench reads and writes the embedded server as billfold itself does
	// (its own streams, the journal), so it shares billfold's privileged
	// user, with a password of its own generating.
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	so.NATSPassword = hex.EncodeToString(pw)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.Serve(ctx, so) }()
	defer func() { cancel(); <-served }()
	if err := waitReady("http://"+so.AdminListen+"/readyz", served); err != nil {
		return nil, err
	}
	natsURL, natsOpts := o.natsURL, []nats.Option{nats.Name("billfold-bench")}
	if natsURL == "" {
		natsURL = "nats://" + so.NATSListen
		natsOpts = append(natsOpts, nats.UserInfo(e.NATSUser, so.NATSPassword))
	}
	nc, err := nats.Connect(natsURL, natsOpts...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	b := &benchRun{
		o: o, public: "http://" + so.Listen, admin: "http://" + so.AdminListen, token: os.Getenv("BILLFOLD_API_TOKEN"),
		nc: nc, js: js, stderr: stderr, runID: strconv.FormatInt(time.Now().UnixNano()%(36*36*36*36*36), 36),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency}, Timeout: 30 * time.Second},
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	var rows []benchRow
	for _, p := range phases {
		if err := b.settle(ctx); err != nil {
			return nil, err
		}
		got, err := p.run(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", p.name, err)
		}
		for i := range got {
			got[i].Phase = p.name
		}
		rows = append(rows, got...)
	}
	return rows, nil
}
