package test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// result is what a sender saw for one event.
type result struct {
	id     string
	status int
	at     time.Time
}

// loadGen sends signed Stripe deliveries, each a new event, to a set of
// servers in turn from loadWorkers concurrent senders, each at most every
// interval, until stopped, keeping every answer. Bounded: it stops by itself
// after max deliveries.
type loadGen struct {
	mu      sync.Mutex
	results []result
	stop    chan struct{}
	done    chan struct{}
}

func startLoad(targets func() []*server, prefix string, interval time.Duration, max int) *loadGen {
	g := &loadGen{stop: make(chan struct{}), done: make(chan struct{})}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() { g.send(targets, prefix, interval, max, &next) })
	}
	go func() { wg.Wait(); close(g.done) }()
	return g
}

const loadWorkers = 4

func (g *loadGen) send(targets func() []*server, prefix string, interval time.Duration, max int, next *atomic.Int64) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		i := int(next.Add(1) - 1)
		if i >= max {
			return
		}
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		srvs := targets()
		id := fmt.Sprintf("%s_%06d", prefix, i)
		body := stripeBody(id, "customer.created", false)
		code, _, _ := srvs[i%len(srvs)].post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
		g.mu.Lock()
		g.results = append(g.results, result{id: id, status: code, at: time.Now()})
		g.mu.Unlock()
	}
}

func (g *loadGen) halt() []result {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]result(nil), g.results...)
}

// unavailableWindow is the span from the first non-200 answer to the last
// one in results (zero when there was none).
func unavailableWindow(results []result) (time.Duration, int) {
	var first, last time.Time
	n := 0
	for _, r := range results {
		if r.status != 200 {
			n++
			if first.IsZero() {
				first = r.at
			}
			last = r.at
		}
	}
	return last.Sub(first), n
}
