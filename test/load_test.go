package test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is what a sender saw for one event: the answer's status (0: no
// answer) and Retry-After header, when the delivery was sent and when it
// was answered.
type result struct {
	id         string
	status     int
	retryAfter string
	sent, at   time.Time
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
		sent := time.Now()
		code, _, h := srvs[i%len(srvs)].post("stripe", body, stripeSig(body, sent, stripeSecret))
		g.mu.Lock()
		g.results = append(g.results, result{id: id, status: code, retryAfter: h.Get("Retry-After"), sent: sent, at: time.Now()})
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

// unavailableWindow is how long senders were turned away: from the
// sending of the earliest delivery not answered 200 to the latest such
// answer (zero when there was none); and the number of those deliveries.
func unavailableWindow(results []result) (time.Duration, int) {
	var first, last time.Time
	n := 0
	for _, r := range results {
		if r.status != 200 {
			n++
			if first.IsZero() || r.sent.Before(first) {
				first = r.sent
			}
			if r.at.After(last) {
				last = r.at
			}
		}
	}
	return last.Sub(first), n
}

// signedDelivery is one provider event as a load generator sends it: the
// body is fixed, the signature is made at each attempt (a provider signs
// every retry anew, so a late retry is never too old).
type signedDelivery struct {
	id   string
	body []byte
}

// providerAttempt is one HTTP attempt of a delivery: the status (0: no
// answer), the Retry-After header, when it was sent and when answered.
type providerAttempt struct {
	status     int
	retryAfter string
	sent, at   time.Time
}

// providerAttempts is what a provider saw for one event: every attempt, in
// order.
type providerAttempts struct {
	id       string
	attempts []providerAttempt
}

// acked reports whether the event was finally answered 200.
func (a providerAttempts) acked() bool {
	return len(a.attempts) > 0 && a.attempts[len(a.attempts)-1].status == http.StatusOK
}

// providerLoad delivers a fixed list of signed Stripe events as a provider
// does: each event is sent until it is answered 200, and an event that got
// no answer or any other status is sent again after a short pause. Workers
// start a new event at most every interval each. Bounded: it never sends
// more than the list, and after halt it gives the events in flight until
// a deadline to be answered.
type providerLoad struct {
	target   func() string // the public listener's URL, read at each attempt
	list     []signedDelivery
	interval time.Duration
	http     *http.Client

	next     atomic.Int64
	stop     chan struct{}
	deadline atomic.Pointer[time.Time] // retries give up after it; set by halt
	done     chan struct{}

	mu      sync.Mutex
	results []providerAttempts
	seen    []providerAttempt // every attempt so far, as answered
}

// providerRetryPause is how long the generator waits before re-sending an
// event that was not answered 200: short, so that a run of kills costs
// seconds, not a provider's hours.
const providerRetryPause = 50 * time.Millisecond

func startProviderLoad(target func() string, list []signedDelivery, workers int, interval time.Duration) *providerLoad {
	g := &providerLoad{target: target, list: list, interval: interval, stop: make(chan struct{}), done: make(chan struct{}),
		http: &http.Client{Timeout: 10 * time.Second}}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(g.work)
	}
	go func() { wg.Wait(); close(g.done) }()
	return g
}

func (g *providerLoad) work() {
	tick := time.NewTicker(g.interval)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		i := int(g.next.Add(1) - 1)
		if i >= len(g.list) {
			return
		}
		g.record(g.deliver(g.list[i]))
	}
}

// deliver sends d until it is answered 200 or, after halt, the deadline
// passes.
func (g *providerLoad) deliver(d signedDelivery) providerAttempts {
	a := providerAttempts{id: d.id}
	for {
		at := g.post(d)
		a.attempts = append(a.attempts, at)
		g.mu.Lock()
		g.seen = append(g.seen, at)
		g.mu.Unlock()
		if at.status == http.StatusOK {
			return a
		}
		if dl := g.deadline.Load(); dl != nil && time.Now().After(*dl) {
			return a
		}
		time.Sleep(providerRetryPause)
	}
}

func (g *providerLoad) post(d signedDelivery) providerAttempt {
	sent := time.Now()
	status, retryAfter := g.send(d, sent)
	return providerAttempt{status: status, retryAfter: retryAfter, sent: sent, at: time.Now()}
}

// send posts d signed at now and returns the status (0: no answer) and
// the Retry-After header.
func (g *providerLoad) send(d signedDelivery, now time.Time) (int, string) {
	req, err := http.NewRequest(http.MethodPost, g.target()+"/webhooks/stripe", bytes.NewReader(d.body))
	if err != nil {
		return 0, ""
	}
	for k, v := range stripeSig(d.body, now, stripeSecret) {
		req.Header.Set(k, v)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return 0, ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func (g *providerLoad) record(a providerAttempts) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.results = append(g.results, a)
}

// answered returns every attempt answered so far (or given up on), in
// the order the answers came, also of events still being re-sent.
func (g *providerLoad) answered() []providerAttempt {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.seen)
}

// halt stops starting new events, gives the ones in flight until grace to
// be answered 200, and returns every event's attempts.
func (g *providerLoad) halt(grace time.Duration) []providerAttempts {
	dl := time.Now().Add(grace)
	g.deadline.Store(&dl)
	close(g.stop)
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.results)
}
