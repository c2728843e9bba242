package projections

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/looplab/eventhorizon/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tidwall/gjson"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/index"
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
	engine    *Engine
	projs     []reducers.Projection
	userIDKey string
	// FoldJobs bounds as_of reads (nil: unbounded).
	FoldJobs *FoldJobs

	// view is the generations queries read now. A rebuild's switch
	// replaces it whole, once the new generations' indexes are loaded, so
	// no query ever sees a half-built generation or a half-loaded index.
	view      atomic.Pointer[queryView]
	readyOnce sync.Once
	ready     chan struct{}
}

// queryView is one set of projection generations: their stores and the
// indexes over them.
type queryView struct {
	stores    map[string]*Store
	userIDKey string
	subs      *index.Subscriptions
	people    *linkIndex
	pending   sync.WaitGroup
	loaded    chan struct{}
}

// kindProjection maps a record kind to its projection.
var kindProjection = map[string]string{
	domain.KindCustomer:     domain.ProjectionCustomers,
	domain.KindSubscription: domain.ProjectionSubscriptions,
	domain.KindOrder:        domain.ProjectionOrders,
	domain.KindWallet:       domain.ProjectionWallets,
}

// Limits of a list page.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// maxLinkedIdentities bounds how many identities one person's link closure
// may reach, so a link value shared by everyone (a test user id) cannot
// make one request read the whole index.
const maxLinkedIdentities = 1000

// NewQuery reads the stores of engine; projs are the projections'
// reducers (for AsOf), userIDKey the metadata key that names a billfold
// user (reducers.Options.UserIDKey; "" means "user_id"). Call Run to keep
// the indexes up to date.
func NewQuery(engine *Engine, projs []reducers.Projection, userIDKey string) *Query {
	if userIDKey == "" {
		userIDKey = "user_id"
	}
	q := &Query{js: engine.js, engine: engine, projs: projs, userIDKey: userIDKey, ready: make(chan struct{})}
	q.view.Store(q.newView())
	return q
}

func (q *Query) newView() *queryView {
	stores := map[string]*Store{}
	for _, name := range q.engine.Projections() {
		stores[name] = q.engine.Store(name)
	}
	return &queryView{stores: stores, userIDKey: q.userIDKey, subs: index.NewSubscriptions(), people: newLinkIndex(), loaded: make(chan struct{})}
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
// the first indexes are loaded.
func (q *Query) Run(ctx context.Context) {
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
		projection, prefix string
		apply              func(key string, id uuid.UUID, value []byte)
	}{
		{domain.ProjectionSubscriptions, domain.KindSubscription + ".", v.applySubscription},
		{domain.ProjectionCustomers, domain.KindCustomer + ".", v.applyCustomer},
		{domain.ProjectionOrders, domain.KindOrder + ".", v.applyOrder},
	}
	// The initial values are sorted into the subscriptions index at once
	// when every bucket has delivered them, before any list reads it.
	v.subs.StartLoad()
	v.pending.Add(len(watch))
	go func() { v.pending.Wait(); v.subs.FinishLoad(); close(v.loaded) }()
	for _, w := range watch {
		store := v.stores[w.projection]
		if store == nil {
			v.pending.Done()
			continue
		}
		wg.Go(func() { v.watch(ctx, store.kv, w.prefix, w.apply) })
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
	t := time.NewTimer(indexWait)
	defer t.Stop()
	select {
	case <-q.ready:
		return q.view.Load(), nil
	case <-t.C:
		return nil, domain.Errorf(domain.CodeIndexLoading, "the query indexes are still loading the stored records; retry shortly")
	case <-ctx.Done():
		return nil, domain.Wrap(domain.CodeIndexLoading, ctx.Err(), "the query indexes are still loading the stored records")
	}
}

// watch feeds one bucket's values to apply, re-watching after a failure.
func (v *queryView) watch(ctx context.Context, kv jetstream.KeyValue, prefix string, apply func(string, uuid.UUID, []byte)) {
	initial := true
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			sleep(ctx, time.Second)
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
		sleep(ctx, 250*time.Millisecond)
	}
	if initial {
		v.pending.Done()
	}
}

