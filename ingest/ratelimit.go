package ingest

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is the per-source-address token bucket of the public listener.
type RateLimit struct {
	// PerSecond is the sustained rate per source address; zero disables
	// rate limiting.
	PerSecond float64
	// Burst is how many deliveries a source may send at once.
	Burst int
}

// DefaultRateLimit is generous: a provider's burst after an outage must not
// be throttled, only a runaway or hostile sender.
var DefaultRateLimit = RateLimit{PerSecond: 1000, Burst: 2000}

// sourceLimiter keeps one token bucket per source address and forgets
// addresses idle for longer than idleAfter, so its memory is bounded by the
// senders of the last few minutes.
type sourceLimiter struct {
	limit     RateLimit
	idleAfter time.Duration

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

func newSourceLimiter(l RateLimit) *sourceLimiter {
	if l.PerSecond <= 0 {
		return nil
	}
	if l.Burst <= 0 {
		l.Burst = max(1, int(l.PerSecond))
	}
	return &sourceLimiter{limit: l, idleAfter: 5 * time.Minute, buckets: map[string]*bucket{}}
}

// allow takes a token for source at now; false means the source is over
// its rate. A nil limiter allows everything.
func (s *sourceLimiter) allow(source string, now time.Time) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) > s.idleAfter {
		for k, b := range s.buckets {
			if now.Sub(b.lastSeen) > s.idleAfter {
				delete(s.buckets, k)
			}
		}
		s.lastSweep = now
	}
	b := s.buckets[source]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(s.limit.PerSecond), s.limit.Burst)}
		s.buckets[source] = b
	}
	b.lastSeen = now
	return b.lim.AllowN(now, 1)
}
