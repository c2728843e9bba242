package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/cmd/billfold/internal/bench"
)

// A CI-sized `billfold bench` runs every phase end to end and reports every
// row, in JSON. It proves the command works; it asserts no figure, since
// CI machines are shared and noisy.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server and every bench phase")
	}
	args := []string{"bench", "--events", "5000", "--concurrency", "16", "--duration", "2s", "--rate", "500",
		"--subscriptions", "2000", "--queries", "400", "-o", "json"}
	if raceEnabled {
		// The race detector makes every phase several times slower; a
		// tenth of the work covers the same code.
		args = []string{"bench", "--events", "500", "--concurrency", "8", "--duration", "1s", "--rate", "200",
			"--subscriptions", "200", "--queries", "100", "-o", "json"}
	}
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())

	var report bench.Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &report), stdout.String())
	assert.Equal(t, []string{"ingest", "e2e", "lag", "queries"}, report.Phases)
	assert.Positive(t, report.Machine.CPUs)
	want := map[string][]string{
		"ingest": {"verified deliveries", "verified deliveries vs bare HTTP", "ACK p50 at full rate", "ACK p95 at full rate",
			"ACK p99 at full rate", "ACK p99 at half rate"},
		"e2e": {"time to acknowledge every delivery", "time until every projection folded the last event",
			"events folded per second end to end", "time until the change feed relayed the last write",
			"ordered read of the journal", "CPU per event (intake + fold + feed)", "JetStream messages stored and delivered per event"},
		"lag": {"200 to readable p50", "200 to readable p99", "200 to readable max"},
		"queries": {"subscriptions in the store", "point lookup", "point lookup p99 at half rate",
			"first page by state", "first page by state p99 at half rate",
			"first page by provider", "first page by provider p99 at half rate",
			"first page by customer", "first page by customer p99 at half rate",
			"peak resident memory while loading", "peak resident memory with the records loaded", "GC share of CPU", "query index ready after a restart"},
	}
	got := map[string][]string{}
	for _, r := range report.Rows {
		got[r.Phase] = append(got[r.Phase], r.Figure)
		if r.Figure == "JetStream messages stored and delivered per event" {
			// At least the journal append and the four projectors' deliveries.
			assert.GreaterOrEqual(t, r.Value, 5.0, r.Note)
		}
		assert.NotEmpty(t, r.Unit, "%s / %s", r.Phase, r.Figure)
		if r.Target != "" {
			assert.NotNil(t, r.Met, "%s / %s has a target but no verdict", r.Phase, r.Figure)
		}
	}
	assert.Equal(t, want, got)
}

// An unknown phase is a usage error.
func TestBenchUnknownPhase(t *testing.T) {
	var stderr bytes.Buffer
	assert.Equal(t, 2, run([]string{"bench", "--phases", "nope"}, &bytes.Buffer{}, &stderr))
}
