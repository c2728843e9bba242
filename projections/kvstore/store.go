package kvstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/reducers"
)

// Store is one generation of a projection's records in a JetStream KV
// bucket, with a bounded cache of the records this process wrote or read.
// Writes are compare-and-set on the KV revision, so two processes folding
// the same projection never overwrite each other's work: the loser re-reads
// and folds again.
type Store struct {
	js         jetstream.JetStream
	kv         jetstream.KeyValue
	generation int
	limit      int

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	value    []byte // nil: known absent
	revision uint64
}

// DefaultCacheRecords bounds a store's cache.
const DefaultCacheRecords = 200_000

// RecordHistory is how many revisions of each record a bucket keeps. The
// change feed relay reads every write from the bucket's stream, so a
// revision must outlive the relay's lag: with 64, a record must change 64
// times while its relay is behind before a version is skipped on the feed
// (docs/consuming.md). Queries read the latest revision only.
const RecordHistory = 64

// ErrConflict is a compare-and-set that lost to another writer.
var ErrConflict = errors.New("record changed by another writer")

// EnsureStore creates (or opens) the bucket of a projection generation.
func EnsureStore(ctx context.Context, js jetstream.JetStream, projection string, generation, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      domain.ProjectionBucket(projection, generation),
		Description: "billfold " + projection + " projection",
		History:     RecordHistory,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "projection store "+projection)
	}
	s := NewStore(js, kv)
	s.generation = generation
	return s, nil
}

// NewStore wraps a KV bucket of js.
func NewStore(js jetstream.JetStream, kv jetstream.KeyValue) *Store {
	return &Store{js: js, kv: kv, limit: DefaultCacheRecords, cache: map[string]cached{}}
}

// Bucket is the store's KV bucket name.
func (s *Store) Bucket() string { return s.kv.Bucket() }

// Generation is the projection generation the store holds (1 for a store
// made with NewStore).
func (s *Store) Generation() int { return max(s.generation, 1) }

// History returns the stored revisions of key the bucket keeps (at most
// RecordHistory), oldest first.
func (s *Store) History(ctx context.Context, key string) ([]jetstream.KeyValueEntry, error) {
	return s.kv.History(ctx, key)
}

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

// Latest returns the value stored under key; found is false when it is
// absent or deleted.
// It reads the bucket itself, not the cache, so a value written by another
// billfold process is seen at once (the query API's single reads).
func (s *Store) Latest(ctx context.Context, key string) (value []byte, found bool, err error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return e.Value(), true, nil
}

// LatestValues is LatestValues over the store's bucket, past its cache.
func (s *Store) LatestValues(ctx context.Context, keys []string) (map[string][]byte, error) {
	return LatestValues(ctx, s.js, s.kv.Bucket(), keys)
}

// WatchKind watches the records of one kind (domain.KindOrder, ...) in
// the bucket: their current values, then each change. The bucket's helper
// entries are not delivered.
func (s *Store) WatchKind(ctx context.Context, kind string) (jetstream.KeyWatcher, error) {
	return s.kv.Watch(ctx, kind+".>")
}

// Get returns a record and its revision; nil and 0 when absent.
func (s *Store) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	c, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return c.value, c.revision, nil
	}
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		s.remember(key, cached{})
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	s.remember(key, cached{value: e.Value(), revision: e.Revision()})
	return e.Value(), e.Revision(), nil
}

// Prefetch reads the records of keys the cache does not hold in batched
// direct gets (one request per 256 keys) and caches them, absent ones as
// known absent. On failure the keys are left to be read one by one.
func (s *Store) Prefetch(ctx context.Context, keys []string) {
	s.mu.Lock()
	missing := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ok := s.cache[k]; !ok {
			missing = append(missing, k)
		}
	}
	s.mu.Unlock()
	slices.Sort(missing)
	missing = slices.Compact(missing)
	for chunk := range slices.Chunk(missing, jsio.DirectBatch) {
		found := make(map[string]cached, len(chunk))
		gone := map[string]bool{}
		err := latestEntries(ctx, s.js.Conn(), s.kv.Bucket(), chunk, func(key string, value []byte, revision uint64, deleted bool) {
			if deleted {
				gone[key] = true // its revision is not 0: read it the usual way
				return
			}
			found[key] = cached{value: value, revision: revision}
		})
		if err != nil {
			return
		}
		for _, k := range chunk {
			if c, ok := found[k]; ok {
				s.remember(k, c)
			} else if !gone[k] {
				s.remember(k, cached{})
			}
		}
	}
}

// Cause is the journal event a record write applies. Every write carries
// it as headers (HeaderEventID, HeaderEventType, HeaderJournalSequence) on
// the KV message itself, so the change feed relay publishes each change
// with the event that made it, a rebuild's relay can tell which writes the
// previous generation already published, and no crash can separate a
// write from its cause.
type Cause struct {
	EventID   string
	EventType string
	// Sequence is the event's journal sequence.
	Sequence uint64
}