// indexedRecord is the part of a stored record the indexes need.
type indexedRecord struct {
	Record struct {
		Provider   string        `json:"provider"`
		ID         string        `json:"id"`
		CustomerID string        `json:"customer_id"`
		State      string        `json:"state"`
		Links      []domain.Link `json:"links"`
		Deleted    bool          `json:"deleted"`
	} `json:"record"`
}

// decodeIndexed is the one place the indexes decode a stored value. It
// picks the few fields the indexes need out of the record part (gjson
// walks the bytes without building anything, and stops at the end of the
// record, before the merge state that is most of a value's bytes); at a
// million records a full decode of each value was most of a restart's
// index load. A value without a record id is no record (nil, false); the
// values are the reducers' own writes, so they are not validated beyond
// that.
func decodeIndexed(value []byte) (*indexedRecord, bool) {
	if value == nil {
		return nil, false
	}
	rec := gjson.GetBytes(value, "record")
	if !rec.IsObject() {
		return nil, false
	}
	f := gjson.GetMany(rec.Raw, "provider", "id", "customer_id", "state", "links", "deleted")
	var r indexedRecord
	r.Record.Provider, r.Record.ID, r.Record.CustomerID, r.Record.State = f[0].String(), f[1].String(), f[2].String(), f[3].String()
	r.Record.Deleted = f[5].Bool()
	if f[4].IsArray() && json.Unmarshal([]byte(f[4].Raw), &r.Record.Links) != nil {
		return nil, false
	}
	if r.Record.ID == "" {
		return nil, false
	}
	return &r, true
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
	if !ok {
		v.people.removeCustomer(id)
		return
	}
	links := slices.Clone(r.Record.Links)
	if domain.Provider(r.Record.Provider) == domain.Clerk {
		// A Clerk user is the billfold user its id names.
		links = append(links, domain.Link{Kind: v.userIDKey, Value: r.Record.ID})
	}
	v.people.upsertCustomer(id, ident{r.Record.Provider, r.Record.ID}, links)
}

func (v *queryView) applyOrder(_ string, id uuid.UUID, value []byte) {
	r, ok := decodeIndexed(value)
	if !ok {
		v.people.removeOrder(id)
		return
	}
	v.people.upsertOrder(id, ident{r.Record.Provider, r.Record.CustomerID}, index.Position{Provider: r.Record.Provider, ID: r.Record.ID}, r.Record.Links)
}

// ---------------------------------------------------------------------------
// Single records.

// RecordKey is the store key of a record of kind ("customer",
// "subscription", "order" or "wallet") with the provider's id; for a
// wallet, id is the user id and provider is ignored.
func RecordKey(kind, provider, id string) (string, error) {
	if id == "" {
		return "", domain.Errorf(domain.CodeBadRequest, "empty id")
	}
	switch kind {
	case domain.KindCustomer:
		return reducers.CustomerKey(provider, id), nil
	case domain.KindSubscription:
		return reducers.SubscriptionKey(provider, id), nil
	case domain.KindOrder:
		return reducers.OrderKey(provider, id), nil
	case domain.KindWallet:
		return reducers.WalletKey(id), nil
	}
	return "", domain.Errorf(domain.CodeBadRequest, "unknown record kind %q (customer, subscription, order or wallet)", kind)
}

func describe(kind, provider, id string) string {
	if kind == domain.KindWallet {
		return "wallet of user " + id
	}
	return kind + " " + provider + "/" + id
}

// Record returns the JSON of a record: a customer, subscription or order
// of provider, or the wallet of user id (provider is then ignored).
// An absent record is BILLFOLD-NOT-FOUND.
func (q *Query) Record(ctx context.Context, kind, provider, id string) (json.RawMessage, error) {
	key, err := RecordKey(kind, provider, id)
	if err != nil {
		return nil, err
	}
	raw, err := q.view.Load().read(ctx, kindProjection[kind], key)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no %s", describe(kind, provider, id))
	}
	return raw, nil
}

