package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/cmd/billfold/internal/doctor"
	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/admin"
	"github.com/billfold/billfold/projections/console"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
)

// serveOptions are billfold serve's flags.
type serveOptions struct {
	dataDir           string
	listen            string
	adminListen       string
	natsURL           string
	natsListen        string
	replicas          int
	configPath        string
	appendTimeout     time.Duration
	deliveryRetention time.Duration
	deliveryMaxBytes  int64
	syncAlways        bool
	logLevel          string
	rateLimit         float64
	rateBurst         int
	bypass            bool
	rebuildGrace      time.Duration
	rebuildRate       float64
	rebuildMemory     int
	retrySchedule     retrySchedule
	maxFeedClients    int
	maxFoldJobs       int
	intakeBudget      int64
	maxConns          int
	// ready, when set, is called with the listeners' addresses once they
	// accept connections (billfold demo, billfold gameday), and the
	// embedded NATS server's client URL ("" without a NATS listener).
	ready func(public, admin net.Addr, natsURL string)
	// getenv, when set, replaces os.Getenv for every setting serve reads
	// from the environment (tokens, provider secrets, ${NAME} in the config
	// file, BILLFOLD_FAIL_EVENT_TYPES): billfold gameday runs engines whose
	// switches must come neither from the operator's shell nor from each
	// other.
	getenv func(string) string
	// endpoints, when set, replace the ones the environment would give
	// (no config file): billfold bench serves its own.
	endpoints []ingest.EndpointConfig
	// natsPassword, when set, is billfold's own password on the embedded
	// NATS server instead of a random one: billfold bench, which runs serve
	// in its own process, connects with it. It is never a flag nor read
	// from the environment.
	natsPassword string
}

// env is the environment serve reads its settings from.
func (o serveOptions) env(name string) string {
	if o.getenv != nil {
		return o.getenv(name)
	}
	return os.Getenv(name)
}

