package ingest

import (
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/semaphore"

	"github.com/billfold/billfold/domain"
)

// Intake bounds. Bodies are read whole before verification (a signature
// covers the raw bytes), so without a bound on how many are read at once,
// 400 concurrent unsigned 1 MiB bodies once took the process from 195 MB
// to 970 MB resident.
const (
	// DefaultIntakeBudget is the bytes of bodies being read at once, all
	// senders together.
	DefaultIntakeBudget = 64 << 20
	// DefaultMaxConnections caps the open connections of the public
	// listener; more wait in the kernel's accept backlog.
	DefaultMaxConnections = 1024
)

// answerBusy is the generic answer past the intake budget.
var answerBusy = []byte(`{"error":"busy, retry later"}` + "\n")

// IntakeBudget is net/http middleware around the receiver: a request may
// read its body only once it holds budget bytes for it, the smaller of its
// Content-Length and the largest endpoint limit (that limit when the length
// is unknown). Past the budget the answer is 503 BILLFOLD-INTAKE-BUSY with
// Retry-After, logged and counted: providers retry a 503. A Content-Length
// over every endpoint's limit reserves nothing, since the receiver answers
// it 413 from the header without reading the body.
type IntakeBudget struct {
	sem      *semaphore.Weighted
	budget   int64
	largest  int64
	refused  prometheus.Counter
	inFlight prometheus.Gauge
	log      *slog.Logger
}

// NewIntakeBudget returns a budget of budget bytes for endpoints whose
// largest body limit is largest, registering its metrics with reg. Zero is
// DefaultIntakeBudget, or largest when that is more. A budget smaller than
// largest could never let the largest body in: BILLFOLD-CONFIG-INVALID.
func NewIntakeBudget(budget, largest int64, reg prometheus.Registerer, log *slog.Logger) (*IntakeBudget, error) {
	if budget <= 0 {
		budget = max(DefaultIntakeBudget, largest)
	}
	if budget < largest {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "--intake-budget %d is smaller than the largest max_body_bytes (%d): that body could never be read", budget, largest)
	}
	b := &IntakeBudget{
		sem: semaphore.NewWeighted(budget), budget: budget, largest: largest, log: log,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billfold_intake_refused_total",
			Help: "Requests answered 503 BILLFOLD-INTAKE-BUSY because the bodies being read already held the intake budget.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billfold_intake_bytes_reserved",
			Help: "Bytes of the intake budget held by bodies being read now.",
		}),
	}
	reg.MustRegister(b.refused, b.inFlight)
	return b, nil
}

// Wrap returns h behind the budget.
func (b *IntakeBudget) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.largest
		if r.ContentLength >= 0 {
			n = r.ContentLength
		}
		if n > b.largest {
			n = 0 // refused 413 from the header
		}
		if n > 0 {
			if !b.sem.TryAcquire(n) {
				b.refused.Inc()
				b.log.Warn("delivery refused: the intake budget is spent", "code", domain.CodeIntakeBusy,
					"reserve", n, "budget", b.budget, "source", r.RemoteAddr)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write(answerBusy)
				return
			}
			b.inFlight.Add(float64(n))
			defer func() { b.sem.Release(n); b.inFlight.Sub(float64(n)) }()
		}
		h.ServeHTTP(w, r)
	})
}

// LimitConnections caps l at n open connections (DefaultMaxConnections
// when n <= 0).
func LimitConnections(l net.Listener, n int) net.Listener {
	if n <= 0 {
		n = DefaultMaxConnections
	}
	return netutil.LimitListener(l, n)
}
