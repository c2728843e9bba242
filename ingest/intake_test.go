package ingest_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
)

// Bodies being read hold the intake budget; past it a request is answered
// 503 with Retry-After and counted, and the budget comes back when the
// bodies are read.
func TestIntakeBudget(t *testing.T) {
	reg := prometheus.NewRegistry()
	const largest = 1 << 20
	b, err := ingest.NewIntakeBudget(2*largest, largest, reg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	reading := make(chan struct{}, 4)
	srv := httptest.NewServer(b.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reading <- struct{}{}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})))
	defer srv.Close()

	// Two senders of unknown length (chunked) each hold the largest limit
	// while their bodies trickle in.
	var writers []*io.PipeWriter
	done := make(chan int, 2)
	for range 2 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		go func() {
			resp, err := http.Post(srv.URL, "application/json", pr)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		_, _ = pw.Write([]byte("{"))
		<-reading
	}
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"small":true}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.NotContains(t, string(body), "budget", "the sender gets a generic answer")
	assert.Equal(t, 1.0, counterValue(t, reg, "billfold_intake_refused_total"))

	// A Content-Length over every limit reserves nothing: the receiver
	// answers it 413 from the header.
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(strings.Repeat("x", largest+1)))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "passed to the receiver, which answers 413")
	<-reading

	for _, pw := range writers {
		require.NoError(t, pw.Close())
	}
	assert.Equal(t, http.StatusOK, <-done)
	assert.Equal(t, http.StatusOK, <-done)
	resp, err = http.Post(srv.URL, "application/json", strings.NewReader(`{"small":true}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the budget came back")
	<-reading
}

func TestIntakeBudgetSmallerThanABody(t *testing.T) {
	_, err := ingest.NewIntakeBudget(1000, 1<<20, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err))
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
