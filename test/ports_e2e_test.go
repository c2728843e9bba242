package test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/test/natstest"
)

// A second billfold serve whose port is taken by a running one exits 1
// at once with BILLFOLD-CONFIG-INVALID, naming the flag and the address,
// for each of its three listeners; it never waits out the embedded NATS
// server's readiness timeout, and the first server keeps serving.
func TestServeOnTakenPortsFailsNamingThePort(t *testing.T) {
	natsAddr := fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t))
	first := startServer(t, t.TempDir(), nil, "--nats-listen", natsAddr)
	public, admin := strings.TrimPrefix(first.public, "http://"), strings.TrimPrefix(first.admin, "http://")

	for _, taken := range []struct{ flag, addr string }{
		{"--listen", public},
		{"--admin-listen", admin},
		{"--nats-listen", natsAddr},
	} {
		t.Run(taken.flag, func(t *testing.T) {
			args := map[string]string{"--listen": "127.0.0.1:0", "--admin-listen": "127.0.0.1:0", "--nats-listen": "127.0.0.1:0"}
			args[taken.flag] = taken.addr
			cmd := []string{"serve", "--data-dir", t.TempDir()}
			for _, f := range []string{"--listen", "--admin-listen", "--nats-listen"} {
				cmd = append(cmd, f, args[f])
			}
			_, stderr, code := runBillfoldOut(t, nil, cmd...)
			assert.Equal(t, 1, code, stderr)
			assert.Contains(t, stderr, `"code":"BILLFOLD-CONFIG-INVALID"`)
			assert.Contains(t, stderr, taken.flag+" "+taken.addr+": the port is taken")
			assert.NotContains(t, stderr, "not ready after")
		})
	}
	code, _ := first.get("/readyz")
	assert.Equal(t, http.StatusOK, code, "the running server keeps serving")
	require.Equal(t, 0, first.stop())
}
