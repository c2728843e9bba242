package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the intake metrics. Label values are endpoint names, outcomes
// and error codes: never an event id, a secret or anything from a body.
type Metrics struct {
	Deliveries            *prometheus.CounterVec
	SignatureFailures     *prometheus.CounterVec
	AckDuration           *prometheus.HistogramVec
	JournalAppendFailures *prometheus.CounterVec
	Duplicates            *prometheus.CounterVec
	DeliveryLogFailures   prometheus.Counter
	DeliveryLogSampled    *prometheus.CounterVec
	Unsigned              *prometheus.CounterVec
	Bypassed              *prometheus.CounterVec
}

// NewMetrics creates the intake metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_deliveries_total",
			Help: "Webhook deliveries by endpoint and outcome (accepted, duplicate, ignored, rejected, malformed, too_large, unavailable, misconfigured, rate_limited).",
		}, []string{"endpoint", "outcome"}),
		SignatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_signature_failures_total",
			Help: "Deliveries whose verification failed, by endpoint and reason code.",
		}, []string{"endpoint", "code"}),
		AckDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "billfold_ack_duration_seconds",
			Help:    "Time from a delivery's arrival to its answer, by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"endpoint"}),
		JournalAppendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_journal_append_failures_total",
			Help: "Verified deliveries the journal did not acknowledge (answered 503), by endpoint.",
		}, []string{"endpoint"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_duplicate_deliveries_total",
			Help: "Verified deliveries of an event id already journaled, by endpoint.",
		}, []string{"endpoint"}),
		DeliveryLogFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billfold_delivery_log_failures_total",
			Help: "Delivery log entries that could not be written (queue full or stream unavailable); accepted deliveries' entries are retried until written and count each failed try.",
		}),
		DeliveryLogSampled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_delivery_log_sampled_total",
			Help: "Refused deliveries counted but not written to the delivery log because their source address sent more than its sample, by outcome.",
		}, []string{"outcome"}),
		Unsigned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_unsigned_deliveries_total",
			Help: "Deliveries journaled by an endpoint configured unsigned: never verified. Alert on it.",
		}, []string{"endpoint"}),
		Bypassed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billfold_bypassed_deliveries_total",
			Help: "Deliveries that failed verification and were let through by serve --insecure-test-bypass.",
		}, []string{"endpoint"}),
	}
	reg.MustRegister(m.Deliveries, m.SignatureFailures, m.AckDuration, m.JournalAppendFailures, m.Duplicates,
		m.DeliveryLogFailures, m.DeliveryLogSampled, m.Unsigned, m.Bypassed)
	return m
}
