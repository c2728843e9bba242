package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// RelayBatch is the most bucket writes a relay publishes in one burst.
const RelayBatch = 256

// relayGroup is the priority group of every relay consumer. The consumer
// pins it to one client, so one process at a time relays a projection: a
// record's versions then reach the feed in the order they were written,
// with a whole batch in flight.
const relayGroup = "relay"

// relayPinTTL is how long a relay that stopped pulling (its process
// crashed) keeps the pin before another process takes over. An idle relay
// asks again every relayPullExpiry, so it keeps its pin.
const (
	relayPinTTL     = relayAckWait
	relayPullExpiry = relayPinTTL / 2
)

// relayAckWait is how long a pulled bucket write stays with one relay
// before its consumer redelivers it: the projectors' (projections.AckWait).
const relayAckWait = 10 * time.Second

// relayRetryInitial and relayRetryMax bound the jittered exponential wait
// before the relay reads or publishes again: the projectors' default
// retry policy (projections.DefaultRetryPolicy).
const (
	relayRetryInitial = 100 * time.Millisecond
	relayRetryMax     = 5 * time.Second
)

// maxCachedHeads bounds the records whose feed head a relay remembers;
// past it the cache starts empty again and misses are read from the feed.
const maxCachedHeads = 1 << 16

// Relay publishes a projection's record writes to the change feed. It
// reads the projection's KV bucket stream with a durable consumer, so it
// resumes where it stopped, and it acknowledges a write only after the
// feed stored every message of it. Each message carries Nats-Msg-Id
// "<bucket>:<bucket sequence>".
//
// The consumer is pinned to one process at a time, and a relay publishes a
// batch of writes together, in rounds: a round holds at most one write per
// record, and the next round starts once every message of the previous one
// is stored. Before it publishes a write, the relay compares it with what
// the feed last stored of its record (its head): a write the feed holds
// already (a crash between publishing and acknowledging, a lost consumer)
// is skipped, and a write whose previous write of the record (its
// kvstore.HeaderPreviousRevision) is not on the feed yet (another process still
// holds it, or held it when it crashed) is handed back until it is. So a record's versions reach the feed in order,
// once each, without one round trip per write.
type Relay struct {
	projection string
	generation int
	js         jetstream.JetStream
	bucket     string
	log        *slog.Logger
	start      kvstore.RelayStart

	// next is the consumer's delivery sequence after the last write this
	// relay handled. last, per change subject, is what the feed last
	// stored of the record; it holds while every delivery of the consumer
	// comes to this relay, and is forgotten when the deliveries it sees
	// are not contiguous (another process relayed meanwhile) or the relay
	// restarts. (Deliveries, not bucket sequences: the consumer skips the
	// helper entries' writes.)
	next uint64
	last map[string]feedHead
}

// NewRelay returns the relay of projection's store.
func NewRelay(projection string, js jetstream.JetStream, store *kvstore.Store, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{projection: projection, generation: store.Generation(), js: js, bucket: store.Bucket(),
		log: log.With("projection", projection, "relay", "feed", "generation", store.Generation())}
}

// Start sets where the relay starts (see kvstore.RelayStart).
func (r *Relay) Start(s kvstore.RelayStart) *Relay { r.start = s; return r }

// Durable is the name of the relay's consumer on the bucket's stream.
func (r *Relay) Durable() string { return domain.FeedDurable(r.projection, r.generation) }

// pin makes cfg a relay consumer of bucket: a batch in flight, pinned to
// one client, delivering only the writes of records. The helper entries
// (an order's alias, a wallet's top-ups and identities: a third of the
// writes of the onboarding mix) have no change to publish, and delivering
// and acknowledging them cost as much as a record's.
func pin(cfg *jetstream.ConsumerConfig, bucket string) {
	cfg.MaxAckPending = RelayBatch
	cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
	cfg.PriorityGroups = []string{relayGroup}
	cfg.PinnedTTL = relayPinTTL
	cfg.FilterSubject, cfg.FilterSubjects = "", recordSubjects(bucket)
}

// recordSubjects are the subjects of bucket's records, one per kind.
func recordSubjects(bucket string) []string {
	kinds := []string{domain.KindCustomer, domain.KindOrder, domain.KindSubscription, domain.KindWallet}
	subjects := make([]string, len(kinds))
	for i, kind := range kinds {
		subjects[i] = "$KV." + bucket + "." + kind + ".>"
	}
	return subjects
}

