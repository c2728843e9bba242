package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/billfold/billfold/ingest"
)

// localEngine is serve() running inside this process on loopback
// listeners. billfold demo and billfold gameday start one and talk to it
// over HTTP as any provider or operator would, so what they show is what
// serve does: they never wire the packages themselves.
type localEngine struct {
	// PublicURL and AdminURL are the webhook and admin listeners.
	PublicURL string
	AdminURL  string
	// NATSURL is the embedded NATS server's client URL, "" when the
	// engine has no NATS listener (natsListen "").
	NATSURL string

	stopServe context.CancelFunc
	done      chan struct{}
	err       error // serve's result, set before done closes
}

// localServeOptions are serve's defaults for an engine on dataDir with the
// endpoints of configPath: one replica, NATS in-process only (no client
// port, so a local engine never collides with a real server's 4222), and
// any free loopback ports.
func localServeOptions(dataDir, configPath, logLevel string) serveOptions {
	return serveOptions{
		dataDir: dataDir, listen: "127.0.0.1:0", adminListen: "127.0.0.1:0",
		natsListen: "", replicas: 1, configPath: configPath, appendTimeout: 5 * time.Second,
		deliveryRetention: ingest.DefaultDeliveryRetention, logLevel: logLevel,
		rateLimit: ingest.DefaultRateLimit.PerSecond, rateBurst: ingest.DefaultRateLimit.Burst,
	}
}

// startLocalEngine runs serve with so until ctx ends or Stop is called,
// and returns once both listeners accept connections; if serve stops
// before that, it returns serve's error.
func startLocalEngine(ctx context.Context, so serveOptions, log *slog.Logger) (*localEngine, error) {
	type listeners struct {
		public, admin net.Addr
		nats          string
	}
	readyc := make(chan listeners, 1)
	so.ready = func(public, admin net.Addr, nats string) { readyc <- listeners{public, admin, nats} }
	serveCtx, stop := context.WithCancel(ctx)
	e := &localEngine{stopServe: stop, done: make(chan struct{})}
	go func() { e.err = serve(serveCtx, so, log); close(e.done) }()
	select {
	case l := <-readyc:
		e.PublicURL, e.AdminURL, e.NATSURL = listenerURL(l.public), listenerURL(l.admin), l.nats
		return e, nil
	case <-e.done:
		stop()
		if e.err == nil {
			return nil, ctx.Err()
		}
		return nil, e.err
	}
}

// Done is closed when serve has returned, by Stop or on its own.
func (e *localEngine) Done() <-chan struct{} { return e.done }

// Err is serve's result once Done is closed.
func (e *localEngine) Err() error { <-e.done; return e.err }

// Stop shuts the engine down and waits for serve's shutdown to finish
// (requests answered, delivery log flushed, NATS closed), so that its data
// dir may be removed or served again. It may be called more than once.
func (e *localEngine) Stop() error {
	e.stopServe()
	return e.Err()
}