// Headers on every record write in a projection bucket.
const (
	HeaderEventID         = "Billfold-Event-Id"
	HeaderEventType       = "Billfold-Event-Type"
	HeaderJournalSequence = "Billfold-Journal-Sequence"
	// HeaderPreviousRevision, on a write that replaces a stored value, is
	// the revision it replaced: the change feed relay publishes a write
	// only after the one before it (Relay).
	HeaderPreviousRevision = "Billfold-Previous-Revision"
)

// WriteMsg is the KV message that stores value under key with cause, in
// place of revision (0: a new key).
func (s *Store) WriteMsg(key string, value []byte, cause Cause, revision uint64) *nats.Msg {
	msg := &nats.Msg{Subject: "$KV." + s.kv.Bucket() + "." + key, Header: nats.Header{}, Data: value}
	msg.Header.Set(HeaderEventID, cause.EventID)
	msg.Header.Set(HeaderEventType, cause.EventType)
	msg.Header.Set(HeaderJournalSequence, strconv.FormatUint(cause.Sequence, 10))
	if revision > 0 {
		msg.Header.Set(HeaderPreviousRevision, strconv.FormatUint(revision, 10))
	}
	return msg
}

// put writes value under key if the stored revision is still revision (0:
// absent), with cause in the message headers. It is what kv.Create and
// kv.Update do (a publish to $KV.<bucket>.<key> with
// Nats-Expected-Last-Subject-Sequence), plus the headers. On a lost race it
// forgets the cached record and returns ErrConflict.
func (s *Store) put(ctx context.Context, key string, value []byte, revision uint64, cause Cause) error {
	ack, err := s.js.PublishMsg(ctx, s.WriteMsg(key, value, cause, revision), jetstream.WithExpectLastSequencePerSubject(revision))
	if jsio.WrongLastSequence(err) {
		s.forget(key)
		return ErrConflict
	}
	if err != nil {
		s.forget(key)
		return err
	}
	s.remember(key, cached{value: value, revision: ack.Sequence})
	return nil
}

func (s *Store) remember(key string, c cached) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= s.limit {
		// Evict an arbitrary tenth: cheap, and a miss only costs a read.
		n := s.limit / 10
		for k := range s.cache {
			delete(s.cache, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	s.cache[key] = c
}

func (s *Store) forget(key string) {
	s.mu.Lock()
	delete(s.cache, key)
	s.mu.Unlock()
}

// Forget drops every cached record, for tests and after a generation switch.
func (s *Store) Forget() {
	s.mu.Lock()
	s.cache = map[string]cached{}
	s.mu.Unlock()
}

// Tx is one Apply's view of a store: it remembers the revision of every
// record read, so the changes can be written compare-and-set against them.
type Tx struct {
	ctx   context.Context
	store *Store
	read  map[string]uint64
}

// NewTx starts one Apply's view of s: it remembers the revision of every
// record read, and Commit writes the changes compare-and-set against them.
func NewTx(ctx context.Context, s *Store) *Tx {
	return &Tx{ctx: ctx, store: s, read: map[string]uint64{}}
}

// Get implements reducers.Lookup.
func (t *Tx) Get(key string) ([]byte, error) {
	v, rev, err := t.store.Get(t.ctx, key)
	if err != nil {
		return nil, err
	}
	t.read[key] = rev
	return v, nil
}

// Commit writes changes, each against the revision it was read at and
// each carrying the event that caused it.
func (t *Tx) Commit(changes map[string][]byte, cause Cause) error {
	for key, value := range changes {
		rev, ok := t.read[key]
		if !ok {
			// A reducer that writes a record it never read cannot be
			// checked against concurrent writers; read it now.
			if _, err := t.Get(key); err != nil {
				return err
			}
			rev = t.read[key]
		}
		if err := t.store.put(t.ctx, key, value, rev, cause); err != nil {
			return err
		}
	}
	return nil
}

// EachValue calls fn with the key and latest value of every record the
// store holds.
func (s *Store) EachValue(ctx context.Context, fn func(key string, value []byte)) error {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return domain.Wrap(domain.CodeStoreUnavailable, err, "read "+s.Bucket())
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u := <-w.Updates():
			if u == nil {
				return nil
			}
			fn(u.Key(), u.Value())
		}
	}
}

// jsio.DirectBatch bounds the keys of one batched direct get; the server

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
	for chunk := range slices.Chunk(keys, jsio.DirectBatch) {
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
	prefix := "$KV." + bucket + "."
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = prefix + k
	}
	return jsio.LastMessages(ctx, nc, domain.BucketStream(bucket), subjects, func(subject string, msg *nats.Msg) {
		rev, _ := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
		// A delete or purge marker: the key is gone.
		found(subject[len(prefix):], msg.Data, rev, msg.Header.Get("KV-Operation") != "")
	})
}