// EnsureConsumer opens the relay's durable consumer, creating it when it
// does not exist, and brings one that an earlier release created (one
// write in flight, no pin; every write delivered) to the relay's
// configuration.
func (r *Relay) EnsureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	stream := domain.BucketStream(r.bucket)
	if c, err := r.js.Consumer(ctx, stream, r.Durable()); err == nil {
		cfg := c.CachedInfo().Config
		if cfg.PriorityPolicy == jetstream.PriorityPolicyPinned && cfg.MaxAckPending == RelayBatch &&
			slices.Equal(cfg.FilterSubjects, recordSubjects(r.bucket)) {
			return c, nil
		}
		pin(&cfg, r.bucket)
		if c, err = r.js.UpdateConsumer(ctx, stream, cfg); err != nil {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "change relay consumer "+r.projection)
		}
		return c, nil
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       r.Durable(),
		Description:   "billfold change feed relay: " + r.projection,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       relayAckWait,
		MaxDeliver:    -1,
	}
	pin(&cfg, r.bucket)
	if r.start.From > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.start.From
	}
	c, err := r.js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "change relay consumer "+r.projection)
	}
	return c, nil
}

// skipped reports whether the previous generation published this write.
func (r *Relay) skipped(seq uint64, h nats.Header) bool {
	if r.start.SkipFrom == 0 || seq < r.start.SkipFrom {
		return false
	}
	cause, err := strconv.ParseUint(h.Get(kvstore.HeaderJournalSequence), 10, 64)
	return err == nil && cause <= r.start.PublishedUpTo
}

// Run relays writes until ctx is done, surviving NATS outages.
func (r *Relay) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.runOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("change relay interrupted, resuming", "error", err)
			jsio.Sleep(ctx, time.Second)
		}
	}
}

func (r *Relay) runOnce(ctx context.Context) error {
	c, err := r.EnsureConsumer(ctx)
	if err != nil {
		return err
	}
	r.next, r.last = 0, nil
	return jsio.ConsumeBatches(ctx, c, RelayBatch, func(msgs []jetstream.Msg) error { return r.handleBatch(ctx, msgs) },
		jetstream.PullPriorityGroup(relayGroup), jetstream.PullExpiry(relayPullExpiry))
}

// bucketSeq is the write of this relay's bucket a feed message was
// published for, by its message id; 0 for another bucket's.
func (r *Relay) bucketSeq(h nats.Header) uint64 {
	bucket, seq, ok := strings.Cut(h.Get(jetstream.MsgIDHeader), ":")
	if !ok || bucket != r.bucket {
		return 0
	}
	n, _ := strconv.ParseUint(seq, 10, 64)
	return n
}

// feedHead is what the feed last stored of one record.
type feedHead struct {
	// seq is the bucket sequence of the write it was published for, 0
	// when none or when another generation's relay published it.
	seq uint64
	// other: another generation's relay published it.
	other bool
	// subscription is the version the lifecycle feed moves on from.
	subscription *SubscriptionVersion
}

// relayGapPatience is how many times a write whose previous write is not
// on the feed yet is handed back (each for relayGapDelay) before it is
// published anyway. The previous write is then with another process, or
// with none since a crash, until its AckWait ends; or it never comes (the
// bucket's history dropped it, the feed's limits aged it out).
const (
	relayGapPatience = 20
	relayGapDelay    = time.Second
)

// relayWrite is one bucket write on its way to the feed.
type relayWrite struct {
	msg jetstream.Msg
	seq uint64
	// delivery is the consumer's sequence of this delivery of it.
	delivery uint64
	// delivered is how many times the consumer delivered it.
	delivered uint64
	// subject is the record's change subject; "" when the write has
	// nothing to publish (a delete, a helper record, published already).
	subject string
	eventID string
	// previous is the revision of the record the write replaced, 0 for
	// a new record (or a write of an earlier release).
	previous  uint64
	change    *nats.Msg
	lifecycle *nats.Msg
	// subscription is the subscription version the write committed.
	subscription *SubscriptionVersion
	// held: its record's previous version is not on the feed yet.
	held bool
}

