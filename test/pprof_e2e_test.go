package test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The admin listener serves Go's profiler at /debug/pprof/ to an admin
// token only, as docs/performance.md#profiling-a-running-server shows:
// without a token, with a wrong one, or with only the API (read) token it
// is 401 BILLFOLD-UNAUTHORIZED; with the admin token the CPU and heap
// profiles are pprof's gzipped protobuf, ready for go tool pprof.
func TestProfilerNeedsTheAdminToken(t *testing.T) {
	const apiToken = "api-token-0123456789abcdef"
	srv := startServer(t, t.TempDir(), []string{"BILLFOLD_ADMIN_TOKEN=" + adminToken, "BILLFOLD_ADMIN_TOKENS=", "BILLFOLD_API_TOKEN=" + apiToken})

	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		for _, token := range []string{"", "not-the-admin-token-at-all", apiToken} {
			code, body := srv.apiGet(path, token)
			assert.Equal(t, http.StatusUnauthorized, code, "%s with %q", path, token)
			assert.Contains(t, string(body), `"code": "BILLFOLD-UNAUTHORIZED"`, "%s with %q", path, token)
		}
	}

	code, body := srv.apiGet("/debug/pprof/", adminToken)
	require.Equal(t, http.StatusOK, code, string(body))
	assert.Contains(t, string(body), "heap")
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		code, body := srv.apiGet(path, adminToken)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err, "%s is a gzipped profile", path)
		raw, err := io.ReadAll(zr)
		require.NoError(t, err, path)
		assert.NotEmpty(t, raw, path)
	}
}
