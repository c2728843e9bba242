package query

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/looplab/eventhorizon/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/index"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// Query reads the projections for the query API: single records straight
// from the KV stores, and lists through in-memory secondary indexes that KV
// watchers keep up to date (subscriptions by lifecycle state, provider and
// customer; customers by link; orders by customer and link). The indexes
// hold ids, not records: a page's records are read from the store.
//
// Query never writes a projection.
type Query struct {
	js        jetstream.JetStream
	engine    *projections.Engine
	projs     []reducers.Projection
	userIDKey string
	// FoldJobs bounds as_of reads (nil: unbounded).
	FoldJobs *projections.FoldJobs

	// view is the generations queries read now. A rebuild's switch
	// replaces it whole, once the new generations' indexes are loaded, so
	// no query ever sees a half-built generation or a half-loaded index.
	view      atomic.Pointer[queryView]
	readyOnce sync.Once
	ready     chan struct{}
	// deadLetters indexes the open dead letters (Run follows them).
	deadLetters *deadLetterIndex
}

// queryView is one set of projection generations: their stores and the
// indexes over them.
type queryView struct {
	stores    map[string]*kvstore.Store
	userIDKey string
	subs      *index.Subscriptions
	people    *index.Links
	pending   sync.WaitGroup
	loaded    chan struct{}

	// customerList and orderList list customers and orders (accountlists.go).
	customerList, orderList *recordList
}

// kindProjection maps a record kind to its projection.
var kindProjection = map[string]string{
	domain.KindCustomer:     domain.ProjectionCustomers,
	domain.KindSubscription: domain.ProjectionSubscriptions,
	domain.KindOrder:        domain.ProjectionOrders,
	domain.KindWallet:       domain.ProjectionWallets,
}

// maxLinkedIdentities bounds how many identities one person's link closure
// may reach, so a link value shared by everyone (a test user id) cannot
// make one request read the whole index.
const maxLinkedIdentities = 1000

// New reads the stores of engine; projs are the projections'
// reducers (for AsOf), userIDKey the metadata key that names a billfold
// user (reducers.Options.UserIDKey; "" means "user_id"). Call Run to keep
// the indexes up to date.
func New(engine *projections.Engine, projs []reducers.Projection, userIDKey string) *Query {
	if userIDKey == "" {
		userIDKey = "user_id"
	}
	q := &Query{js: engine.JetStream(), engine: engine, projs: projs, userIDKey: userIDKey, ready: make(chan struct{}),
		deadLetters: newDeadLetterIndex(engine.JetStream())}
	q.view.Store(q.newView())
	return q
}

func (q *Query) newView() *queryView {
	stores := map[string]*kvstore.Store{}
	for _, name := range q.engine.Projections() {
		stores[name] = q.engine.Store(name)
	}
	return &queryView{stores: stores, userIDKey: q.userIDKey, subs: index.NewSubscriptions(), people: index.NewLinks(), loaded: make(chan struct{}),
		customerList: newRecordList(), orderList: newRecordList()}
}

// sameGenerations reports whether v reads the stores the engine has now.
func (q *Query) sameGenerations(v *queryView) bool {
	for name, s := range v.stores {
		if cur := q.engine.Store(name); cur == nil || cur.Bucket() != s.Bucket() {
			return false
		}
	}
	return true
}

// Run keeps the indexes up to date until ctx is done: it watches the
// customers, subscriptions and orders buckets of the current generations
// and, when a rebuild switches generations, loads indexes over the new
// ones and then switches every query to them at once. Ready is closed once
// the first indexes are loaded. It also follows the open dead letters
// (OpenDeadLetters), until ctx is done too.
func (q *Query) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { q.deadLetters.run(ctx) })
	defer wg.Wait()
	v := q.view.Load()
	stopPrev := func() {}
	defer func() { stopPrev() }()
	for {
		switched := q.engine.Switched()
		vctx, stop := context.WithCancel(ctx)
		go v.run(vctx)
		select {
		case <-v.loaded:
		case <-ctx.Done():
			stop()
			return
		}
		// The old view answered until now; it can stop following its
		// buckets.
		q.view.Store(v)
		stopPrev()
		stopPrev = stop
		q.readyOnce.Do(func() { close(q.ready) })
		for q.sameGenerations(v) {
			select {
			case <-ctx.Done():
				return
			case <-switched:
				switched = q.engine.Switched()
			}
		}
		v = q.newView()
	}
}

// run feeds the view's indexes until ctx is done; loaded is closed once
// every bucket's initial values are in.
func (v *queryView) run(ctx context.Context) {
	var wg sync.WaitGroup
	watch := []struct {
		projection, kind string
		apply            func(key string, id uuid.UUID, value []byte)
	}{
		{domain.ProjectionSubscriptions, domain.KindSubscription, v.applySubscription},
		{domain.ProjectionCustomers, domain.KindCustomer, v.applyCustomer},
		{domain.ProjectionOrders, domain.KindOrder, v.applyOrder},
	}
	// The initial values are sorted into the subscriptions index at once
	// when every bucket has delivered them, before any list reads it.
	v.subs.StartLoad()
	v.startListLoad()
	v.pending.Add(len(watch))
	go func() { v.pending.Wait(); v.subs.FinishLoad(); v.finishListLoad(); close(v.loaded) }()
	for _, w := range watch {
		store := v.stores[w.projection]
		if store == nil {
			v.pending.Done()
			continue
		}
		wg.Go(func() { v.watch(ctx, store, w.kind, w.apply) })
	}
	wg.Wait()
}