// read returns the record part of the value under key, nil when absent.
// It reads the KV bucket itself, not the store's cache, so that a record
// written by another billfold process is seen at once.
func (v *queryView) read(ctx context.Context, projection, key string) (json.RawMessage, error) {
	store := v.stores[projection]
	if store == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no projection %s", projection)
	}
	e, err := store.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "read "+projection)
	}
	return StoredRecord(e.Value())
}

// StoredRecord is the record part of a stored value, undecoded; nil when
// the value holds none.
func StoredRecord(value []byte) (json.RawMessage, error) {
	if rec, ok := leadingRecord(value); ok {
		return rec, nil
	}
	var s struct {
		Record json.RawMessage `json:"record"`
	}
	if err := json.Unmarshal(value, &s); err != nil {
		return nil, domain.Wrap(domain.CodeReducerDecode, err, "stored record")
	}
	if len(s.Record) == 0 || string(s.Record) == "null" {
		return nil, nil
	}
	return s.Record, nil
}

// leadingRecord reads the record of a value whose first member is
// "record", as in every value the reducers write (reducers.Stored encodes
// it first), and stops there: the merge state after it, often three times
// the record's size (a year of a subscription's history), is neither
// decoded nor scanned. That made reading a stored subscription several
// times cheaper (BenchmarkStoredRecord), and every record the query API
// answers is read so. Any other shape is left to the full decode.
func leadingRecord(value []byte) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(value))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	if t, err := dec.Token(); err != nil || t != "record" {
		return nil, false
	}
	var rec json.RawMessage
	if err := dec.Decode(&rec); err != nil || len(rec) == 0 || rec[0] != '{' {
		return nil, false
	}
	return rec, true
}

// readMany reads keys of projection, keeping the order and leaving out
// records that are gone: with batched direct gets (LatestValues), or, where
// the server cannot answer those, one KV Get per key, 16 at a time.
func (v *queryView) readMany(ctx context.Context, projection string, keys []string) ([]json.RawMessage, error) {
	store := v.stores[projection]
	if store == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no projection %s", projection)
	}
	values, err := LatestValues(ctx, store.js, store.Bucket(), keys)
	if err != nil {
		return v.readEach(ctx, projection, keys)
	}
	out := make([]json.RawMessage, 0, len(keys))
	for _, key := range keys {
		value := values[key]
		if value == nil {
			continue
		}
		rec, err := StoredRecord(value)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			out = append(out, rec)
		}
	}
	return out, nil
}

// readEach reads keys of projection one Get each, 16 at a time.
func (v *queryView) readEach(ctx context.Context, projection string, keys []string) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, key := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = v.read(ctx, projection, key)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(r json.RawMessage) bool { return r == nil }), nil
}

// directBatch bounds the keys of one batched direct get; the server
// answers at most 1024 messages to one.
const directBatch = 256

// LatestValues returns the current value of each of keys in bucket, by
// key, leaving out keys that are absent or deleted. It asks the bucket's
// stream for the last message of every key's subject in one direct get
// request per 256 keys (JetStream's "multi_last", nats-server 2.11 and
// later), where one KV Get per key would cost a round trip each: a page of
// 100 records is one request instead of 100. An error means the server
// could not answer so (an older server, direct gets disabled): read the
// keys one by one instead.
func LatestValues(ctx context.Context, js jetstream.JetStream, bucket string, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	for chunk := range slices.Chunk(keys, directBatch) {
		if err := latestValues(ctx, js.Conn(), bucket, chunk, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func latestValues(ctx context.Context, nc *nats.Conn, bucket string, keys []string, out map[string][]byte) error {
	return latestEntries(ctx, nc, bucket, keys, func(key string, value []byte, _ uint64, deleted bool) {
		if !deleted {
			out[key] = value
		}
	})
}

// latestEntries calls found with the last message of each of keys that
// has one (a value, or a delete or purge marker) and its revision, in one
// direct get request; see LatestValues.
func latestEntries(ctx context.Context, nc *nats.Conn, bucket string, keys []string, found func(key string, value []byte, revision uint64, deleted bool)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	prefix := "$KV." + bucket + "."
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = prefix + k
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{subjects, len(subjects)})
	if err != nil {
		return err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+domain.BucketStream(bucket), inbox, req); err != nil {
		return err
	}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return err
		}
		switch status := msg.Header.Get("Status"); {
		case status == "204": // end of batch
			return nil
		case status == "404" && msg.Header.Get("Description") == "No Results": // none of the keys exists
			return nil
		case status != "":
			return fmt.Errorf("direct get: %s %s", status, msg.Header.Get("Description"))
		}
		subject := msg.Header.Get(jetstream.SubjectHeader)
		if !strings.HasPrefix(subject, prefix) {
			return fmt.Errorf("direct get: answer for %q", subject)
		}
		rev, _ := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
		// A delete or purge marker: the key is gone.
		found(subject[len(prefix):], msg.Data, rev, msg.Header.Get("KV-Operation") != "")
	}
}

