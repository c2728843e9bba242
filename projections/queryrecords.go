package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

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
	// jsontext (encoding/json/v2's tokenizer) reads the record as one
	// value, checked but not decoded: several times cheaper than
	// encoding/json's Decoder, which decoded the record into a RawMessage.
	dec := jsontext.NewDecoder(bytes.NewReader(value))
	if t, err := dec.ReadToken(); err != nil || t.Kind() != '{' {
		return nil, false
	}
	if t, err := dec.ReadToken(); err != nil || t.Kind() != '"' || t.String() != "record" {
		return nil, false
	}
	rec, err := dec.ReadValue()
	if err != nil || rec.Kind() != '{' {
		return nil, false
	}
	return json.RawMessage(rec), true
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
	prefix := "$KV." + bucket + "."
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = prefix + k
	}
	return lastMessages(ctx, nc, domain.BucketStream(bucket), subjects, func(subject string, msg *nats.Msg) {
		rev, _ := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
		// A delete or purge marker: the key is gone.
		found(subject[len(prefix):], msg.Data, rev, msg.Header.Get("KV-Operation") != "")
	})
}

// lastMessages calls found with the last message of each of subjects in
// stream that has one, in one direct get request per directBatch subjects
// (JetStream's "multi_last").
func lastMessages(ctx context.Context, nc *nats.Conn, stream string, subjects []string, found func(subject string, msg *nats.Msg)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	asked := make(map[string]bool, len(subjects))
	for _, s := range subjects {
		asked[s] = true
	}
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(asked)), directBatch) {
		if err := lastMessagesOnce(ctx, nc, stream, chunk, asked, found); err != nil {
			return err
		}
	}
	return nil
}

func lastMessagesOnce(ctx context.Context, nc *nats.Conn, stream string, subjects []string, asked map[string]bool, found func(subject string, msg *nats.Msg)) error {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{subjects, len(subjects)})
	if err != nil {
		return err
	}
	// The answer is at most one message per key and an end marker, so
	// the subscription's buffer holds exactly that: a synchronous
	// subscription's default buffer (64k message slots, 512 KiB) per page
	// read was 200 MB of the heap at a million subscriptions under load.
	answers := make(chan *nats.Msg, len(subjects)+2)
	inbox := nc.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, req); err != nil {
		return err
	}
	for {
		var msg *nats.Msg
		select {
		case msg = <-answers:
		case <-ctx.Done():
			return ctx.Err()
		}
		switch status := msg.Header.Get("Status"); {
		case status == "204": // end of batch
			return nil
		case status == "404" && msg.Header.Get("Description") == "No Results": // none of the subjects has one
			return nil
		case status != "":
			return fmt.Errorf("direct get: %s %s", status, msg.Header.Get("Description"))
		}
		subject := msg.Header.Get(jetstream.SubjectHeader)
		if !asked[subject] {
			return fmt.Errorf("direct get: answer for %q", subject)
		}
		found(subject, msg)
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