// Ready is closed once the indexes hold every record stored when Run
// started.
func (q *Query) Ready() <-chan struct{} { return q.ready }

// Loading reports whether the indexes are still loading the records
// stored when Run started; until they hold them all, lists and counts
// answer BILLFOLD-INDEX-LOADING rather than from a half-built index.
func (q *Query) Loading() bool {
	select {
	case <-q.ready:
		return false
	default:
		return true
	}
}

// indexWait is how long a list waits for the indexes' initial load
// before it answers BILLFOLD-INDEX-LOADING: long enough for a small store
// (a process that just started), short enough that a client of a large
// one is told to come back instead of hanging.
const indexWait = 2 * time.Second

// loadedView waits for the indexes' initial load, at most indexWait or
// ctx, and returns the view queries read now.
func (q *Query) loadedView(ctx context.Context) (*queryView, error) {
	if err := waitLoaded(ctx, q.ready); err != nil {
		return nil, err
	}
	return q.view.Load(), nil
}

// waitLoaded waits until loaded is closed, at most indexWait or ctx.
func waitLoaded(ctx context.Context, loaded <-chan struct{}) error {
	t := time.NewTimer(indexWait)
	defer t.Stop()
	select {
	case <-loaded:
		return nil
	case <-t.C:
		return domain.Errorf(domain.CodeIndexLoading, "the query indexes are still loading the stored records; retry shortly")
	case <-ctx.Done():
		return domain.Wrap(domain.CodeIndexLoading, ctx.Err(), "the query indexes are still loading the stored records")
	}
}

// watch feeds the values of one kind of record in a bucket to apply,
// re-watching after a failure.
func (v *queryView) watch(ctx context.Context, store *kvstore.Store, kind string, apply func(string, uuid.UUID, []byte)) {
	initial := true
	prefix := kind + "."
	for ctx.Err() == nil {
		w, err := store.WatchKind(ctx, kind)
		if err != nil {
			jsio.Sleep(ctx, time.Second)
			continue
		}
		for e := range w.Updates() {
			if e == nil { // the initial values are in
				if initial {
					initial = false
					v.pending.Done()
				}
				continue
			}
			key := e.Key()
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			id, err := uuid.Parse(key[len(prefix):])
			if err != nil {
				continue
			}
			var value []byte
			if e.Operation() == jetstream.KeyValuePut {
				value = e.Value()
			}
			apply(key, id, value)
		}
		_ = w.Stop()
		jsio.Sleep(ctx, 250*time.Millisecond)
	}
	if initial {
		v.pending.Done()
	}
}

// indexedRecord is the part of a stored record the indexes need.
type indexedRecord struct {
	Record reducers.Indexed
}

// decodeIndexed is the one place the indexes decode a stored value, with
// the reducers' codec (reducers.IndexedOf: one pass over the record part,
// read in place, so a string the indexes keep is interned, not held).
func decodeIndexed(value []byte) (indexedRecord, bool) {
	r, ok := reducers.IndexedOf(value)
	return indexedRecord{Record: r}, ok
}

func (v *queryView) applySubscription(_ string, id uuid.UUID, value []byte) {
	r, ok := decodeIndexed(value)
	if !ok {
		v.subs.Delete(id)
		return
	}
	v.subs.Put(index.Subscription{Key: id, Provider: r.Record.Provider, ID: r.Record.ID, Customer: r.Record.CustomerID,
		State: domain.LifecycleState(r.Record.State)})
}

func (v *queryView) applyCustomer(_ string, id uuid.UUID, value []byte) {
	r, ok := decodeIndexed(value)
	v.customerList.apply(id, r, ok)
	if !ok {
		v.people.DeleteCustomer(id)
		return
	}
	links := r.Record.Links
	if domain.Provider(r.Record.Provider) == domain.Clerk {
		// A Clerk user is the billfold user its id names, and the person
		// its primary email names (a Braintree customer links by email).
		links = append(links, domain.Link{Kind: v.userIDKey, Value: r.Record.ID})
		if r.Record.Email != "" {
			links = append(links, domain.Link{Kind: reducers.LinkEmail, Value: strings.ToLower(r.Record.Email)})
		}
	}
	v.people.PutCustomer(id, index.Customer{Provider: r.Record.Provider, ID: r.Record.ID}, links)
}

func (v *queryView) applyOrder(_ string, id uuid.UUID, value []byte) {
	r, ok := decodeIndexed(value)
	v.orderList.apply(id, r, ok)
	if !ok {
		v.people.DeleteOrder(id)
		return
	}
	v.people.PutOrder(id, index.Position{Provider: r.Record.Provider, ID: r.Record.ID}, index.Customer{Provider: r.Record.Provider, ID: r.Record.CustomerID}, r.Record.Links)
}