// handleBatch publishes a batch of writes and acknowledges them. It
// returns an error only when ctx ended first: the batch is then delivered
// again.
func (r *Relay) handleBatch(ctx context.Context, msgs []jetstream.Msg) error {
	writes := make([]relayWrite, 0, len(msgs))
	for _, msg := range msgs {
		meta, err := msg.Metadata()
		if err != nil {
			r.log.Error("bucket message without metadata", "error", err)
			continue
		}
		w := relayWrite{msg: msg, seq: meta.Sequence.Stream, delivery: meta.Sequence.Consumer, delivered: meta.NumDelivered}
		if !r.skipped(w.seq, msg.Headers()) {
			if err := r.decode(&w); err != nil {
				// Not a record billfold wrote: nothing a subscriber could use.
				r.log.Error("bucket write not relayed", "subject", msg.Subject(), "seq", w.seq, "error", err)
			}
		}
		writes = append(writes, w)
	}
	if len(writes) == 0 {
		return nil
	}
	hold := func() {
		for _, w := range writes {
			_ = w.msg.InProgress()
		}
	}
	if err := r.untilRead(ctx, hold, func() error { return r.readHeads(ctx, writes) }); err != nil {
		return err
	}
	r.plan(writes)
	if err := r.publish(ctx, writes, hold); err != nil {
		return err
	}
	for _, w := range writes {
		if w.held {
			_ = w.msg.NakWithDelay(relayGapDelay)
		} else {
			_ = w.msg.Ack()
		}
	}
	r.next = writes[len(writes)-1].delivery + 1
	return nil
}

// untilRead runs read until the feed answers it or ctx ends: a write is
// retried, never passed over.
func (r *Relay) untilRead(ctx context.Context, hold func(), read func() error) error {
	for i := 1; ; i++ {
		err := read()
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("change feed not readable, retrying", "error", err)
		hold()
		jsio.Sleep(ctx, jsio.Backoff(i, relayRetryInitial, relayRetryMax))
	}
}

// decode reads a write's record and makes its change message. Deletes and
// helper records (alias, topup) have none.
func (r *Relay) decode(w *relayWrite) error {
	h := w.msg.Headers()
	if op := h.Get("KV-Operation"); op != "" {
		return nil // a delete or purge: billfold writes none
	}
	key := strings.TrimPrefix(w.msg.Subject(), "$KV."+r.bucket+".")
	if kind, _, _ := strings.Cut(key, "."); !domain.IsRecordKind(kind) {
		return nil
	}
	record, err := reducers.RecordOf(w.msg.Data())
	if err != nil || record == nil {
		return fmt.Errorf("stored value without a record: %v", err)
	}
	var rec struct {
		SubscriptionVersion
		UserID  string `json:"user_id"`
		Account string `json:"account"`
	}
	// encoding/json/v2's decoder (go-json-experiment) skips the members
	// the feed does not need several times faster than encoding/json.
	if err := jsonv2.Unmarshal(record, &rec); err != nil {
		return err
	}
	if r.projection == domain.ProjectionWallets {
		rec.Provider, rec.ID = WalletProvider, rec.UserID
	}
	w.eventID = h.Get(kvstore.HeaderEventID)
	w.previous, _ = strconv.ParseUint(h.Get(kvstore.HeaderPreviousRevision), 10, 64)
	body, err := changeBody(Change{Projection: r.projection, Provider: rec.Provider, ID: rec.ID,
		Version: rec.Version, EventID: w.eventID, Verification: rec.Verification, Account: rec.Account}, record)
	if err != nil {
		return err
	}
	w.subject = domain.ChangeSubject(r.projection, rec.Provider, rec.ID)
	w.change = feedMsg(w.subject, r.msgID(w.seq), body)
	if r.projection == domain.ProjectionSubscriptions {
		w.subscription = &rec.SubscriptionVersion
	}
	return nil
}

// changeBody is c encoded with record as its record: the stored record's
// bytes, which the reducers encoded, are appended as they are rather than
// validated and compacted once more by json.Marshal.
func changeBody(c Change, record json.RawMessage) ([]byte, error) {
	c.Record = nil
	head, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	// Record is Change's last member, so it goes where "record":null ends.
	const null = `"record":null}`
	if !bytes.HasSuffix(head, []byte(null)) {
		return nil, fmt.Errorf("change head %q does not end in its record", head)
	}
	body := make([]byte, 0, len(head)+len(record))
	body = append(body, head[:len(head)-len(null)]...)
	body = append(body, `"record":`...)
	body = append(body, record...)
	return append(body, '}'), nil
}

func (r *Relay) msgID(seq uint64) string { return r.bucket + ":" + strconv.FormatUint(seq, 10) }

