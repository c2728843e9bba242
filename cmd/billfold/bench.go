package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
)

// benchOptions are billfold bench's flags.
type benchOptions struct {
	events      int
	customers   int
	concurrency int
	output      string
	natsURL     string
	cpuprofile  string
	memprofile  string
	keep        bool
}

// benchFigure is one line of the report: a figure measured on billfold and
// the limit the same machine reaches with the same building blocks.
type benchFigure struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
	Target string  `json:"target,omitempty"`
	Note   string  `json:"note,omitempty"`
}

const benchSecret = "whsec_billfold_bench"

func runBench(args []string, stdout, stderr io.Writer) int {
	var o benchOptions
	fs := newFlagSet("bench", stderr)
	fs.IntVar(&o.events, "events", 20000, "deliveries in each throughput phase")
	fs.IntVar(&o.customers, "customers", 2000, "customers the workload spreads over")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent senders")
	fs.StringVar(&o.output, "o", "table", "output: table or json")
	fs.StringVar(&o.natsURL, "nats-url", "", "run against this NATS instead of an embedded one")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile at the end to this file")
	fs.BoolVar(&o.keep, "keep-data", false, "keep the temporary data dir")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "billfold bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "billfold bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	figures, err := bench(o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "billfold bench:", err)
		return 1
	}
	if o.memprofile != "" {
		if f, err := os.Create(o.memprofile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if o.output == "json" {
		return writeJSONOut(stdout, map[string]any{"options": map[string]any{
			"events": o.events, "customers": o.customers, "concurrency": o.concurrency}, "figures": figures})
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tlimit\tratio\ttarget")
	for _, f := range figures {
		limit, ratio := "", ""
		if f.Limit > 0 {
			limit, ratio = fmt.Sprintf("%.1f %s", f.Limit, f.Unit), fmt.Sprintf("%.0f%%", f.Ratio*100)
		}
		fmt.Fprintf(tw, "%s\t%.1f %s\t%s\t%s\t%s\n", f.Name, f.Value, f.Unit, limit, ratio, f.Target)
	}
	tw.Flush()
	return 0
}

// bench starts billfold on loopback with a temporary data dir and runs the
// phases.
func bench(o benchOptions, stderr io.Writer) ([]benchFigure, error) {
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
	public := fmt.Sprintf("127.0.0.1:%d", ports[0])
	so := serveOptions{
		dataDir: dir, listen: public, adminListen: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		natsURL: o.natsURL, natsListen: fmt.Sprintf("127.0.0.1:%d", ports[2]), replicas: 1,
		appendTimeout: 5 * time.Second, deliveryRetention: time.Hour, logLevel: "error",
	}
	os.Setenv("STRIPE_WEBHOOK_SECRET", benchSecret)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, so, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() { cancel(); <-served }()
	if err := waitReady("http://"+so.adminListen+"/readyz", served); err != nil {
		return nil, err
	}
	natsURL := o.natsURL
	if natsURL == "" {
		natsURL = "nats://" + so.natsListen
	}

	work := benchWorkload(o.events, o.customers)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency}, Timeout: 30 * time.Second}
	var figures []benchFigure

	httpCeiling, err := benchHTTPCeiling(work, o.concurrency, client, stderr)
	if err != nil {
		return nil, err
	}
	appendCeiling, err := benchAppendCeiling(natsURL, work, o.concurrency, stderr)
	if err != nil {
		return nil, err
	}
	ingest := sendAll("ingest", "http://"+public+"/webhooks/stripe", work, o.concurrency, 0, client, stderr)
	if ingest.failed > 0 {
		return nil, fmt.Errorf("%d of %d deliveries were not accepted", ingest.failed, len(work))
	}
	figures = append(figures,
		benchFigure{Name: "ingest (verified deliveries/s)", Unit: "/s", Value: ingest.rate, Limit: appendCeiling, Ratio: ingest.rate / appendCeiling, Target: ">= 50% of durable append, >= 10,000/s"},
		benchFigure{Name: "ingest vs bare HTTP", Unit: "/s", Value: ingest.rate, Limit: httpCeiling, Ratio: ingest.rate / httpCeiling},
		benchFigure{Name: "ACK p50 at full rate", Unit: "ms", Value: ingest.p(50)},
		benchFigure{Name: "ACK p99 at full rate", Unit: "ms", Value: ingest.p(99)},
	)
	half := benchWorkload(o.events/2, o.customers)
	for i := range half {
		half[i].id += "_half"
		half[i] = resignHalf(half[i])
	}
	paced := sendAll("ingest at half rate", "http://"+public+"/webhooks/stripe", half, o.concurrency, ingest.rate/2, client, stderr)
	figures = append(figures,
		benchFigure{Name: "ACK p95 at half rate", Unit: "ms", Value: paced.p(95)},
		benchFigure{Name: "ACK p99 at half rate", Unit: "ms", Value: paced.p(99), Target: "< 25 ms"},
	)
	return figures, nil
}

