package query

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
)

// deadLetterIndex holds the open dead letters' summaries in memory, kept
// up to date by one ordered consumer on the dead-letter stream (the last
// message of each subject, then every new one), so counting them by code
// and projection, and choosing a page of them, reads nothing. Only open
// ones are held: a resolved dead letter leaves the index.
type deadLetterIndex struct {
	js jetstream.JetStream

	mu   sync.RWMutex
	open map[string]openDeadLetter // by subject
	// seq is the stream sequence of the last message applied to open.
	seq    uint64
	loaded chan struct{} // closed once the stream's state is in
}

// openDeadLetter is what the index keeps of an open dead letter: what a
// filter and the groups need; the rest is read when it is shown.
type openDeadLetter struct {
	subject                   string
	projection, eventType, ns string
	provider                  domain.Provider
	code                      domain.Code
	failedAt                  time.Time
}

func newDeadLetterIndex(js jetstream.JetStream) *deadLetterIndex {
	return &deadLetterIndex{js: js, open: map[string]openDeadLetter{}, loaded: make(chan struct{})}
}

// run follows the dead-letter stream until ctx ends, starting over (and
// reloading) when its reader fails.
func (x *deadLetterIndex) run(ctx context.Context) {
	for ctx.Err() == nil {
		x.follow(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// follow reads the stream's current state into a fresh set, swaps it in
// once caught up (then the index holds everything written up to the
// stream's last sequence, even messages since deleted), then applies
// every new message to it.
func (x *deadLetterIndex) follow(ctx context.Context) {
	loading := map[string]openDeadLetter{}
	_ = deadletter.Letters{JS: x.js}.Watch(ctx, func(subject string, seq uint64, dl *deadletter.Letter, err error, caughtUp bool) {
		if loading == nil {
			x.mu.Lock()
			applyDeadLetter(x.open, subject, dl, err)
			x.seq = max(x.seq, seq)
			x.mu.Unlock()
			return
		}
		if subject != "" {
			applyDeadLetter(loading, subject, dl, err)
		}
		if !caughtUp {
			return
		}
		x.mu.Lock()
		x.open, loading = loading, nil
		x.seq = max(x.seq, seq)
		x.mu.Unlock()
		select {
		case <-x.loaded:
		default:
			close(x.loaded)
		}
	})
}

// applyDeadLetter records a dead letter's new state under its subject.
func applyDeadLetter(open map[string]openDeadLetter, subject string, dl *deadletter.Letter, err error) {
	if err != nil || dl.Status != deadletter.Open {
		delete(open, subject)
		return
	}
	open[subject] = openDeadLetter{subject: subject, projection: dl.Projection, eventType: dl.EventType, ns: dl.Namespace,
		provider: dl.Provider, code: dl.Code, failedAt: dl.FailedAt}
}

func (o openDeadLetter) matches(f deadletter.Filter) bool {
	return (f.Projection == "" || o.projection == f.Projection) &&
		(f.Code == "" || o.code == f.Code) &&
		(f.EventType == "" || o.eventType == f.EventType) &&
		(f.Provider == "" || string(o.provider) == f.Provider || o.ns == f.Provider) &&
		(f.Since.IsZero() || !o.failedAt.Before(f.Since))
}

// DeadLetterGroup counts the open dead letters with one code in one
// projection.
type DeadLetterGroup struct {
	Code       domain.Code `json:"code"`
	Projection string      `json:"projection"`
	Count      int         `json:"count"`
}

// OpenDeadLetters is a view of the open dead letters: every one counted,
// a page of them listed.
type OpenDeadLetters struct {
	// Total counts every open dead letter; Groups count them by code and
	// projection, largest first.
	Total  int
	Groups []DeadLetterGroup
	// Matched counts those the filter selects; Items are the first of
	// them (oldest failure first), at most the limit asked.
	Matched int
	Items   []deadletter.Letter
}

// OpenDeadLetters counts the open dead letters from the in-memory index
// and reads the first limit that f selects (its Status is ignored: only
// open ones are indexed), oldest failure first: a page reads only the dead
// letters it lists, however many are open. It waits for the index's first
// load like a list does (BILLFOLD-INDEX-LOADING past that).
func (q *Query) OpenDeadLetters(ctx context.Context, f deadletter.Filter, limit int) (OpenDeadLetters, error) {
	if err := waitLoaded(ctx, q.deadLetters.loaded); err != nil {
		return OpenDeadLetters{}, err
	}
	letters := deadletter.Letters{JS: q.js}
	last, err := letters.LastSequence(ctx)
	if err != nil {
		return OpenDeadLetters{}, err
	}
	// Every dead letter written before this request is in the answer (a
	// requeue's page shows its own outcome).
	q.deadLetters.waitSeq(ctx, last)
	var out OpenDeadLetters
	groups := map[[2]string]int{}
	var picked []openDeadLetter
	q.deadLetters.mu.RLock()
	out.Total = len(q.deadLetters.open)
	for _, o := range q.deadLetters.open {
		groups[[2]string{string(o.code), o.projection}]++
		if o.matches(f) {
			picked = append(picked, o)
		}
	}
	q.deadLetters.mu.RUnlock()
	for k, n := range groups {
		out.Groups = append(out.Groups, DeadLetterGroup{Code: domain.Code(k[0]), Projection: k[1], Count: n})
	}
	slices.SortFunc(out.Groups, func(a, b DeadLetterGroup) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(string(a.Code)+"\n"+a.Projection, string(b.Code)+"\n"+b.Projection)
	})
	out.Matched = len(picked)
	slices.SortFunc(picked, func(a, b openDeadLetter) int {
		if c := a.failedAt.Compare(b.failedAt); c != 0 {
			return c
		}
		return strings.Compare(a.subject, b.subject)
	})
	page := picked[:min(len(picked), max(limit, 0))]
	if len(page) == 0 {
		return out, nil
	}
	// The page's dead letters in one request (a direct get of the last
	// message of each subject), in the page's order.
	subjects := make([]string, len(page))
	for i, o := range page {
		subjects[i] = o.subject
	}
	states, err := letters.Latest(ctx, subjects)
	if err != nil {
		return out, err
	}
	for _, o := range page {
		if dl := states[o.subject]; dl != nil && dl.Status == deadletter.Open {
			out.Items = append(out.Items, *dl)
		}
	}
	return out, nil
}

// waitSeq waits, at most indexWait or ctx, until the index has applied the
// stream's messages up to seq; past that it answers with what it holds.
func (x *deadLetterIndex) waitSeq(ctx context.Context, seq uint64) {
	deadline := time.Now().Add(indexWait)
	for {
		x.mu.RLock()
		done := x.seq >= seq
		x.mu.RUnlock()
		if done || ctx.Err() != nil || time.Now().After(deadline) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}