// readHeads makes sure r.last holds the feed's head of every record the
// batch writes, reading from the feed, in one request per 256 records, the
// ones it cannot vouch for: all of them when the batch does not follow the
// last one this relay handled, else the new ones and those of writes
// delivered before (their publication may have been lost, or made).
func (r *Relay) readHeads(ctx context.Context, writes []relayWrite) error {
	if r.last == nil || len(r.last) > maxCachedHeads || writes[0].delivery != r.next {
		r.last = map[string]feedHead{}
	}
	var missing []string
	for _, w := range writes {
		if _, ok := r.last[w.subject]; w.subject != "" && (!ok || w.delivered > 1) {
			missing = append(missing, w.subject)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	found := map[string]feedHead{}
	err := jsio.LastMessages(ctx, r.js.Conn(), domain.ChangesStream, missing, func(subject string, m *nats.Msg) {
		var c struct {
			Record SubscriptionVersion `json:"record"`
		}
		if json.Unmarshal(m.Data, &c) != nil {
			return // not a change billfold wrote: as if none
		}
		seq := r.bucketSeq(m.Header)
		found[subject] = feedHead{seq: seq, other: seq == 0, subscription: &c.Record}
	})
	if err != nil {
		return feedUnavailable{err}
	}
	for _, s := range missing {
		r.last[s] = found[s] // the zero head: the feed has none
	}
	return nil
}

// plan decides, in bucket order, what each write publishes: nothing when
// the feed holds it (or a later write of its record) already; nothing yet
// when the write it replaced is not on the feed (held), unless the feed's
// head of the record is another generation's; else its change and, for a
// subscription, the lifecycle move from the feed's head (LifecycleStep).
func (r *Relay) plan(writes []relayWrite) {
	heldSubjects := map[string]bool{}
	for i := range writes {
		w := &writes[i]
		if w.subject == "" {
			continue
		}
		head := r.last[w.subject]
		switch {
		case head.seq >= w.seq:
			w.subject = "" // published already
			continue
		case heldSubjects[w.subject],
			!head.other && head.seq < w.previous && w.delivered <= relayGapPatience:
			w.held, heldSubjects[w.subject] = true, true
			w.subject = ""
			continue
		}
		if w.subscription != nil {
			if tr, ok := LifecycleStep(head.subscription, w.subscription, w.eventID); ok {
				body, _ := json.Marshal(tr)
				w.lifecycle = feedMsg(domain.LifecycleSubject(w.subscription.Provider, tr.To), r.msgID(w.seq)+":lifecycle", body)
			}
		}
		r.last[w.subject] = feedHead{seq: w.seq, subscription: w.subscription}
	}
}

// publish sends the writes' messages in rounds of at most one write per
// record: each round's lifecycle transitions, then its changes, so that a
// stored change means its whole write is published.
func (r *Relay) publish(ctx context.Context, writes []relayWrite, hold func()) error {
	var rounds [][]*relayWrite
	seen := map[string]int{}
	for i := range writes {
		w := &writes[i]
		if w.subject == "" {
			continue
		}
		n := seen[w.subject]
		seen[w.subject] = n + 1
		if n == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[n] = append(rounds[n], w)
	}
	for _, round := range rounds {
		var lifecycle, changes []*nats.Msg
		for _, w := range round {
			if w.lifecycle != nil {
				lifecycle = append(lifecycle, w.lifecycle)
			}
			changes = append(changes, w.change)
		}
		for _, msgs := range [][]*nats.Msg{lifecycle, changes} {
			if err := r.publishAll(ctx, msgs, hold); err != nil {
				return err
			}
		}
	}
	return nil
}

// publishAll stores msgs on the feed, retrying those not stored until ctx
// ends.
func (r *Relay) publishAll(ctx context.Context, msgs []*nats.Msg, hold func()) error {
	for i := 1; len(msgs) > 0; i++ {
		errs := jsio.PublishAsync(ctx, r.js, msgs, nil, nil)
		failed := msgs[:0:0]
		var last error
		for j, err := range errs {
			if err != nil {
				failed, last = append(failed, msgs[j]), err
			}
		}
		if len(failed) == 0 || ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("changes not published, retrying", "changes", len(failed), "error", last)
		hold()
		jsio.Sleep(ctx, jsio.Backoff(i, relayRetryInitial, relayRetryMax))
		msgs = failed
	}
	return nil
}

// feedUnavailable is the change feed failing to answer a read: the write
// is retried, never passed over.
type feedUnavailable struct{ error }

func feedMsg(subject, id string, body []byte) *nats.Msg {
	m := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: body}
	m.Header.Set(jetstream.MsgIDHeader, id)
	return m
}
