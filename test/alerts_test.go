package test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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

// The operator alerts the webhook handbook asks for watch series the real
// server moves: before anything happens neither BillfoldRetriesExhausted
// nor BillfoldUnsignedDelivery would fire on its /metrics; after an event a
// projection gives up on and one unsigned delivery, both would.
func TestOperatorAlertsFireOnTheServersMetrics(t *testing.T) {
	srv := startUnsignedServer(t, []string{"BILLFOLD_FAIL_EVENT_TYPES=customer.updated"})
	alerts := alertExprs(t)
	firing := func(name string) bool {
		_, metrics := srv.get("/metrics")
		return wouldFire(t, alerts[name], string(metrics))
	}
	for _, name := range []string{"BillfoldRetriesExhausted", "BillfoldUnsignedDelivery"} {
		require.Contains(t, alerts, name)
		assert.False(t, firing(name), "%s before anything happened", name)
	}

	body := stripeBody("evt_alert_given_up", "customer.updated", false)
	code, answer, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
	require.Equal(t, 200, code, answer)
	require.Eventually(t, func() bool { return firing("BillfoldRetriesExhausted") }, 30*time.Second, 100*time.Millisecond,
		"an event the projections refused fires BillfoldRetriesExhausted")
	assert.False(t, firing("BillfoldUnsignedDelivery"), "a signed delivery is not unsigned")

	code, answer, _ = srv.post(unsignedName, stripeBody("evt_alert_unsigned", "customer.created", false), nil)
	require.Equal(t, 200, code, answer)
	assert.True(t, firing("BillfoldUnsignedDelivery"), "one unsigned delivery fires BillfoldUnsignedDelivery")
}

// alertExprs reads the alerting rules' expressions by alert name.
func alertExprs(t *testing.T) map[string]string {
	raw, err := os.ReadFile("../docs/prometheus/billfold-rules.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string } `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	out := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r.Expr
			}
		}
	}
	return out
}

// wouldFire evaluates an "any increase" alert on a first scrape, where an
// increase is the counter's value: expr must be terms of the form
// `sum by (...) (increase(<counter>[<range>])) > 0` joined by `or`, and
// fires when any term's counter, summed over its series, is positive.
func wouldFire(t *testing.T, expr, metrics string) bool {
	term := regexp.MustCompile(`^sum by \([a-z_, ]+\) \(increase\((billfold_[a-z_]+)\[[0-9]+m\]\)\) > 0$`)
	fires := false
	for _, part := range strings.Split(strings.TrimSpace(expr), " or ") {
		m := term.FindStringSubmatch(strings.TrimSpace(part))
		require.NotNil(t, m, "term %q is not an any-increase term", part)
		var sum float64
		for _, line := range strings.Split(metrics, "\n") {
			name, rest, ok := strings.Cut(line, "{")
			if !ok || name != m[1] {
				continue
			}
			_, value, _ := strings.Cut(rest, "} ")
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(t, err, line)
			sum += v
		}
		fires = fires || sum > 0
	}
	return fires
}
