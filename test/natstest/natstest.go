// Package natstest starts real NATS servers with JetStream for tests: one
// embedded server, or a cluster of them on loopback ports, each torn down
// when its test ends. It is the nats-server tests' own approach; billfold's
// tests never mock NATS.
package natstest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxPayload is the test servers' max_payload: like docs/nats/cluster.conf,
// room for an endpoint's default 1 MiB body and the journal's headers, which
// billfold serve --nats-url checks at start-up.
const MaxPayload = 2 << 20

// Options returns the options of a loopback JetStream server on a random
// port storing in dir.
func Options(dir string) *server.Options {
	return &server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: MaxPayload,
	}
}

// Start starts a server with opts and waits until it takes connections.
func Start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready in 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// Server starts a single JetStream server in a temporary directory.
func Server(t testing.TB) *server.Server {
	t.Helper()
	return Start(t, Options(t.TempDir()))
}

// Connect connects to s and returns the connection and its JetStream
// context; the connection closes when the test ends.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectURL(t, s.ClientURL())
}

// ConnectURL connects to url; see Connect.
func ConnectURL(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("nats connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	// A port from the kernel's ephemeral range (what ":0" gives) can be
	// taken again by any outgoing connection before the server binds it,
	// or while a killed node is down: a restarted node then fails with
	// "address already in use". Ports below that range are only ever
	// bound on purpose.
	low := ephemeralLow()
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default where it cannot be read).
func ephemeralLow() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if low, err := strconv.Atoi(f[0]); err == nil && low > 11000 {
				return low
			}
		}
	}
	return 32768
}

// Cluster is a JetStream cluster of servers on loopback.
type Cluster struct {
	Servers []*server.Server
	Opts    []*server.Options
}

// StartCluster starts n clustered JetStream servers on loopback and waits
// until the cluster has a meta leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	routes := make([]int, n)
	for i := range routes {
		routes[i] = FreePort(t)
	}
	c := &Cluster{}
	for i := range n {
		o := Options(t.TempDir())
		o.ServerName = fmt.Sprintf("n%d", i+1)
		o.Cluster = server.ClusterOpts{Name: "billfold-test", Host: "127.0.0.1", Port: routes[i]}
		for j, p := range routes {
			if j != i {
				o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
			}
		}
		c.Opts = append(c.Opts, o)
		c.Servers = append(c.Servers, Start(t, o))
	}
	c.WaitForMetaLeader(t)
	return c
}

// WaitForMetaLeader waits up to 20 s for the cluster to elect a meta
// leader that knows every running server as a JetStream peer with current
// stats: before that, a replicated stream can fail placement ("no suitable
// peers for placement").
func (c *Cluster) WaitForMetaLeader(t testing.TB) {
	t.Helper()
	running := 0
	for _, s := range c.Servers {
		if s.Running() {
			running++
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s.Running() && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) >= running {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no JetStream meta leader with every peer in 20s")
}

// URLs is a comma-separated client URL list of the running servers.
func (c *Cluster) URLs() string {
	var urls string
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		if urls != "" {
			urls += ","
		}
		urls += s.ClientURL()
	}
	return urls
}

// EachMessage calls fn with every message stream holds now, oldest first,
// read through an ordered consumer up to the stream's last sequence when
// the call starts. (Stopping at the first empty fetch instead read nothing
// on a cluster whose new consumer was not ready yet.)
func EachMessage(t testing.TB, js jetstream.JetStream, stream string, fn func(jetstream.Msg)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	if s.CachedInfo().State.Msgs == 0 {
		return
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	for ctx.Err() == nil {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		for m := range batch.Messages() {
			fn(m)
			if meta, err := m.Metadata(); err == nil && (meta.Sequence.Stream >= last || meta.NumPending == 0) {
				return
			}
		}
	}
	t.Fatalf("read %s: not up to sequence %d in 30s", stream, last)
}
