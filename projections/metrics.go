package projections

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billfold/billfold/domain"
)

// ProjectorMetrics are the projectors' metrics.
type ProjectorMetrics struct {
	Applied *prometheus.CounterVec
	Skipped *prometheus.CounterVec
	Failed  *prometheus.CounterVec
	// RetriesExhausted counts events billfold will not try again on its
	// own (dead letters whose retry state is exhausted), by class.
	RetriesExhausted *prometheus.CounterVec
	Lag              *prometheus.GaugeVec
	DeadLetters      prometheus.Gauge
	// Paused is 1 for a projection an operator paused.
	Paused *prometheus.GaugeVec
}

// NewProjectorMetrics creates the projector metrics and registers them.
func NewProjectorMetrics(reg prometheus.Registerer) *ProjectorMetrics {
	m := &ProjectorMetrics{
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_projector_events_applied_total",
			Help: "Journal events folded into a projection.",
		}, []string{"projection"}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_projector_events_skipped_total",
			Help: "Journal events a projection has no reducer for.",
		}, []string{"projection"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_projector_events_failed_total",
			Help: "Journal events a projection could not apply (dead-lettered), by code.",
		}, []string{"projection", "code"}),
		RetriesExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_projector_retries_exhausted_total",
			Help: "Events a projection gave up on: dead-lettered with no automatic retry left, by class (transient: the retries ran out; permanent: the reducer refused it). Alert on it.",
		}, []string{"projection", "class"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "billfold_projector_lag_events",
			Help: "Journal events not yet folded into a projection (journal head minus acknowledged).",
		}, []string{"projection"}),
		DeadLetters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billfold_dead_letters",
			Help: "Dead letters waiting for an operator.",
		}),
	}
	m.Paused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "billfold_projection_paused",
		Help: "1 while an operator has paused the projection (billfold pause): intake journals, its projectors do not fold.",
	}, []string{"projection"})
	reg.MustRegister(m.Applied, m.Skipped, m.Failed, m.RetriesExhausted, m.Lag, m.DeadLetters, m.Paused)
	return m
}

func (m *ProjectorMetrics) applied(p string) {
	if m != nil {
		m.Applied.WithLabelValues(p).Inc()
	}
}

func (m *ProjectorMetrics) skipped(p string) {
	if m != nil {
		m.Skipped.WithLabelValues(p).Inc()
	}
}

func (m *ProjectorMetrics) failed(p string, code domain.Code) {
	if m != nil {
		m.Failed.WithLabelValues(p, string(code)).Inc()
	}
}

// exhausted counts a dead letter that has no automatic retry left.
func (m *ProjectorMetrics) exhausted(p, class string) {
	if m != nil {
		m.RetriesExhausted.WithLabelValues(p, class).Inc()
	}
}

// ReplayMetrics count what requeues, replays and rebuilds did: the
// replay success SLO is built on billfold_replay_events_total.
type ReplayMetrics struct {
	Events   *prometheus.CounterVec
	Finished *prometheus.CounterVec
}

// NewReplayMetrics creates the replay metrics and registers them.
func NewReplayMetrics(reg prometheus.Registerer) *ReplayMetrics {
	m := &ReplayMetrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_replay_events_total",
			Help: "Events applied again by an operator's requeue, a replay or a rebuild (dead letters it settled), by outcome: applied or failed.",
		}, []string{"kind", "outcome"}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_rebuilds_finished_total",
			Help: "Rebuilds and replays that ended, by kind and status: done, failed, cancelled, interrupted.",
		}, []string{"kind", "status"}),
	}
	reg.MustRegister(m.Events, m.Finished)
	return m
}

// CountReplayed counts one event a requeue, replay or rebuild (kind)
// applied or failed (outcome).
func (m *ReplayMetrics) CountReplayed(kind, outcome string) {
	if m != nil {
		m.Events.WithLabelValues(kind, outcome).Inc()
	}
}

// CountFinished counts a replay or rebuild (kind) that ended with status.
func (m *ReplayMetrics) CountFinished(kind, status string) {
	if m != nil {
		m.Finished.WithLabelValues(kind, status).Inc()
	}
}
