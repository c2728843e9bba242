package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The memory flood: 400 concurrent unsigned deliveries of about
// 1 MB (once 195 MB → 970 MB resident, unbounded). The intake budget lets
// only its worth of bodies be read at once: every delivery is answered
// 200 or 503 with Retry-After (a provider retries it), the refusals are
// counted, and the server's peak resident memory is logged as a figure.
func TestMemoryFloodMeetsTheIntakeBudget(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, fmt.Sprintf(`
endpoints:
  - name: %s
    provider: stripe
    unsigned: true
`, unsignedName))
	srv := startServer(t, filepath.Join(dir, "data"), nil, "--config", config, "--rate-limit", "0", "--log-level", "error")

	const senders, size = 400, 1_000_000
	statuses := map[int]int{}
	withoutRetryAfter := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			head := fmt.Sprintf(`{"id":"evt_flood_%d","object":"event","type":"customer.created","created":1700000000,"data":{"object":{"id":"cus_flood_%d","object":"customer","description":"`, i, i)
			tail := `"}}}`
			body := head + strings.Repeat("x", size-len(head)-len(tail)) + tail
			code, _, h := srv.post(unsignedName, []byte(body), nil)
			mu.Lock()
			defer mu.Unlock()
			statuses[code]++
			if code == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
				withoutRetryAfter++
			}
		})
	}
	wg.Wait()
	assert.Equal(t, senders, statuses[http.StatusOK]+statuses[http.StatusServiceUnavailable], "every delivery answered 200 or 503: %v", statuses)
	assert.Positive(t, statuses[http.StatusOK], "the budget lets deliveries through: %v", statuses)
	assert.Zero(t, withoutRetryAfter, "every 503 carries Retry-After")
	_, metrics := srv.get("/metrics")
	refused := regexp.MustCompile(`(?m)^billfold_intake_refused_total (\d+)`).FindStringSubmatch(string(metrics))
	require.NotNil(t, refused, "billfold_intake_refused_total is exported")
	peak := "unknown (no /proc)"
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid)); err == nil {
		if m := regexp.MustCompile(`VmHWM:\s+(\d+ kB)`).FindStringSubmatch(string(status)); m != nil {
			peak = m[1]
		}
	}
	t.Logf("memory flood: %d concurrent unsigned deliveries of %d bytes: %v; %s refused by the intake budget; peak resident memory of serve %s",
		senders, size, statuses, refused[1], peak)
}