// AsOf returns a record as it stood at provider time t: the journal is
// folded from the start into memory with the record's projection,
// skipping every event whose provider time (Created) is after t.
//
// It costs a full read of the journal and a fold of every event the
// projection handles, each time: seconds for millions of events, and
// memory for every record of the projection. It is meant for an operator's
// occasional question, not for a hot path.
func (q *Query) AsOf(ctx context.Context, kind, provider, id string, t time.Time) (json.RawMessage, error) {
	key, err := RecordKey(kind, provider, id)
	if err != nil {
		return nil, err
	}
	name := kindProjection[kind]
	var proj reducers.Projection
	for _, p := range q.projs {
		if p.Name() == name {
			proj = p
		}
	}
	if proj == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no projection %s", name)
	}
	records := memoryRecords{}
	err = EachJournalEvent(ctx, q.js, func(env *domain.Envelope) error {
		if env.Created.After(t) || !proj.Handles(env.Provider, env.EventType) {
			return nil
		}
		changes, err := proj.Apply(env, records)
		if domain.Permanent(err) {
			return nil // a dead letter then as now
		}
		if err != nil {
			return err
		}
		maps.Copy(records, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if records[key] == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no %s as of %s", describe(kind, provider, id), t.Format(time.RFC3339))
	}
	return StoredRecord(records[key])
}

// ---------------------------------------------------------------------------
// Lists.

// SubscriptionFilter selects subscriptions; empty fields match all.
type SubscriptionFilter struct {
	State    domain.LifecycleState
	Provider string
	Customer string
	// Account is a Stripe Connect account: only its records. The index
	// does not know accounts, so it filters the pages the other fields
	// chose: a page may hold fewer than its limit, or none, and still
	// have a next cursor.
	Account string
}

// Page is one page of a list.
type Page struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// ParseLimit validates a limit parameter: 1 to MaxListLimit, "" for
// DefaultListLimit.
func ParseLimit(s string) (int, error) {
	if s == "" {
		return DefaultListLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxListLimit {
		return 0, domain.Errorf(domain.CodeBadRequest, "limit %q: want an integer from 1 to %d", s, MaxListLimit)
	}
	return n, nil
}

// encodeCursor and decodeCursor: a cursor is the position of the last
// record of a page, opaque to callers (base64url).
func encodeCursor(p index.Position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(p.Provider + "\n" + p.ID))
}

func decodeCursor(s string) (*index.Position, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	provider, id, ok := strings.Cut(string(b), "\n")
	if err != nil || !ok || id == "" {
		return nil, domain.Errorf(domain.CodeBadRequest, "cursor %q is not a cursor this API returned", s)
	}
	return &index.Position{Provider: provider, ID: id}, nil
}

// ValidateFilter checks a filter's state.
func ValidateFilter(f SubscriptionFilter) error {
	if f.State != "" && !f.State.Valid() {
		names := make([]string, len(domain.LifecycleStates))
		for i, s := range domain.LifecycleStates {
			names[i] = string(s)
		}
		return domain.Errorf(domain.CodeBadRequest, "state %q: want one of %s", f.State, strings.Join(names, ", "))
	}
	return nil
}

// ListSubscriptions returns the page of subscriptions matching f after
// cursor, at most limit, in (provider, id) order. The page is chosen by
// the index; records that changed since so that they no longer match are
// left out of it, so a page may hold fewer than limit.
func (q *Query) ListSubscriptions(ctx context.Context, f SubscriptionFilter, limit int, cursor string) (Page, error) {
	if err := ValidateFilter(f); err != nil {
		return Page{}, err
	}
	if limit < 1 || limit > MaxListLimit {
		return Page{}, domain.Errorf(domain.CodeBadRequest, "limit %d: want 1 to %d", limit, MaxListLimit)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	v, err := q.loadedView(ctx)
	if err != nil {
		return Page{}, err
	}
	entries, more := v.subs.List(index.Filter{State: f.State, Provider: f.Provider, Customer: f.Customer}, limit, after)
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = subscriptionKey(e)
	}
	records, err := v.readMany(ctx, domain.ProjectionSubscriptions, keys)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: make([]json.RawMessage, 0, len(records))}
	for _, r := range records {
		var s struct {
			State    domain.LifecycleState `json:"state"`
			Provider string                `json:"provider"`
			Customer string                `json:"customer_id"`
			Account  string                `json:"account"`
		}
		if json.Unmarshal(r, &s) != nil ||
			(f.State != "" && s.State != f.State) || (f.Provider != "" && s.Provider != f.Provider) || (f.Customer != "" && s.Customer != f.Customer) ||
			(f.Account != "" && s.Account != f.Account) {
			continue
		}
		page.Items = append(page.Items, r)
	}
	if more && len(entries) > 0 {
		page.NextCursor = encodeCursor(entries[len(entries)-1].Pos())
	}
	return page, nil
}