func runServe(args []string, _, stderr io.Writer) int {
	var o serveOptions
	fs := cli.NewFlagSet("serve", stderr)
	fs.StringVar(&o.dataDir, "data-dir", "./billfold-data", "directory of the embedded NATS server's JetStream store")
	fs.StringVar(&o.listen, "listen", ":8080", "public webhook listener address")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:8081", "admin listener address: query API, health, metrics")
	fs.StringVar(&o.natsURL, "nats-url", "", "use this NATS server or cluster (comma-separated URLs) instead of the embedded one")
	fs.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", `the embedded NATS server's client address for downstream subscribers ("" for none)`)
	fs.IntVar(&o.replicas, "replicas", 1, "replicas of every stream and KV bucket (1, 3 or 5)")
	fs.StringVar(&o.configPath, "config", "", "YAML config file (docs/configuration.md); without it, endpoints come from provider env vars")
	fs.DurationVar(&o.appendTimeout, "append-timeout", 5*time.Second, "how long a delivery waits for the journal's acknowledgement before 503")
	fs.DurationVar(&o.deliveryRetention, "delivery-retention", ingest.DefaultDeliveryRetention, "how long the delivery log keeps entries")
	fs.Int64Var(&o.deliveryMaxBytes, "delivery-log-max-bytes", ingest.DefaultDeliveryMaxBytes, "the delivery log's size limit in bytes; past it the oldest entries are discarded")
	fs.BoolVar(&o.syncAlways, "sync-always", false, "embedded NATS: fsync every journal write before acknowledging (survives power loss; slower)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Float64Var(&o.rateLimit, "rate-limit", ingest.DefaultRateLimit.PerSecond, "deliveries per second per source address on the public listener (0: no limit)")
	fs.IntVar(&o.rateBurst, "rate-burst", ingest.DefaultRateLimit.Burst, "deliveries a source address may send at once")
	fs.BoolVar(&o.bypass, "insecure-test-bypass", false, "TESTS ONLY: let deliveries that fail verification through, marked verified=bypass; needs a fresh data dir")
	fs.DurationVar(&o.rebuildGrace, "rebuild-grace", rebuild.DefaultRebuildGrace, "how long a rebuild keeps the generation it replaced")
	fs.Var(&o.retrySchedule, "retry-schedule", "waits before each scheduled retry of an event that failed transiently, comma-separated (default 1m,5m,30m,2h,12h; none: such dead letters are exhausted at once)")
	fs.Float64Var(&o.rebuildRate, "rebuild-rate", 0, "events per second a rebuild's fold may read (0: no cap), to leave room for live traffic")
	fs.IntVar(&o.rebuildMemory, "rebuild-memory", rebuild.DefaultRebuildMemory>>20, "MiB of records a rebuild's fold holds before it writes them to the new generations and lets them go")
	fs.IntVar(&o.maxFeedClients, "max-feed-clients", feed.DefaultMaxFeedClients, "GET /v1/changes clients served at once; past it 429 BILLFOLD-BUSY")
	fs.IntVar(&o.maxFoldJobs, "max-fold-jobs", projections.DefaultMaxFoldJobs, "fold reads (as_of, verify) run at once; past it 429 BILLFOLD-BUSY")
	fs.Int64Var(&o.intakeBudget, "intake-budget", 0, "bytes of webhook bodies being read at once, all senders together (0: 64 MiB, or the largest max_body_bytes if more); past it 503 BILLFOLD-INTAKE-BUSY")
	fs.IntVar(&o.maxConns, "max-connections", ingest.DefaultMaxConnections, "open connections on the public listener; more wait in the kernel's backlog")
	if err := cli.ParseFlags(fs, args); err != nil {
		return 2
	}
	log, err := cli.NewLogger(stderr, o.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "billfold serve:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, o, log); err != nil {
		log.Error("billfold serve failed", "code", domain.ErrorCode(err), "error", err)
		return 1
	}
	return 0
}

// serve runs the server until ctx is done, then shuts down cleanly: stop
// taking requests, finish the ones in flight, flush the delivery log, close
// NATS.
func serve(ctx context.Context, o serveOptions, log *slog.Logger) error {
	endpoints, reducerOpts, err := buildSettings(o.configPath, o.endpoints, o.env, log)
	if err != nil {
		return err
	}
	if err := checkBypassDataDir(o); err != nil {
		return err
	}
	if o.bypass {
		fmt.Fprint(os.Stderr, bypassBanner)
		log.Warn("insecure test bypass is on: deliveries that fail verification are journaled, marked verified=bypass", "data_dir", o.dataDir)
	}

	apiToken := o.env("BILLFOLD_API_TOKEN")
	adminTokens, err := adminTokensFromEnv(o.env)
	if err != nil {
		return err
	}
	natsAuth, err := newEmbeddedAuth(o.env(envSubscriberToken))
	if err != nil {
		return err
	}
	if o.natsPassword != "" {
		natsAuth.password = []byte(o.natsPassword)
	}
	if err := checkExposure(o, natsAuth, apiToken, len(adminTokens)); err != nil {
		return err
	}
	if err := checkPortsFree(o); err != nil {
		return err
	}
	nc, ns, err := connectNATS(o, log, natsAuth, ingest.JournalPayloadNeeded(endpoints))
	if err != nil {
		return err
	}
	defer func() {
		_ = nc.Drain()
		if ns != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ingest.EnsureStreams(setupCtx, js, ingest.StreamOptions{Replicas: o.replicas, DeliveryRetention: o.deliveryRetention, DeliveryMaxBytes: o.deliveryMaxBytes}); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingest.NewMetrics(reg)
	journal := ingest.NewJournal(nc, js)
	deliveries, err := ingest.NewDeliveryLog(setupCtx, js, log, ingest.DeliveryLogOptions{Metrics: metrics})
	if err != nil {
		return err
	}
	receiver, err := ingest.NewReceiver(endpoints, journal, deliveries, metrics, log, ingest.ReceiverOptions{
		AppendTimeout:      o.appendTimeout,
		RateLimit:          ingest.RateLimit{PerSecond: o.rateLimit, Burst: o.rateBurst},
		InsecureTestBypass: o.bypass,
	})
	if err != nil {
		return err
	}

	projs := reducers.All(reducerOpts)
	engine, err := projections.NewEngine(setupCtx, js, projs, projections.EngineOptions{
		Replicas: o.replicas, Metrics: projections.NewProjectorMetrics(reg), Replay: projections.NewReplayMetrics(reg), Log: log,
		RetrySchedule: o.retrySchedule.schedule(),
	})
	if err != nil {
		return err
	}
	rebuilds, err := rebuild.NewRebuilds(setupCtx, engine, rebuild.RebuildOptions{Grace: o.rebuildGrace, Rate: o.rebuildRate, Memory: o.rebuildMemory << 20, Log: log})
	if err != nil {
		return err
	}
	engineCtx, stopEngine := context.WithCancel(context.Background())
	engineDone := make(chan struct{})
	go func() { engine.Run(engineCtx); close(engineDone) }()
	go rebuilds.Run(engineCtx)
	defer func() { stopEngine(); <-engineDone }()

	foldJobs := projections.NewFoldJobs(o.maxFoldJobs, 0)
	queries := query.New(engine, projs, reducerOpts.UserIDKey)
	queries.FoldJobs = foldJobs
	go queries.Run(engineCtx)
	adminMux := newAdminMux()
	adminMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	adminMux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		// The query indexes' state is a detail, not a verdict: deliveries
		// are taken while they load; lists answer BILLFOLD-INDEX-LOADING.
		index := "ready"
		if queries.Loading() {
			index = "loading"
		}
		if err := journal.Ready(rctx); err != nil {
			httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{
				"status": "unavailable", "code": string(domain.ErrorCode(err)), "reason": err.Error(), "query_index": index,
			})
			return
		}
		// Paused projections do not make billfold unready: intake, the
		// part readiness guards, goes on. The detail says they are held.
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "query_index": index, "paused": engine.Paused()})
	})
	readAuth := httpapi.RequireToken(apiToken)
	// /metrics names endpoints and counts refusals: behind the API token
	// when there is one, like every other read.
	adminMux.Handle("GET /metrics", readAuth(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	events := ledger.New(engine)
	events.RedactEndpoints(unsignedNames(endpoints))
	verifications := rebuild.NewVerifyJobs(engine, foldJobs)
	defer verifications.Close()
	ops := &admin.Operations{Engine: engine, Rebuilds: rebuilds, Ledger: events, FoldJobs: foldJobs, Verifications: verifications}
	ops.Register(adminMux, readAuth, httpapi.RequireAdmin(adminTokens))
	registerProfiler(adminMux, httpapi.RequireAdmin(adminTokens))
	httpapi.LogErrorsTo(log)
	changes := feed.NewChangeFeed(js, apiToken)
	changes.MaxClients = o.maxFeedClients
	changes.SetLogger(log)
	defer changes.Close()
	adminMux.Handle("GET /v1/changes", changes)
	queries.Register(adminMux, readAuth)
	doc := doctor.New(js, endpoints, engine, queries, o.bypass, version, natsDescription(o, ns))
	adminMux.Handle("GET /v1/doctor", readAuth(doc))
	ui, err := newConsole(ops, queries, js, changes, doc, apiToken, adminTokens, log)
	if err != nil {
		return err
	}
	// The console is HTML, not API: mounted on the mux itself, so the
	// OpenAPI document's route check does not see it.
	adminMux.ServeMux.Handle(console.Prefix, ui)
	adminMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && r.Method == http.MethodGet {
			console.RedirectRoot(w, r)
			return
		}
		httpapi.WriteError(w, domain.Errorf(domain.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})

	intake, err := ingest.NewIntakeBudget(o.intakeBudget, ingest.LargestBody(endpoints), reg, log)
	if err != nil {
		return err
	}
	servers := []*http.Server{
		newHTTPServer(o.listen, intake.Wrap(receiver.Handler())),
		newHTTPServer(o.adminListen, adminMux),
	}
	errc := make(chan error, len(servers))
	var addrs []net.Addr
	for i, s := range servers {
		l, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return listenError([]string{"--listen", "--admin-listen"}[i], s.Addr, err)
		}
		if i == 0 {
			l = ingest.LimitConnections(l, o.maxConns)
		}
		addrs = append(addrs, l.Addr())
		go func() {
			if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	log.Info("billfold serving", "listen", o.listen, "admin_listen", o.adminListen,
		"nats", natsDescription(o, ns), "endpoints", len(endpoints), "version", version)
	if o.ready != nil {
		natsURL := ""
		if ns != nil && o.natsListen != "" {
			natsURL = ns.ClientURL()
		}
		o.ready(addrs[0], addrs[1], natsURL)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		log.Error("listener failed, shutting down", "error", err)
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelShutdown()
	for _, s := range servers {
		_ = s.Shutdown(shutdownCtx)
	}
	if err := deliveries.Close(shutdownCtx); err != nil {
		log.Warn("delivery log not fully flushed", "error", err)
	}
	log.Info("stopped")
	return nil
}

const bypassBanner = `
######################################################################
#  billfold serve --insecure-test-bypass
#  Deliveries that FAIL signature verification are journaled anyway,
#  each marked verified=bypass. Never run this in production.
######################################################################
`

// bypassMarker is the file that marks a data dir created in bypass mode.
const bypassMarker = "INSECURE-TEST-BYPASS"

// checkBypassDataDir keeps bypass events out of any real journal: bypass
// runs only on a fresh data dir (which it then marks) or one it marked
// before, and a marked data dir is never served without bypass.
func checkBypassDataDir(o serveOptions) error {
	marker := filepath.Join(o.dataDir, bypassMarker)
	_, statErr := os.Stat(marker)
	marked := statErr == nil
	switch {
	case !o.bypass && marked && o.natsURL == "":
		return domain.Errorf(domain.CodeConfigInvalid, "data dir %s was created by --insecure-test-bypass and its journal holds unverified events; use another --data-dir", o.dataDir)
	case !o.bypass || marked:
		return nil
	case o.natsURL != "":
		return domain.Errorf(domain.CodeConfigInvalid, "--insecure-test-bypass runs only on the embedded server with a fresh --data-dir, not with --nats-url")
	}
	entries, err := os.ReadDir(o.dataDir)
	if err != nil && !os.IsNotExist(err) {
		return domain.Wrap(domain.CodeConfigInvalid, err, "--data-dir")
	}
	if len(entries) > 0 {
		return domain.Errorf(domain.CodeConfigInvalid, "--insecure-test-bypass refuses data dir %s: it is not fresh and was not created in bypass mode", o.dataDir)
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return domain.Wrap(domain.CodeConfigInvalid, err, "--data-dir")
	}
	return os.WriteFile(marker, []byte("created by billfold serve --insecure-test-bypass\n"), 0o640)
}

// buildSettings makes the endpoints from the config file or, without one,
// from given (when not nil) or the conventional environment variables
// (read with getenv), warning about each one that cannot verify, and the
// reducers' options.
func buildSettings(configPath string, given []ingest.EndpointConfig, getenv func(string) string, log *slog.Logger) ([]*ingest.Endpoint, reducers.Options, error) {
	var fc fileConfig
	if configPath == "" && given != nil {
		fc.Endpoints = given
	} else if configPath == "" {
		var err error
		if fc.Endpoints, err = envEndpoints(getenv); err != nil {
			return nil, reducers.Options{}, err
		}
	} else {
		var err error
		if fc, err = loadConfig(configPath, getenv); err != nil {
			return nil, reducers.Options{}, err
		}
	}
	opts, err := reducerOptions(fc.Reducers, getenv)
	if err != nil {
		return nil, opts, err
	}
	if len(opts.FailTypes) > 0 {
		log.Warn("BILLFOLD_FAIL_EVENT_TYPES is set: events of these types fail in every projection", "types", opts.FailTypes)
	}
	configs := fc.Endpoints
	if len(configs) == 0 {
		log.Warn("no webhook endpoints configured: set a provider variable such as STRIPE_WEBHOOK_SECRET (docs/configuration.md) or use --config", "code", domain.CodeConfigNoSecret)
	}
	endpoints := make([]*ingest.Endpoint, 0, len(configs))
	for _, c := range configs {
		e, err := ingest.NewEndpoint(c)
		if err != nil {
			return nil, opts, err
		}
		if e.Misconfigured != nil {
			log.Warn("endpoint cannot verify deliveries and will answer 500 until fixed",
				"endpoint", e.Name, "code", domain.ErrorCode(e.Misconfigured), "fix", e.Misconfigured.Error())
		}
		endpoints = append(endpoints, e)
		if c.UnsignedCredits {
			opts.UnsignedCredits = append(opts.UnsignedCredits, c.Name)
			log.Warn("endpoint's unsigned input may credit wallets (unsigned_credits)", "endpoint", c.Name)
		}
	}
	return endpoints, opts, nil
}

// connectNATS connects to --nats-url, or starts the embedded server (auth
// deciding who may connect) and connects to it in-process as billfold's
// privileged user. Either way the connection reconnects forever: while it
// is down, deliveries get 503 and /readyz says why. payload is the largest
// journal message an endpoint can need: the embedded server is raised to
// it, and a --nats-url server that cannot take it is refused with
// BILLFOLD-CONFIG-PAYLOAD, since its deliveries would be answered 503
// forever.
func connectNATS(o serveOptions, log *slog.Logger, auth *embeddedAuth, payload int64) (*nats.Conn, *server.Server, error) {
	opts := []nats.Option{
		nats.Name("billfold"),
		nats.CustomInboxPrefix(billfoldInboxPrefix),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own close at shutdown
				log.Warn("NATS disconnected", "code", domain.CodeJournalUnavailable, "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
		// Asynchronous errors (a write on a connection the server closed)
		// go to the log, not as raw text to stderr, nats.go's default.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS asynchronous error", "code", domain.CodeJournalUnavailable, "error", err, "subject", subject)
		}),
	}
	if o.natsURL != "" {
		nc, err := nats.Connect(o.natsURL, opts...)
		if err != nil {
			return nil, nil, domain.Wrap(domain.CodeJournalUnavailable, err, "connect to --nats-url")
		}
		if err := checkPayload(nc, payload); err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nc, nil, nil
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return nil, nil, domain.Wrap(domain.CodeConfigInvalid, err, "--data-dir")
	}
	if payload > server.MAX_PENDING_SIZE {
		return nil, nil, domain.Errorf(domain.CodeConfigPayload, "an endpoint's max_body_bytes needs %d-byte journal messages; the embedded NATS server carries at most %d", payload, server.MAX_PENDING_SIZE)
	}
	ns, err := local.StartEmbeddedNATS(o.dataDir, o.natsListen, o.syncAlways, auth, int32(payload))
	if err != nil {
		return nil, nil, domain.Wrap(domain.CodeJournalUnavailable, err, "embedded NATS")
	}
	if o.natsListen != "" && len(auth.subscriberToken) == 0 {
		log.Warn("the embedded NATS listener accepts no client: set "+envSubscriberToken+" to let downstream services follow the change feed",
			"nats_listen", o.natsListen)
	}
	nc, err := nats.Connect("", append(opts, nats.InProcessServer(ns), nats.UserInfo(natsUser, auth.Password()))...)
	if err != nil {
		ns.Shutdown()
		return nil, nil, domain.Wrap(domain.CodeJournalUnavailable, err, "connect to embedded NATS")
	}
	if err := checkPayload(nc, payload); err != nil {
		nc.Close()
		ns.Shutdown()
		return nil, nil, err
	}
	return nc, ns, nil
}

// checkPayload refuses a NATS server whose max_payload is below payload,
// the largest journal message an endpoint can need.
func checkPayload(nc *nats.Conn, payload int64) error {
	if got := nc.MaxPayload(); got < payload {
		return domain.Errorf(domain.CodeConfigPayload,
			"the NATS server's max_payload is %d bytes but an endpoint's max_body_bytes needs %d (body plus %d of headers): raise max_payload or lower max_body_bytes",
			got, payload, ingest.JournalHeaderRoom)
	}
	return nil
}

// unsignedNames are the names of the unsigned endpoints, which nothing
// shows.
func unsignedNames(endpoints []*ingest.Endpoint) []string {
	var out []string
	for _, e := range endpoints {
		if e.Unsigned {
			out = append(out, e.Name)
		}
	}
	return out
}

func natsDescription(o serveOptions, ns *server.Server) string {
	if ns == nil {
		return "external"
	}
	if o.natsListen == "" {
		return "embedded (in-process only)"
	}
	return "embedded at " + ns.ClientURL()
}

func newHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
