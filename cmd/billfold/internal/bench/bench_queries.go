package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/reducers"
)

// benchQueries loads --subscriptions subscription records into the
// subscriptions store and measures, through the query HTTP API on
// loopback, point lookups and filtered first pages (by state, by provider,
// by customer): each at full rate from --concurrency readers, and its p99
// at half that rate. The limits read the same records straight from the KV
// bucket: one Get per lookup, and a page's records in one batched direct
// get (kvstore.LatestValues, as the query layer reads them) per list.
// It also reports the whole process's peak resident memory and the
// garbage collector's share of CPU over the phase, load included.
func benchQueries(ctx context.Context, b *benchRun) ([]benchRow, error) {
	sampler := startProcessSampler(b.o.peakProfile)
	var loadPeak int64
	rows, err := benchQueryFigures(ctx, b, func() { loadPeak = sampler.split() })
	proc := sampler.finish()
	if err != nil {
		return nil, err
	}
	const process = "the whole bench process: engine, embedded NATS server, query indexes and the bench's clients"
	const whole = process + ", over the phase, load included"
	rows = append(rows,
		benchRow{Figure: "peak resident memory while loading", Unit: "MiB", Value: float64(loadPeak) / (1 << 20),
			Note: process + ", from the phase's start until the records are indexed and the change-feed relays have published them (at most 10 minutes): --subscriptions written as fast as the store takes them"},
		benchRow{Figure: "peak resident memory with the records loaded", Unit: "MiB", Value: float64(proc.PeakRSS) / (1 << 20),
			Note: process + ", over the measures that follow the load (starting from the resident memory then)"}.
			withTarget("< 1024 MiB", proc.PeakRSS < 1<<30),
		benchRow{Figure: "GC share of CPU", Unit: "%", Value: proc.GCShare * 100,
			Note: "runtime/metrics /cpu/classes/gc/total over /cpu/classes/total, " + whole}.
			withTarget("< 5 %", proc.GCShare < 0.05))
	took, err := b.indexLoad(ctx)
	if err != nil {
		return nil, err
	}
	rows = append(rows, benchRow{Figure: "query index ready after a restart", Unit: "s", Value: took.Seconds(),
		Note: "a second billfold engine on the same NATS, from its start until its query indexes hold every stored record (lists answer BILLFOLD-INDEX-LOADING until then); the NATS server's own start is not in it"}.
		withTarget("< 30 s", took < 30*time.Second))
	return rows, nil
}

// relayWait bounds how long the queries phase waits for the change-feed
// relays to publish the loaded records before it measures. The relays
// publish one record at a time (MaxAckPending 1): a loaded two-core
// machine relays 300 – 500 records/s, so a million records would hold
// the phase for most of an hour; past relayWait the phase measures with
// the rest of the backlog still being published, and says how much.
const relayWait = 10 * time.Minute

