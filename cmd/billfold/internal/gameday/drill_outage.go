package gameday

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
)

// providerEvent is one event the drills' provider sends until it is
// answered 200.
type providerEvent struct {
	id      string
	body    []byte
	user    string // a top-up's user; "" for a customer
	credits int
}

// providerAttempt is one answer the provider got.
type providerAttempt struct {
	status     int // 0: no answer
	retryAfter string
	sent, at   time.Time
}

// drillProvider sends new signed Stripe events to an engine as a provider
// does, from a few workers at a steady rate: each event until it is
// answered 200, re-sent after a short pause when it got no answer or any
// other status. Bounded: it stops starting events at halt or after max,
// and gives up on the ones in flight at the deadline halt sets.
type drillProvider struct {
	engine   *drillEngine
	secret   string
	prefix   string
	max      int
	next     atomic.Int64
	stop     chan struct{}
	deadline atomic.Pointer[time.Time]
	done     chan struct{}

	mu       sync.Mutex
	events   []providerEvent
	attempts map[string][]providerAttempt
}

func startDrillProvider(ctx context.Context, e *drillEngine, secret, prefix string, workers, max int, interval time.Duration) *drillProvider {
	p := &drillProvider{engine: e, secret: secret, prefix: prefix, max: max, stop: make(chan struct{}), done: make(chan struct{}),
		attempts: map[string][]providerAttempt{}}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				i := int(p.next.Add(1) - 1)
				if i >= p.max {
					return
				}
				p.send(ctx, p.event(i))
			}
		})
	}
	go func() { wg.Wait(); close(p.done) }()
	return p
}

// event is the i-th event: every fourth a 10-credit top-up for one of
// three users, the others new customers.
func (p *drillProvider) event(i int) providerEvent {
	id := fmt.Sprintf("%s_%05d", p.prefix, i)
	now := time.Now()
	if i%4 == 3 {
		user := fmt.Sprintf("user_%s_%d", p.prefix, i%3)
		return providerEvent{id: id, body: topUpEvent(id, "pi_"+id, user, 10, now), user: user, credits: 10}
	}
	return providerEvent{id: id, body: samples.Stripe{EventID: id, Type: "customer.created", Created: now, CustomerID: "cus_" + id}.Event()}
}

func (p *drillProvider) send(ctx context.Context, ev providerEvent) {
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	for ctx.Err() == nil {
		s, err := samples.Sign(domain.Stripe, p.secret, ev.body, time.Now())
		if err != nil {
			return
		}
		sent := time.Now()
		code, h := p.engine.deliver(ctx, "stripe", s)
		a := providerAttempt{status: code, sent: sent, at: time.Now()}
		if h != nil {
			a.retryAfter = h.Get("Retry-After")
		}
		p.mu.Lock()
		p.attempts[ev.id] = append(p.attempts[ev.id], a)
		p.mu.Unlock()
		if code == http.StatusOK {
			return
		}
		if dl := p.deadline.Load(); dl != nil && time.Now().After(*dl) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// halt stops starting events and gives the ones in flight until grace to
// be answered 200.
func (p *drillProvider) halt(grace time.Duration) {
	dl := time.Now().Add(grace)
	p.deadline.Store(&dl)
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// answers returns every attempt of every event, in the order sent.
func (p *drillProvider) answers() ([]providerEvent, map[string][]providerAttempt) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]providerEvent(nil), p.events...), p.attempts
}