// delivery is one signed bench delivery.
type delivery struct {
	id      string
	body    []byte
	headers map[string]string
}

// benchWorkload builds n signed Stripe deliveries of realistic shape and
// size (2 to 5 KB) over customers: customers, subscriptions, invoices and
// checkouts.
func benchWorkload(n, customers int) []delivery {
	types := []string{"customer.created", "customer.subscription.created", "invoice.paid", "customer.subscription.updated",
		"checkout.session.completed", "invoice.payment_failed", "customer.updated", "invoice.payment_succeeded"}
	now := time.Now()
	out := make([]delivery, n)
	for i := range n {
		c := i % max(customers, 1)
		id := fmt.Sprintf("evt_bench_%d_%08d", now.UnixNano(), i)
		body := samples.Stripe{
			EventID: id, Type: types[i%len(types)], Created: now.Add(time.Duration(i) * time.Millisecond),
			CustomerID: fmt.Sprintf("cus_bench%06d", c), SubscriptionID: fmt.Sprintf("sub_bench%06d", c),
			Object: map[string]any{"metadata": padMetadata(i)},
		}.Event()
		signed, _ := samples.Sign(domain.Stripe, benchSecret, body, now)
		out[i] = delivery{id: id, body: signed.Body, headers: signed.Headers}
	}
	return out
}

func resignHalf(d delivery) delivery {
	body := bytes.Replace(d.body, []byte(`"id":"evt_bench`), []byte(`"id":"evt_half`), 1)
	signed, _ := samples.Sign(domain.Stripe, benchSecret, body, time.Now())
	return delivery{id: d.id, body: signed.Body, headers: signed.Headers}
}

// padMetadata makes bodies range from about 2 to 5 KB, as real ones do.
func padMetadata(i int) map[string]any {
	md := map[string]any{"user_id": fmt.Sprintf("user_bench%06d", i%5000), "plan_tier": "pro"}
	for k := range (i * 7) % 24 {
		md[fmt.Sprintf("note_%02d", k)] = "internal reference 7f3a9c1e-2b4d-4e6f-8a0b-1c2d3e4f5a6b for reconciliation run"
	}
	return md
}

// result is a phase's throughput and latencies.
type phaseResult struct {
	rate      float64
	latencies []time.Duration
	failed    int
}

func (r phaseResult) p(q float64) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	i := int(float64(len(s)-1) * q / 100)
	return float64(s[i].Microseconds()) / 1000
}

// sendAll posts every delivery from concurrency senders, at most rate per
// second in all when rate > 0, and counts non-2xx answers as failed.
func sendAll(phase, url string, work []delivery, concurrency int, rate float64, client *http.Client, stderr io.Writer) phaseResult {
	bar := newBar(len(work), phase, stderr)
	var next atomic.Int64
	var failed atomic.Int64
	lat := make([]time.Duration, len(work))
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(work) {
					return
				}
				if rate > 0 {
					if wait := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); wait > 0 {
						time.Sleep(wait)
					}
				}
				d := work[i]
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
				for k, v := range d.headers {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode/100 != 2 {
					failed.Add(1)
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat[i] = time.Since(t0)
				_ = bar.Add(1)
			}
		})
	}
	wg.Wait()
	_ = bar.Finish()
	return phaseResult{rate: float64(len(work)) / time.Since(start).Seconds(), latencies: lat, failed: int(failed.Load())}
}

// benchHTTPCeiling is a bare net/http handler that reads the body and
// answers 200: what the machine's HTTP stack allows.
func benchHTTPCeiling(work []delivery, concurrency int, client *http.Client, stderr io.Writer) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	return sendAll("HTTP ceiling", "http://"+l.Addr().String()+"/", work, concurrency, 0, client, stderr).rate, nil
}

// benchAppendCeiling publishes the same payloads synchronously to a
// scratch stream from concurrency publishers: what JetStream allows.
func benchAppendCeiling(url string, work []delivery, concurrency int, stderr io.Writer) (float64, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BILLFOLD_BENCH_CEILING", Subjects: []string{"billfold.bench.>"}, Storage: jetstream.FileStorage}); err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(ctx, "BILLFOLD_BENCH_CEILING") }()
	bar := newBar(len(work), "durable append ceiling", stderr)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(work) {
					return
				}
				_, _ = js.Publish(ctx, "billfold.bench."+work[i].id, work[i].body)
				_ = bar.Add(1)
			}
		})
	}
	wg.Wait()
	_ = bar.Finish()
	return float64(len(work)) / time.Since(start).Seconds(), nil
}

func newBar(n int, phase string, w io.Writer) *progressbar.ProgressBar {
	if f, ok := w.(*os.File); !ok || !isTerminal(f) {
		w = io.Discard
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(phase),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitReady(url string, served <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			return fmt.Errorf("server stopped: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("server not ready in 60s")
}
