package gameday

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricSumAddsTheMatchingSeries(t *testing.T) {
	text := `# HELP billfold_signature_failures_total Deliveries whose verification failed.
# TYPE billfold_signature_failures_total counter
billfold_signature_failures_total{code="BILLFOLD-SIG-MISMATCH",endpoint="clerk"} 2
billfold_signature_failures_total{code="BILLFOLD-SIG-MISMATCH",endpoint="stripe"} 8
billfold_signature_failures_total{code="BILLFOLD-SIG-TOO-OLD",endpoint="stripe"} 1
billfold_signature_failures_total_other{code="BILLFOLD-SIG-MISMATCH"} 100
billfold_dead_letters 3
`
	assert.Equal(t, 10.0, metricSum(text, "billfold_signature_failures_total", map[string]string{"code": "BILLFOLD-SIG-MISMATCH"}))
	assert.Equal(t, 8.0, metricSum(text, "billfold_signature_failures_total", map[string]string{"code": "BILLFOLD-SIG-MISMATCH", "endpoint": "stripe"}))
	assert.Equal(t, 11.0, metricSum(text, "billfold_signature_failures_total", nil))
	assert.Equal(t, 3.0, metricSum(text, "billfold_dead_letters", nil))
	assert.Zero(t, metricSum(text, "billfold_missing", nil))
}

func TestPercentileIsTheNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, percentile(ds, .5))
	assert.Equal(t, 99*time.Millisecond, percentile(ds, .99))
	assert.Equal(t, 100*time.Millisecond, percentile(ds, 1))
	assert.Zero(t, percentile(nil, .99))
}

func TestSelectDrills(t *testing.T) {
	all, err := selectDrills("")
	require.NoError(t, err)
	assert.Len(t, all, len(drills))
	some, err := selectDrills("dead-letter-replay, signature-failure")
	require.NoError(t, err)
	assert.Equal(t, []string{"signature-failure", "dead-letter-replay"}, []string{some[0].name, some[1].name}, "in run order")
	_, err = selectDrills("chaos-monkey")
	assert.ErrorContains(t, err, "want one of")
}

// A drill passes only when it ran to its end, checked something, and every
// check passed; the report keeps its figures in order.
func TestDrillVerdicts(t *testing.T) {
	pass := drill{name: "pass", run: func(_ context.Context, r *drillRun) error {
		r.figure("b_second", 2)
		r.figure("a_first", 1)
		r.check("holds", true, "")
		return nil
	}}
	failedCheck := drill{name: "failed-check", run: func(_ context.Context, r *drillRun) error {
		r.check("holds", true, "")
		r.check("does not hold", false, "%d missing", 3)
		return nil
	}}
	stopped := drill{name: "stopped", run: func(_ context.Context, r *drillRun) error {
		r.check("holds", true, "")
		return errors.New("engine did not start")
	}}
	nothing := drill{name: "checked-nothing", run: func(context.Context, *drillRun) error { return nil }}
	rep, err := runDrills(context.Background(), nil, []drill{pass, failedCheck, stopped, nothing}, gamedayOptions{}, nil) // no drill starts an engine
	require.NoError(t, err)
	assert.False(t, rep.Passed)
	verdicts := map[string]bool{}
	for _, d := range rep.Drills {
		verdicts[d.Name] = d.Passed
	}
	assert.Equal(t, map[string]bool{"pass": true, "failed-check": false, "stopped": false, "checked-nothing": false}, verdicts)

	b, err := json.Marshal(rep.Drills[0].Figures)
	require.NoError(t, err)
	assert.Equal(t, `{"b_second":2,"a_first":1}`, string(b))

	var out bytes.Buffer
	rep.print(&out)
	assert.Contains(t, out.String(), "PASS  pass")
	assert.Contains(t, out.String(), "FAIL  failed-check")
	assert.Contains(t, out.String(), "failed: does not hold: 3 missing")
	assert.Contains(t, out.String(), "stopped: engine did not start")
	assert.Contains(t, out.String(), "4 drills in")
	assert.Contains(t, out.String(), "1 passed, 3 failed")
}

func TestDrillRootKeepsOnlyAnEmptyDirectory(t *testing.T) {
	tmp, err := drillRoot("")
	require.NoError(t, err)
	defer os.RemoveAll(tmp)
	assert.DirExists(t, tmp)

	keep := filepath.Join(t.TempDir(), "kept", "run")
	root, err := drillRoot(keep)
	require.NoError(t, err)
	assert.Equal(t, keep, root)
	assert.DirExists(t, keep, "created")

	require.NoError(t, os.WriteFile(filepath.Join(keep, "earlier"), nil, 0o600))
	_, err = drillRoot(keep)
	assert.ErrorContains(t, err, "not empty", "an earlier run's stores are never mistaken for this one's")
}