// settleQueries waits until the projectors have caught up and the
// change-feed relays have published the loaded records, at most
// relayWait for the relays, and returns the relays' backlog then.
func (b *benchRun) settleQueries(ctx context.Context) (uint64, error) {
	ec := b.engineConsumers(ctx)
	if err := b.waitCaughtUp(ctx, ec.projectors, "catching up (projectors)", 100*time.Millisecond); err != nil {
		return 0, err
	}
	bar := cli.NewBar(int(relayWait/time.Second), "change-feed relays (s, at most)", b.stderr)
	defer func() { _ = bar.Finish() }()
	deadline := time.Now().Add(relayWait)
	for {
		pending, _, err := b.behind(ctx, ec.relays)
		if err != nil || pending == 0 || time.Now().After(deadline) {
			return pending, err
		}
		_ = bar.Set(int(relayWait/time.Second - time.Until(deadline)/time.Second))
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// indexLoad starts a second engine and query API on the server, as a
// billfold process that restarts (or joins the cluster) does, and times
// its query indexes' load of every stored record.
func (b *benchRun) indexLoad(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	projs := reducers.All(reducers.DefaultOptions())
	engine, err := projections.NewEngine(ctx, b.js, projs, projections.EngineOptions{Replicas: 1})
	if err != nil {
		return 0, err
	}
	q := query.New(engine, projs, "")
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-q.Ready():
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("a restarted query index did not load in 5 minutes")
	}
}

// benchQueryFigures loads the records, calls loaded once they are in
// (and the relays done with them), and measures the queries.
func benchQueryFigures(ctx context.Context, b *benchRun, loaded func()) ([]benchRow, error) {
	o := b.o
	kv, err := b.js.KeyValue(ctx, domain.ProjectionBucket(domain.ProjectionSubscriptions, 1))
	if err != nil {
		return nil, err
	}
	before, err := b.indexedSubscriptions()
	if err != nil {
		return nil, err
	}
	set, err := newSubscriptionSet(b.runID+"q", o.subscriptions)
	if err != nil {
		return nil, err
	}
	loadStart := time.Now()
	if err := set.load(ctx, b, kv); err != nil {
		return nil, err
	}
	if err := b.waitIndexed(ctx, before+o.subscriptions); err != nil {
		return nil, err
	}
	loadRate := float64(o.subscriptions) / time.Since(loadStart).Seconds()
	backlog, err := b.settleQueries(ctx)
	if err != nil {
		return nil, err
	}
	loaded()

	rng := rand.New(rand.NewPCG(7, 11))
	n := o.queries
	picks := make([]int, n)
	for i := range picks {
		picks[i] = rng.IntN(o.subscriptions)
	}
	rows := []benchRow{{Figure: "subscriptions in the store", Unit: "records", Value: float64(o.subscriptions + before),
		Note: fmt.Sprintf("%d written straight to the bucket at %.0f records/s until indexed by the query API", o.subscriptions, loadRate)}}
	if backlog > 0 {
		rows = append(rows, benchRow{Figure: "change-feed relay backlog when the measures began", Unit: "records", Value: float64(backlog),
			Note: fmt.Sprintf("the relays publish the loaded records to the change feed one at a time; still behind after %s, they went on during the measures below, in the same process", relayWait)})
	}

	lookup := func(i int) error {
		s := set.at(picks[i%n])
		return b.get("/v1/subscriptions/" + s.provider + "/" + s.id)
	}
	floor := func(i int) error {
		s := set.at(picks[i%n])
		_, err := kv.Get(ctx, reducers.SubscriptionKey(s.provider, s.id))
		return err
	}
	got, err := b.queryFigures("point lookup", n, lookup, floor, "one KV Get of the record", 2)
	if err != nil {
		return nil, err
	}
	rows = append(rows, got...)

	// The filters of each list kind, each with the keys of its first page
	// (read once, which also warms the path) for the floor.
	var states []string
	for _, s := range domain.LifecycleStates {
		states = append(states, "state="+string(s))
	}
	var customers []string
	for range 64 {
		customers = append(customers, "customer="+url.QueryEscape(set.at(rng.IntN(o.subscriptions)).customer))
	}
	lists := []struct {
		figure  string
		queries []string
	}{
		{"first page by state", states},
		{"first page by provider", []string{"provider=stripe", "provider=braintree"}},
		{"first page by customer", customers},
	}
	for _, l := range lists {
		pages := make([][]string, len(l.queries))
		for i, q := range l.queries {
			if pages[i], err = b.pageKeys("/v1/subscriptions?" + q); err != nil {
				return nil, err
			}
		}
		list := func(i int) error { return b.get("/v1/subscriptions?" + l.queries[i%len(l.queries)]) }
		read := func(i int) error {
			_, err := kvstore.LatestValues(ctx, b.js, kv.Bucket(), pages[i%len(pages)])
			return err
		}
		got, err := b.queryFigures(l.figure, max(n/20, 1), list, read, "the page's records read from KV in one batched direct get", 20)
		if err != nil {
			return nil, err
		}
		if o.subscriptions+before < 1_000_000 {
			got[1].Note = fmt.Sprintf("the target is stated at 1,000,000 subscriptions; this run has %d (--subscriptions 1000000 for it)", o.subscriptions+before)
		}
		rows = append(rows, got...)
	}
	return rows, nil
}

// queryFigures measures do at full rate and at half of it, and floor
// likewise, and returns two rows: the rate, and the p99 at half rate with
// target.
func (b *benchRun) queryFigures(figure string, n int, do, floor func(int) error, limitOf string, targetMS float64) ([]benchRow, error) {
	full := measure(figure, n, b.o.concurrency, 0, b.stderr, do)
	floorFull := measure(figure+" (limit)", n, b.o.concurrency, 0, b.stderr, floor)
	half := measure(figure+" at half rate", n, b.o.concurrency, full.rate/2, b.stderr, do)
	floorHalf := measure(figure+" at half rate (limit)", n, b.o.concurrency, full.rate/2, b.stderr, floor)
	for _, m := range []measured{full, floorFull, half, floorHalf} {
		if m.failed > 0 {
			return nil, fmt.Errorf("%s: %d of %d failed: %v", figure, m.failed, n, m.err)
		}
	}
	return []benchRow{
		benchRow{Figure: figure, Unit: "/s", Value: full.rate}.withLimit(floorFull.rate, limitOf),
		benchRow{Figure: figure + " p99 at half rate", Unit: "ms", Value: half.lat.p(99)}.
			withLimit(floorHalf.lat.p(99), limitOf+", same rate").withTarget(fmt.Sprintf("< %g ms", targetMS), half.lat.p(99) < targetMS),
	}, nil
}

// indexedSubscriptions is how many subscriptions the query API's index
// holds.
func (b *benchRun) indexedSubscriptions() (int, error) {
	var buf bytes.Buffer
	if _, err := b.getBody("/v1/subscriptions/counts", &buf); err != nil {
		return 0, err
	}
	var counts map[string]int
	if err := json.Unmarshal(buf.Bytes(), &counts); err != nil {
		return 0, err
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, nil
}

// waitIndexed waits until the query API's index holds want subscriptions.
func (b *benchRun) waitIndexed(ctx context.Context, want int) error {
	bar := cli.NewBar(want, "query index", b.stderr)
	defer func() { _ = bar.Finish() }()
	deadline := time.Now().Add(15 * time.Minute)
	for {
		got, err := b.indexedSubscriptions()
		if err != nil {
			return err
		}
		_ = bar.Set(min(got, want))
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("query index holds %d of %d subscriptions after 15 minutes", got, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pageKeys returns the store keys of the records on the page at path.
func (b *benchRun) pageKeys(path string) ([]string, error) {
	var buf bytes.Buffer
	if _, err := b.getBody(path, &buf); err != nil {
		return nil, err
	}
	var page struct {
		Items []struct {
			Provider string `json:"provider"`
			ID       string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal(buf.Bytes(), &page); err != nil {
		return nil, err
	}
	keys := make([]string, len(page.Items))
	for i, it := range page.Items {
		keys[i] = reducers.SubscriptionKey(it.Provider, it.ID)
	}
	return keys, nil
}

// subscriptionSet is n synthetic subscriptions whose stored values are
// exactly what the subscriptions reducer produces: each template is a real
// fold of provider events (reducers.Subscriptions), with the ids in it
// written as fixed-width placeholders that each record replaces with its
// own. So a million records cost a million byte replacements, not a
// million folds, and the query API meets the real record format.
type subscriptionSet struct {
	run       string
	n         int
	templates []subscriptionTemplate
	// mix maps i%len(mix) to a template, in proportion to its weight.
	mix []int
}

type subscriptionTemplate struct {
	provider string
	value    []byte
	// placeholders are where value holds the ids each record replaces.
	placeholders []placeholderAt
	// eventID and eventType are the cause the last write carries.
	eventID, eventType string
}

// placeholders in template values; each is as long as what replaces it.
const (
	subPlaceholder   = "S#########"
	cusPlaceholder   = "C#########"
	eventPlaceholder = "E#########"
)

// subRef names one subscription of the set.
type subRef struct{ provider, id, customer string }

// at is the i-th subscription: two per customer, as the workload's
// customers often have a plan and an add-on.
func (s *subscriptionSet) at(i int) subRef {
	t := s.templates[s.mix[i%len(s.mix)]]
	return subRef{
		provider: t.provider,
		id:       fmt.Sprintf("sub_bf%sS%09d", s.run, i),
		customer: fmt.Sprintf("cus_bf%sC%09d", s.run, i/2),
	}
}

// value is the stored value of the i-th subscription: one copy of its
// template with the placeholders overwritten in place (each is as long
// as what replaces it), so that the bench's own garbage stays small
// beside the process it measures.
func (s *subscriptionSet) value(i int) ([]byte, subscriptionTemplate) {
	t := s.templates[s.mix[i%len(s.mix)]]
	v := bytes.Clone(t.value)
	var digits [len(subPlaceholder)]byte
	for _, p := range t.placeholders {
		n := i
		if p.mark == cusPlaceholder[0] {
			n = i / 2
		}
		copy(v[p.at:], fmt.Appendf(digits[:0], "%c%09d", p.mark, n))
	}
	return v, t
}

// placeholderAt is where a template value holds a placeholder, and
// which (its first byte).
type placeholderAt struct {
	at   int
	mark byte
}

// placeholdersOf finds every placeholder in value.
func placeholdersOf(value []byte) []placeholderAt {
	var out []placeholderAt
	for _, ph := range []string{subPlaceholder, cusPlaceholder, eventPlaceholder} {
		for at := 0; ; {
			j := bytes.Index(value[at:], []byte(ph))
			if j < 0 {
				break
			}
			out = append(out, placeholderAt{at: at + j, mark: ph[0]})
			at += j + len(ph)
		}
	}
	return out
}

// fill replaces the placeholders of a template string for the i-th
// subscription.
func (s *subscriptionSet) fill(str string, i int) string {
	return string(bytes.ReplaceAll(bytes.ReplaceAll([]byte(str), []byte(subPlaceholder), fmt.Appendf(nil, "S%09d", i)),
		[]byte(eventPlaceholder), fmt.Appendf(nil, "E%09d", i)))
}

// newSubscriptionSet folds the templates: Stripe subscriptions in every
// lifecycle state (created, then updated into it, so each has a
// transition), and Braintree ones.
func newSubscriptionSet(run string, n int) (*subscriptionSet, error) {
	var proj reducers.Projection
	for _, p := range reducers.All(reducers.DefaultOptions()) {
		if p.Name() == domain.ProjectionSubscriptions {
			proj = p
		}
	}
	s := &subscriptionSet{run: run, n: n}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	subID, cusID := "sub_bf"+run+subPlaceholder, "cus_bf"+run+cusPlaceholder
	stripeSub := func(status string, object map[string]any, weight int) error {
		mem := memoryLookup{}
		var last *domain.Envelope
		for k, ev := range []samples.Stripe{
			{Type: "customer.subscription.created", Status: "active", Created: at},
			{Type: "customer.subscription.updated", Status: status, Created: at.Add(40 * 24 * time.Hour), Object: object, Previous: map[string]any{"status": "active"}},
		} {
			ev.EventID = fmt.Sprintf("evt_bf%s%c%s", run, 'a'+k, eventPlaceholder)
			ev.CustomerID, ev.SubscriptionID = cusID, subID
			last = &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: ev.EventID, EventType: ev.Type,
				Created: ev.Created, Verification: domain.VerifiedSignature, Body: ev.Event()}
			if err := mem.apply(proj, last); err != nil {
				return err
			}
		}
		s.add(subscriptionTemplate{provider: "stripe", value: mem[reducers.SubscriptionKey("stripe", subID)], eventID: last.EventID, eventType: last.EventType}, weight)
		return nil
	}
	braintreeSub := func(kind string, weight int) error {
		mem := memoryLookup{}
		signed, err := samples.Sign(domain.Braintree, "bench_public:bench_private", samples.BraintreeSubscription(kind, subID, at), at)
		if err != nil {
			return err
		}
		env, err := braintree.Parser{}.Parse(nil, signed.Body)
		if err != nil {
			return err
		}
		env.Provider, env.Endpoint, env.Body, env.Verification = domain.Braintree, "braintree", signed.Body, domain.VerifiedSignature
		if err := mem.apply(proj, &env); err != nil {
			return err
		}
		s.add(subscriptionTemplate{provider: "braintree", value: mem[reducers.SubscriptionKey("braintree", subID)], eventID: env.EventID, eventType: env.EventType}, weight)
		return nil
	}
	// Weights in percent: mostly active, a realistic tail of the others.
	for _, err := range []error{
		stripeSub("active", nil, 50),
		stripeSub("trialing", nil, 8),
		stripeSub("active", map[string]any{"cancel_at_period_end": true}, 5),
		stripeSub("past_due", nil, 6),
		stripeSub("paused", nil, 2),
		stripeSub("incomplete", nil, 2),
		stripeSub("canceled", nil, 9),
		braintreeSub("subscription_went_active", 12),
		braintreeSub("subscription_went_past_due", 2),
		braintreeSub("subscription_canceled", 4),
	} {
		if err != nil {
			return nil, fmt.Errorf("subscription templates: %w", err)
		}
	}
	return s, nil
}

func (s *subscriptionSet) add(t subscriptionTemplate, weight int) {
	t.placeholders = placeholdersOf(t.value)
	for range weight {
		s.mix = append(s.mix, len(s.templates))
	}
	s.templates = append(s.templates, t)
}

// load writes the set into kv as the projector would (a put on
// $KV.<bucket>.<key> with the cause headers), with asynchronous publishes
// acknowledged in windows, so loading is bounded by the store, not by
// round trips.
func (s *subscriptionSet) load(ctx context.Context, b *benchRun, kv jetstream.KeyValue) error {
	bar := cli.NewBar(s.n, "loading subscriptions", b.stderr)
	defer func() { _ = bar.Finish() }()
	const window = 2000
	for i := range s.n {
		value, t := s.value(i)
		ref := s.at(i)
		msg := &nats.Msg{Subject: "$KV." + kv.Bucket() + "." + reducers.SubscriptionKey(ref.provider, ref.id), Header: nats.Header{}, Data: value}
		msg.Header.Set(kvstore.HeaderEventID, s.fill(t.eventID, i))
		msg.Header.Set(kvstore.HeaderEventType, t.eventType)
		if _, err := b.js.PublishMsgAsync(msg); err != nil {
			return err
		}
		if (i+1)%window == 0 || i == s.n-1 {
			select {
			case <-b.js.PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Minute):
				return fmt.Errorf("subscriptions store did not acknowledge the load in a minute")
			}
			_ = bar.Set(i + 1)
		}
	}
	return nil
}

// memoryLookup is a reducers.Lookup over a map, for folding templates.
type memoryLookup map[string][]byte

// Get implements reducers.Lookup.
func (m memoryLookup) Get(key string) ([]byte, error) { return m[key], nil }

func (m memoryLookup) apply(p reducers.Projection, env *domain.Envelope) error {
	changes, err := p.Apply(env, m)
	if err != nil {
		return err
	}
	for k, v := range changes {
		m[k] = v
	}
	return nil
}