// Counts returns the number of subscriptions in each lifecycle state,
// every state present.
func (q *Query) Counts(ctx context.Context) (map[domain.LifecycleState]int, error) {
	v, err := q.loadedView(ctx)
	if err != nil {
		return nil, err
	}
	return v.subs.Counts(), nil
}

// CustomerSubscriptions returns the subscriptions of a customer and of
// every identity linked to it (sharing a link, transitively: a Stripe
// customer whose metadata names user_1 and the Clerk user user_1), in
// (provider, id) order.
func (q *Query) CustomerSubscriptions(ctx context.Context, provider, id string) (Page, error) {
	v, err := q.loadedView(ctx)
	if err != nil {
		return Page{}, err
	}
	group, known := v.people.identities(ident{provider, id})
	customers := make([]index.Customer, len(group))
	for i, c := range group {
		customers[i] = index.Customer{Provider: c.provider, ID: c.id}
	}
	var keys []string
	for _, e := range v.subs.OfCustomers(customers) {
		keys = append(keys, subscriptionKey(e))
	}
	return v.customerPage(ctx, domain.ProjectionSubscriptions, keys, known, provider, id)
}

// CustomerOrders returns the orders of a customer and of every identity
// linked to it, and the orders whose own links are among theirs, in
// (provider, id) order.
func (q *Query) CustomerOrders(ctx context.Context, provider, id string) (Page, error) {
	v, err := q.loadedView(ctx)
	if err != nil {
		return Page{}, err
	}
	group, known := v.people.identities(ident{provider, id})
	return v.customerPage(ctx, domain.ProjectionOrders, v.people.ordersOf(group), known, provider, id)
}

// subscriptionKey is the store key of an indexed subscription.
func subscriptionKey(s index.Subscription) string {
	return domain.RecordKey(domain.KindSubscription, s.Key)
}

func (v *queryView) customerPage(ctx context.Context, projection string, keys []string, known bool, provider, id string) (Page, error) {
	if !known && len(keys) == 0 {
		return Page{}, domain.Errorf(domain.CodeNotFound, "no customer %s/%s", provider, id)
	}
	records, err := v.readMany(ctx, projection, keys)
	if err != nil {
		return Page{}, err
	}
	if records == nil {
		records = []json.RawMessage{}
	}
	return Page{Items: records}, nil
}

// ---------------------------------------------------------------------------
// Customers by link, orders by customer and link.

// ident is a customer at a provider.
type ident struct{ provider, id string }

type custEntry struct {
	who   ident
	links []domain.Link
}

type orderEntry struct {
	key      string
	pos      index.Position
	customer ident
	links    []domain.Link
}