// drillJournalOutage serves from a separate NATS server and shuts it down
// under load: deliveries must get 503 with Retry-After (never 200), and
// /readyz 503; started again on the same store, billfold must recover
// without a restart. The provider re-sends what got no 200; in the end
// every event is journaled exactly once, each top-up credited once, and
// verify finds the projections equal to a clean fold.
func drillJournalOutage(ctx context.Context, r *drillRun) error {
	ns, err := r.startNATS("nats")
	if err != nil {
		return err
	}
	url := ns.URL()
	e, err := r.startEngine(ctx, "engine", nil, func(o *local.Options) { o.NATSURL, o.AppendTimeout = url, time.Second })
	if err != nil {
		return err
	}
	load := startDrillProvider(ctx, e, r.secrets[domain.Stripe], "evt_gameday_outage", 4, 4000, 20*time.Millisecond)
	defer load.halt(0)
	sleepCtx(ctx, 700*time.Millisecond)

	ns.stop()
	down := time.Now()
	err = waitFor(ctx, 10*time.Second, func() bool { return e.readyz(ctx) == http.StatusServiceUnavailable }, "/readyz did not go 503")
	r.check("/readyz answers 503 while the journal is down", err == nil, "%s", errDetail(err))
	r.figure("readyz_503_after_s", secs(time.Since(down)))
	sleepCtx(ctx, 1500*time.Millisecond)

	if err := ns.start(); err != nil { // the same store and port
		return fmt.Errorf("restart NATS on its store: %w", err)
	}
	up := time.Now()
	err = waitFor(ctx, 20*time.Second, func() bool { return e.readyz(ctx) == http.StatusOK }, "/readyz did not come back")
	r.check("billfold recovers without a restart: /readyz 200 again", err == nil, "%s", errDetail(err))
	r.figure("journal_down_s", secs(up.Sub(down)))
	r.figure("recovered_after_nats_back_s", secs(time.Since(up)))
	sleepCtx(ctx, 700*time.Millisecond)
	load.halt(20 * time.Second)
	select {
	case <-e.Done():
		return fmt.Errorf("the engine stopped during the outage: %v", e.Err())
	default:
	}

	events, attempts := load.answers()
	var answers, ok, unavailable, noAnswer, other, withoutRetryAfter, okWhileDown, unanswered int
	var first, last time.Time
	for _, ev := range events {
		as := attempts[ev.id]
		if len(as) == 0 || as[len(as)-1].status != http.StatusOK {
			unanswered++
		}
		for _, a := range as {
			answers++
			switch a.status {
			case http.StatusOK:
				ok++
				// Sent after NATS stopped and answered before it was back:
				// nothing could have acknowledged it. (Judging by the answer
				// time alone counts appends acknowledged just before the stop
				// whose answer a busy machine delivered late.)
				if a.sent.After(down) && a.at.Before(up) {
					okWhileDown++
				}
				continue
			case http.StatusServiceUnavailable:
				unavailable++
				if a.retryAfter == "" {
					withoutRetryAfter++
				}
			case 0:
				noAnswer++
			default: // a 500, a 400 or a 429 tells the provider something else than "re-send later"
				other++
			}
			// The window runs from the first refused attempt's sending to
			// the last refused answer: how long a provider was turned away.
			if first.IsZero() || a.sent.Before(first) {
				first = a.sent
			}
			if a.at.After(last) {
				last = a.at
			}
		}
	}
	r.figure("deliveries_sent", len(events))
	r.figure("http_attempts", answers)
	r.figure("acknowledged", len(events)-unanswered)
	r.figure("answered_503", unavailable)
	r.figure("no_answer", noAnswer)
	r.figure("answered_other", other)
	r.figure("unavailability_window_s", secs(last.Sub(first)))
	r.check("the load ran through the outage: deliveries got 503", unavailable > 0, "%d answers 503", unavailable)
	r.check("every 503 carries Retry-After", withoutRetryAfter == 0, "%d without", withoutRetryAfter)
	r.check("every refusal is a 503: no other status, no missing answer", other == 0 && noAnswer == 0, "%d answered another status, %d not answered", other, noAnswer)
	r.check("no delivery is answered 200 while the journal is down", okWhileDown == 0, "%d answered 200", okWhileDown)
	r.check("every delivery is answered 200 once re-sent", unanswered == 0, "%d never answered 200", unanswered)

	nc, err := nats.Connect(url, nats.Name("billfold-gameday"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	counts, total, err := journalCounts(ctx, js, "stripe")
	if err != nil {
		return err
	}
	lost, twice := 0, 0
	credits := map[string]int{}
	for _, ev := range events {
		as := attempts[ev.id]
		n := counts[domain.JournalSubject("stripe", ev.id)]
		if len(as) > 0 && as[len(as)-1].status == http.StatusOK && n == 0 {
			lost++
		}
		twice += max(0, n-1)
		credits[ev.user] += ev.credits
	}
	r.figure("lost", lost)
	r.figure("journaled_twice", twice)
	r.check("every delivery answered 200 is in the journal", lost == 0, "%d missing", lost)
	r.check("each event is journaled exactly once, and nothing else", twice == 0 && total == len(events), "%d copies too many; %d journaled for %d events", twice, total, len(events))

	if err := e.waitProjected(ctx, 30*time.Second); err != nil {
		return err
	}
	wrong := 0
	for user, want := range credits {
		if user == "" {
			continue
		}
		var w domain.WalletRecord
		if code, _ := e.get(ctx, "/v1/wallets/"+user, &w); code != http.StatusOK || w.Balance != int64(want) {
			wrong++
		}
	}
	r.check("each top-up credited exactly once", wrong == 0, "%d wallets off", wrong)
	rep, err := e.verify(ctx)
	if err != nil {
		return err
	}
	r.check("verify: the projections equal a clean fold of the journal", rep.Identical, "%d differences", len(rep.Differences))
	return nil
}

// errDetail is err's text for a check's detail, or "" for none.
func errDetail(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// journalCounts returns how many journal messages each subject of
// namespace holds, and their total.
func journalCounts(ctx context.Context, js jetstream.JetStream, namespace string) (map[string]int, int, error) {
	s, err := js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return nil, 0, err
	}
	filter := strings.TrimSuffix(domain.JournalSubject(namespace, "x"), "x") + ">"
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, 0, err
	}
	out, total := map[string]int{}, 0
	for subj, n := range info.State.Subjects {
		out[subj] = int(n)
		total += int(n)
	}
	return out, total, nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
