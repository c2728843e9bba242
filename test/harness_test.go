package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	billfold "github.com/billfold/billfold/projections/client"
	"github.com/billfold/billfold/test/natstest"
)

// binary is the billfold binary built from this tree by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "billfold-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "billfold")
	build := exec.Command("go", "build", "-o", binary, "../cmd/billfold")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building billfold:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `billfold serve` process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	public  string // http://127.0.0.1:port
	admin   string
	dataDir string
	env     []string
	args    []string
	logs    *syncBuffer
	exited  chan struct{}
}

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts billfold serve on fresh loopback ports with dataDir,
// the given environment and extra flags, and waits until /readyz is ready.
func startServer(t *testing.T, dataDir string, env []string, args ...string) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, env: env, args: args, logs: &syncBuffer{}}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	pub, adm := natstest.FreePort(t), natstest.FreePort(t)
	s.public = fmt.Sprintf("http://127.0.0.1:%d", pub)
	s.admin = fmt.Sprintf("http://127.0.0.1:%d", adm)
	args := append([]string{"serve",
		"--data-dir", s.dataDir,
		"--listen", fmt.Sprintf("127.0.0.1:%d", pub),
		"--admin-listen", fmt.Sprintf("127.0.0.1:%d", adm),
		"--nats-listen", "127.0.0.1:0",
	}, s.args...)
	s.cmd = exec.Command(binary, args...)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start billfold: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("billfold exited at start:\n%s", s.logs)
		default:
		}
		if code, _ := s.get("/readyz"); code == http.StatusOK {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("billfold not ready in 30s:\n%s", s.logs)
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop sends SIGTERM and returns the exit code, failing after 20 s.
func (s *server) stop() int {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		s.kill()
		s.t.Fatal("billfold did not stop within 20s of SIGTERM")
		return -1
	}
}

// restart kills the process and starts it again on the same data dir.
func (s *server) restart() {
	s.kill()
	s.start()
}

var client = &http.Client{Timeout: 15 * time.Second}

// get GETs path on the admin listener and returns status and body.
func (s *server) get(path string) (int, []byte) {
	resp, err := client.Get(s.admin + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// getJSON GETs path on the admin listener and decodes the answer into v.
func (s *server) getJSON(path string, v any) int {
	s.t.Helper()
	code, b := s.get(path)
	if v != nil && len(b) > 0 {
		if err := json.Unmarshal(b, v); err != nil {
			s.t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return code
}

// post delivers body to a webhook endpoint with headers and returns the
// answer.
func (s *server) post(endpoint string, body []byte, headers map[string]string) (int, string, http.Header) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.public+"/webhooks/"+endpoint, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

// postAdmin POSTs a JSON body to an admin route, with the bearer token
// when one is given.
func (s *server) postAdmin(path, body, token string) (int, string, http.Header) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.admin+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

// runBillfold runs the binary to completion (at most 60 s) and returns its
// combined output and exit code.
func runBillfold(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("run billfold %v: %v", args, err)
	}
	return string(out), 0
}

// ctxT is a context bounded by 30 s and the test.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// externalNATS starts a NATS server for billfold to use with --nats-url,
// so a test can read the streams and buckets billfold writes, and returns
// its URL.
func externalNATS(t *testing.T) string {
	t.Helper()
	opts := natstest.Options(t.TempDir())
	opts.Port = natstest.FreePort(t)
	natstest.Start(t, opts)
	return fmt.Sprintf("nats://127.0.0.1:%d", opts.Port)
}

// projectorLag is the largest number of journal events, up to the
// journal's last sequence, some projector has not acknowledged; when a
// consumer cannot be read it is the whole journal.
func projectorLag(ctx context.Context, js jetstream.JetStream) uint64 {
	stream, err := js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return math.MaxUint64
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return math.MaxUint64
	}
	last := info.State.LastSeq
	gens := map[string]int{}
	for _, p := range domain.Projections {
		gens[p] = currentGeneration(ctx, js, p)
	}
	known, err := projections.FoldPositions(ctx, js, gens)
	if err != nil {
		return last
	}
	var worst uint64
	for _, p := range domain.Projections {
		worst = max(worst, last-min(known[p].Folded, last))
	}
	return worst
}

// currentGeneration is the generation a projection is at: 1 until a
// rebuild switched it.
func currentGeneration(ctx context.Context, js jetstream.JetStream, projection string) int {
	return billfold.New(js).Generation(ctx, projection)
}

// waitProjected waits until every projector has folded the whole journal.
func waitProjected(t *testing.T, js jetstream.JetStream, srv *server) {
	t.Helper()
	ctx := context.Background()
	if !assert.Eventually(t, func() bool { return projectorLag(ctx, js) == 0 }, 60*time.Second, 50*time.Millisecond, "projectors catch up") {
		t.Fatalf("lag %d\n%s", projectorLag(ctx, js), tail(srv.logs.String(), 4000))
	}
}

// tail is the end of a log, for failure messages.
func tail(s string, n int) string { return s[max(0, len(s)-n):] }
