package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/test/natstest"
)

// natsServerBinary is the real nats-server command, built once from the
// nats-server module billfold already depends on (its main package, the
// same code as a released nats-server of that version), next to the
// billfold binary TestMain built.
var natsServerBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(binary), "nats-server")
	build := exec.Command("go", "build", "-o", out, "github.com/nats-io/nats-server/v2")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nats-server: %v\n%s", err, b)
	}
	return out, nil
})

// natsNode is one nats-server process of a test cluster: its own store,
// client and route ports on loopback that stay the same across restarts,
// so a node SIGKILLed and started again rejoins as itself.
type natsNode struct {
	name        string
	dir         string
	port, route int
	routes      []string
	cmd         *exec.Cmd
	exited      chan struct{}
	logs        *syncBuffer
}

// natsCluster is a JetStream cluster of separate nats-server processes.
type natsCluster struct {
	nodes []*natsNode
}

// startNATSCluster starts n nats-server processes clustered on loopback
// and waits until the cluster answers JetStream requests.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{}
	for i := range n {
		c.nodes = append(c.nodes, &natsNode{name: fmt.Sprintf("n%d", i+1), dir: t.TempDir(),
			port: natstest.FreePort(t), route: natstest.FreePort(t), logs: &syncBuffer{}})
	}
	for _, node := range c.nodes {
		for _, other := range c.nodes {
			if other != node {
				node.routes = append(node.routes, fmt.Sprintf("nats://127.0.0.1:%d", other.route))
			}
		}
	}
	for _, node := range c.nodes {
		node.start(t)
		t.Cleanup(node.kill)
	}
	nc, err := nats.Connect(c.urls())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		// A meta leader may not know every peer yet: until it does, an R3
		// stream is refused ("no suitable peers for placement").
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CLUSTER_PROBE", Replicas: n, Storage: jetstream.MemoryStorage}); err != nil {
			return false
		}
		return js.DeleteStream(ctx, "CLUSTER_PROBE") == nil
	}, 30*time.Second, 100*time.Millisecond, "the cluster elects a JetStream meta leader that places a stream on every node")
	return c
}

// urls is the comma-separated client URL list of every node.
func (c *natsCluster) urls() string {
	var urls []string
	for _, node := range c.nodes {
		urls = append(urls, node.url())
	}
	return strings.Join(urls, ",")
}

// node returns the node called name.
func (c *natsCluster) node(name string) *natsNode {
	for _, node := range c.nodes {
		if node.name == name {
			return node
		}
	}
	return nil
}

// kill SIGKILLs the node called name and returns when it is gone.
func (c *natsCluster) kill(name string) time.Time {
	c.node(name).kill()
	return time.Now()
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start runs the node on its store and ports and waits until it takes
// client connections.
func (n *natsNode) start(t *testing.T) {
	t.Helper()
	bin, err := natsServerBinary()
	require.NoError(t, err)
	// max_payload has no command-line flag: a config file gives it, with
	// room for billfold's largest journal message, as docs/nats/cluster.conf
	// does (billfold serve --nats-url refuses a server without it).
	conf := filepath.Join(n.dir, "payload.conf")
	require.NoError(t, os.MkdirAll(n.dir, 0o750))
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf("max_payload: %d\n", natstest.MaxPayload)), 0o640))
	n.cmd = exec.Command(bin, "-c", conf, "-n", n.name, "-a", "127.0.0.1", "-p", strconv.Itoa(n.port),
		"-js", "-sd", n.dir, "--cluster_name", "billfold-test",
		"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", n.route), "--routes", strings.Join(n.routes, ","))
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	require.NoError(t, n.cmd.Start(), "start nats-server %s", n.name)
	n.exited = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			t.Fatalf("nats-server %s exited at start:\n%s", n.name, n.logs)
		default:
		}
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.port), time.Second); err == nil {
			conn.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nats-server %s not listening in 20s:\n%s", n.name, n.logs)
}

// kill SIGKILLs the process (no shutdown, no Raft step-down: a crash) and
// waits until it is gone.
func (n *natsNode) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// logTail is the end of the node's log, for failure messages.
func (n *natsNode) logTail() string { return n.name + ":\n" + tail(n.logs.String(), 2000) }
