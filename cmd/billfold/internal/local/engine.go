// Package local runs billfold's engine inside this process on loopback
// listeners, for the commands that start one and talk to it over HTTP as a
// provider or operator would (billfold demo, billfold gameday), and starts
// the embedded NATS server serve and the drills use. It holds no wiring of
// its own: the engine is the binary's serve, given to it as a function, so
// it must never import package main's wiring, ingest's intake or the
// projections it serves.
package local

import (
	"context"
	"log/slog"
	"net"
	"time"
)

// Options are the settings of a local engine a command chooses; the
// binary's serve takes the rest from its defaults.
type Options struct {
	DataDir, ConfigPath, LogLevel string
	// Listen, AdminListen and NATSListen are the listeners' addresses
	// (port 0: any free one; NATSListen "": NATS in-process only).
	Listen, AdminListen, NATSListen string
	// NATSURL, when set, is a NATS server to use instead of the embedded one.
	NATSURL string
	// AppendTimeout bounds a journal append.
	AppendTimeout time.Duration
	// Getenv, when set, replaces os.Getenv for every setting serve reads
	// from the environment.
	Getenv func(string) string
}

// Defaults are the options of an engine on dataDir with the endpoints of
// configPath: one replica, NATS in-process only (no client port, so a
// local engine never collides with a real server's 4222), and any free
// loopback ports.
func Defaults(dataDir, configPath, logLevel string) Options {
	return Options{
		DataDir: dataDir, ConfigPath: configPath, LogLevel: logLevel,
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", AppendTimeout: 5 * time.Second,
	}
}

// Starter starts an engine with o, logging to log; the binary passes one
// built on its serve.
type Starter func(ctx context.Context, o Options, log *slog.Logger) (*Engine, error)

// Serve runs an engine until ctx ends, calling ready once its listeners
// accept connections.
type Serve func(ctx context.Context, ready func(public, admin net.Addr, natsURL string)) error

// Engine is serve() running inside this process on loopback
// listeners. billfold demo and billfold gameday start one and talk to it
// over HTTP as any provider or operator would, so what they show is what
// serve does: they never wire the packages themselves.
type Engine struct {
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

// Start runs serve until ctx ends or Stop is called, and returns once both
// listeners accept connections; if serve stops before that, it returns
// serve's error.
func Start(ctx context.Context, serve Serve) (*Engine, error) {
	type listeners struct {
		public, admin net.Addr
		nats          string
	}
	readyc := make(chan listeners, 1)
	ready := func(public, admin net.Addr, nats string) { readyc <- listeners{public, admin, nats} }
	serveCtx, stop := context.WithCancel(ctx)
	e := &Engine{stopServe: stop, done: make(chan struct{})}
	go func() { e.err = serve(serveCtx, ready); close(e.done) }()
	select {
	case l := <-readyc:
		e.PublicURL, e.AdminURL, e.NATSURL = ListenerURL(l.public), ListenerURL(l.admin), l.nats
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
func (e *Engine) Done() <-chan struct{} { return e.done }

// Err is serve's result once Done is closed.
func (e *Engine) Err() error { <-e.done; return e.err }

// Stop shuts the engine down and waits for serve's shutdown to finish
// (requests answered, delivery log flushed, NATS closed), so that its data
// dir may be removed or served again. It may be called more than once.
func (e *Engine) Stop() error {
	e.stopServe()
	return e.Err()
}

// ListenerURL is the http URL of a listener, with 127.0.0.1 for a
// wildcard address so that the printed commands work as they are.
func ListenerURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