type linkIndex struct {
	mu             sync.RWMutex
	customers      map[uuid.UUID]*custEntry
	byIdent        map[ident]*custEntry
	customerByLink map[domain.Link][]*custEntry
	orders         map[uuid.UUID]*orderEntry
	orderByCust    map[ident][]*orderEntry
	orderByLink    map[domain.Link][]*orderEntry
}

func newLinkIndex() *linkIndex {
	return &linkIndex{
		customers: map[uuid.UUID]*custEntry{}, byIdent: map[ident]*custEntry{}, customerByLink: map[domain.Link][]*custEntry{},
		orders: map[uuid.UUID]*orderEntry{}, orderByCust: map[ident][]*orderEntry{}, orderByLink: map[domain.Link][]*orderEntry{},
	}
}

func removeFrom[E comparable, K comparable](m map[K][]E, k K, e E) {
	s := slices.DeleteFunc(m[k], func(o E) bool { return o == e })
	if len(s) == 0 {
		delete(m, k)
	} else {
		m[k] = s
	}
}

func (x *linkIndex) upsertCustomer(id uuid.UUID, who ident, links []domain.Link) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkCustomer(id)
	e := &custEntry{who: who, links: links}
	x.customers[id] = e
	x.byIdent[who] = e
	for _, l := range links {
		x.customerByLink[l] = append(x.customerByLink[l], e)
	}
}

func (x *linkIndex) removeCustomer(id uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkCustomer(id)
}

func (x *linkIndex) unlinkCustomer(id uuid.UUID) {
	old := x.customers[id]
	if old == nil {
		return
	}
	delete(x.customers, id)
	if x.byIdent[old.who] == old {
		delete(x.byIdent, old.who)
	}
	for _, l := range old.links {
		removeFrom(x.customerByLink, l, old)
	}
}

func (x *linkIndex) upsertOrder(id uuid.UUID, customer ident, p index.Position, links []domain.Link) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkOrder(id)
	e := &orderEntry{key: domain.RecordKey(domain.KindOrder, id), pos: p, customer: customer, links: slices.Clone(links)}
	x.orders[id] = e
	if customer.id != "" {
		x.orderByCust[customer] = append(x.orderByCust[customer], e)
	}
	for _, l := range links {
		x.orderByLink[l] = append(x.orderByLink[l], e)
	}
}

func (x *linkIndex) removeOrder(id uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unlinkOrder(id)
}

func (x *linkIndex) unlinkOrder(id uuid.UUID) {
	old := x.orders[id]
	if old == nil {
		return
	}
	delete(x.orders, id)
	if old.customer.id != "" {
		removeFrom(x.orderByCust, old.customer, old)
	}
	for _, l := range old.links {
		removeFrom(x.orderByLink, l, old)
	}
}

// identities returns who and every identity linked to it, transitively,
// and whether who has a customer record.
func (x *linkIndex) identities(who ident) ([]ident, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, known := x.byIdent[who]
	seen := map[ident]bool{who: true}
	queue := []ident{who}
	for i := 0; i < len(queue) && len(seen) < maxLinkedIdentities; i++ {
		e := x.byIdent[queue[i]]
		if e == nil {
			continue
		}
		for _, l := range e.links {
			for _, o := range x.customerByLink[l] {
				if !seen[o.who] {
					seen[o.who] = true
					queue = append(queue, o.who)
				}
			}
		}
	}
	return queue, known
}

// ordersOf returns the keys of the orders of the identities and of the
// orders carrying one of their links, in (provider, id) order.
func (x *linkIndex) ordersOf(ids []ident) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	set := map[*orderEntry]bool{}
	for _, c := range ids {
		for _, o := range x.orderByCust[c] {
			set[o] = true
		}
		if e := x.byIdent[c]; e != nil {
			for _, l := range e.links {
				for _, o := range x.orderByLink[l] {
					set[o] = true
				}
			}
		}
	}
	orders := slices.Collect(maps.Keys(set))
	slices.SortFunc(orders, func(a, b *orderEntry) int { return index.ComparePositions(a.pos, b.pos) })
	keys := make([]string, len(orders))
	for i, o := range orders {
		keys[i] = o.key
	}
	return keys
}
