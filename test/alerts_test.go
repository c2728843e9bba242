package test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections"
)

// Every metric the shipped Prometheus rules name is one billfold exports,
// and every recorded series they read is one they record, so an alert
// cannot be silently dead.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	reg := &recordingRegisterer{}
	ingest.NewMetrics(reg)
	projections.NewProjectorMetrics(reg)
	projections.NewReplayMetrics(reg)
	exported := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([a-z_:]+)"`)
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				exported[m[1]] = true
			}
		}
	}
	require.Contains(t, exported, "billfold_deliveries_total")

	raw, err := os.ReadFile("../docs/prometheus/billfold-rules.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Record, Alert, Expr string
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	metric := regexp.MustCompile(`\bbillfold_[a-z_]+`)
	recorded := map[string]bool{}
	named := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Expr)
			if r.Record != "" {
				recorded[r.Record] = true
			}
			for _, m := range metric.FindAllString(r.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && exported[b] {
						base = b
					}
				}
				assert.True(t, exported[base], "rule %s%s names %s, which billfold does not export", r.Record, r.Alert, m)
				named++
			}
		}
	}
	assert.Greater(t, named, 6)
	assert.NotEmpty(t, recorded)

	// Every recording-rule series an expression reads (billfold:...) is
	// one the file records, so an alert on a misspelt or removed rule
	// cannot sit silent.
	ruleRef := regexp.MustCompile(`\bbillfold:[a-zA-Z0-9_:]+`)
	referenced := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range ruleRef.FindAllString(r.Expr, -1) {
				assert.True(t, recorded[m], "rule %s%s reads %s, which no rule records", r.Record, r.Alert, m)
				referenced++
			}
		}
	}
	assert.Positive(t, referenced, "the alerts read the recorded series")
}

// recordingRegisterer keeps what billfold registers, so the test sees every
// metric, including vectors that have no samples yet.
type recordingRegisterer struct{ collectors []prometheus.Collector }

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}

func (r *recordingRegisterer) Unregister(prometheus.Collector) bool { return false }
