package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// ChangesDuplicateWindow is how long the change feed stream remembers the
// message ids of the changes it stored: a relay that crashed after
// publishing and before acknowledging re-publishes within it, and stores
// nothing.
const ChangesDuplicateWindow = 5 * time.Minute

// WalletProvider stands for the provider of wallets, which belong to a
// user rather than to one provider.
const WalletProvider = domain.WalletNamespace

// ChangesConfig is the change feed stream's configuration. It keeps every
// change (set limits on the stream if you need them: subscribers resume
// only from a position the stream still holds).
func ChangesConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         domain.ChangesStream,
		Description:  "billfold change feed: every record change and lifecycle transition, once",
		Subjects:     []string{domain.ChangeSubjectPrefix + ">", domain.LifecycleSubjectPrefix + ">"},
		Storage:      jetstream.FileStorage,
		Replicas:     max(replicas, 1),
		Duplicates:   ChangesDuplicateWindow,
		AllowDirect:  true,
		MaxConsumers: domain.MaxStreamConsumers,
	}
}

// Change is the body of a message on billfold.changes: a record as it was
// stored, with the version it reached, the event that made it, and whether
// unsigned or bypassed input contributed to it (the record's own
// verification).
type Change struct {
	Projection   string              `json:"projection"`
	Provider     string              `json:"provider"`
	ID           string              `json:"id"`
	Version      int                 `json:"version"`
	EventID      string              `json:"event_id"`
	Verification domain.Verification `json:"verification"`
	// Account is the record's Stripe Connect account, when it has one.
	Account string          `json:"account,omitempty"`
	Record  json.RawMessage `json:"record"`
}

// LifecycleChange is the body of a message on billfold.lifecycle: one move
// of a subscription's lifecycle state between two committed versions of
// its record (see LifecycleStep).
type LifecycleChange struct {
	From         domain.LifecycleState `json:"from"`
	To           domain.LifecycleState `json:"to"`
	At           time.Time             `json:"at"`
	Provider     string                `json:"provider"`
	Subscription string                `json:"subscription"`
	Customer     string                `json:"customer"`
	EventID      string                `json:"event_id"`
	Version      int                   `json:"version"`
	Verification domain.Verification   `json:"verification"`
}

// Relay publishes a projection's record writes to the change feed. It
// reads the projection's KV bucket stream with a durable consumer, so it
// resumes where it stopped, and it acknowledges a write only after the
// feed stored every message of it. Each message carries Nats-Msg-Id
// "<bucket>:<bucket sequence>", and on every start the relay skips the
// writes the feed already holds, so a crash between publishing and
// acknowledging re-sends nothing.
//
// One write at a time is in flight (MaxAckPending 1), across every billfold
// process, so the feed is in the order of the bucket: a record's versions
// arrive in order.
type Relay struct {
	projection string
	generation int
	js         jetstream.JetStream
	bucket     string
	log        *slog.Logger
	start      RelayStart

	done uint64 // the last bucket sequence the feed holds
}

// RelayStart is where a new generation's relay starts, so that a rebuild
// does not send again what the previous generation already published
// (DESIGN.md invariant 6). The zero value relays every write.
type RelayStart struct {
	// From is the first bucket sequence the relay's consumer reads, when
	// the consumer does not exist yet.
	From uint64 `json:"relay_from,omitempty"`
	// Writes at or after SkipFrom that a journal event at or below
	// PublishedUpTo caused were published by the previous generation, and
	// are skipped.
	SkipFrom      uint64 `json:"relay_skip_from,omitempty"`
	PublishedUpTo uint64 `json:"relay_published_up_to,omitempty"`
}

// NewRelay returns the relay of projection's store.
func NewRelay(projection string, js jetstream.JetStream, store *Store, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{projection: projection, generation: store.Generation(), js: js, bucket: store.Bucket(),
		log: log.With("projection", projection, "relay", "feed", "generation", store.Generation())}
}

// Start sets where the relay starts (see RelayStart).
func (r *Relay) Start(s RelayStart) *Relay { r.start = s; return r }

// Durable is the name of the relay's consumer on the bucket's stream.
func (r *Relay) Durable() string { return domain.FeedDurable(r.projection, r.generation) }

// EnsureConsumer opens the relay's durable consumer, creating it when it
// does not exist.
func (r *Relay) EnsureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	stream := domain.BucketStream(r.bucket)
	if c, err := r.js.Consumer(ctx, stream, r.Durable()); err == nil {
		return c, nil
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       r.Durable(),
		Description:   "billfold change feed relay: " + r.projection,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1,
	}
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
	cause, err := strconv.ParseUint(h.Get(HeaderJournalSequence), 10, 64)
	return err == nil && cause <= r.start.PublishedUpTo
}

// Run relays writes until ctx is done, surviving NATS outages.
func (r *Relay) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.runOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("change relay interrupted, resuming", "error", err)
			sleep(ctx, time.Second)
		}
	}
}

func (r *Relay) runOnce(ctx context.Context) error {
	c, err := r.EnsureConsumer(ctx)
	if err != nil {
		return err
	}
	if r.done, err = r.published(ctx); err != nil {
		return err
	}
	return consume(ctx, c, 1, func(msg jetstream.Msg) error { return r.handle(ctx, msg) })
}

// published is the bucket sequence of the last write the feed holds for
// this projection and bucket, 0 when none.
func (r *Relay) published(ctx context.Context) (uint64, error) {
	s, err := r.js.Stream(ctx, domain.ChangesStream)
	if err != nil {
		return 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, domain.ChangeFilter(r.projection))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	bucket, seq, ok := strings.Cut(m.Header.Get(jetstream.MsgIDHeader), ":")
	if !ok || bucket != r.bucket {
		return 0, nil
	}
	n, _ := strconv.ParseUint(seq, 10, 64)
	return n, nil
}

// handle publishes one write and acknowledges it. It returns an error only
// when ctx ended before the write was published: it is then redelivered.
func (r *Relay) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		r.log.Error("bucket message without metadata", "error", err)
		return nil
	}
	seq := meta.Sequence.Stream
	if seq <= r.done || r.skipped(seq, msg.Headers()) {
		_ = msg.Ack()
		return nil
	}
	msgs, err := r.feedMessages(ctx, msg.Subject(), msg.Headers(), msg.Data(), seq)
	for i := 1; errors.As(err, new(feedUnavailable)); i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("change feed not readable, retrying", "seq", seq, "error", err)
		_ = msg.InProgress()
		sleep(ctx, DefaultRetryPolicy.backoff(i))
		msgs, err = r.feedMessages(ctx, msg.Subject(), msg.Headers(), msg.Data(), seq)
	}
	if err != nil {
		// Not a record billfold wrote: nothing a subscriber could use.
		r.log.Error("bucket write not relayed", "subject", msg.Subject(), "seq", seq, "error", err)
	}
	for i := 1; len(msgs) > 0; i++ {
		_, err := r.js.PublishMsg(ctx, msgs[0])
		if err == nil {
			msgs = msgs[1:]
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("change not published, retrying", "seq", seq, "error", err)
		_ = msg.InProgress()
		sleep(ctx, DefaultRetryPolicy.backoff(i))
	}
	r.done = seq
	return msg.Ack()
}

// feedMessages are the feed messages of one bucket write: the lifecycle
// transition it made (LifecycleStep), then the change itself (last, so
// that the change marks the whole write as published). Deletes and helper
// records (alias, topup) have none.
func (r *Relay) feedMessages(ctx context.Context, subject string, h nats.Header, value []byte, seq uint64) ([]*nats.Msg, error) {
	if op := h.Get("KV-Operation"); op != "" {
		return nil, nil // a delete or purge: billfold writes none
	}
	key := strings.TrimPrefix(subject, "$KV."+r.bucket+".")
	if kind, _, _ := strings.Cut(key, "."); !domain.IsRecordKind(kind) {
		return nil, nil
	}
	record, err := StoredRecord(value)
	if err != nil || record == nil {
		return nil, fmt.Errorf("stored value without a record: %v", err)
	}
	var rec struct {
		SubscriptionVersion
		UserID  string `json:"user_id"`
		Account string `json:"account"`
	}
	if err := json.Unmarshal(record, &rec); err != nil {
		return nil, err
	}
	if r.projection == domain.ProjectionWallets {
		rec.Provider, rec.ID = WalletProvider, rec.UserID
	}
	eventID := h.Get(HeaderEventID)
	msgID := r.bucket + ":" + strconv.FormatUint(seq, 10)
	changeSubject := domain.ChangeSubject(r.projection, rec.Provider, rec.ID)

	var out []*nats.Msg
	if r.projection == domain.ProjectionSubscriptions {
		prev, err := r.lastPublished(ctx, changeSubject)
		if err != nil {
			return nil, err
		}
		if tr, ok := LifecycleStep(prev, &rec.SubscriptionVersion, eventID); ok {
			body, _ := json.Marshal(tr)
			out = append(out, feedMsg(domain.LifecycleSubject(rec.Provider, tr.To), msgID+":lifecycle", body))
		}
	}
	body, err := json.Marshal(Change{Projection: r.projection, Provider: rec.Provider, ID: rec.ID,
		Version: rec.Version, EventID: eventID, Verification: rec.Verification, Account: rec.Account, Record: record})
	if err != nil {
		return nil, err
	}
	return append(out, feedMsg(changeSubject, msgID, body)), nil
}

// feedUnavailable is the change feed failing to answer a read: the write
// is retried, never passed over.
type feedUnavailable struct{ error }

// lastPublished is the subscription version the feed last published on
// subject (nil when none): the previous committed version that the next
// lifecycle transition moves from. The relays publish one write at a time,
// in the bucket's order, so it is always the version before this write.
func (r *Relay) lastPublished(ctx context.Context, subject string) (*SubscriptionVersion, error) {
	s, err := r.js.Stream(ctx, domain.ChangesStream)
	if err != nil {
		return nil, feedUnavailable{err}
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, feedUnavailable{err}
	}
	var c struct {
		Record SubscriptionVersion `json:"record"`
	}
	if err := json.Unmarshal(m.Data, &c); err != nil {
		return nil, nil // not a change billfold wrote: start the chain again
	}
	return &c.Record, nil
}

func feedMsg(subject, id string, body []byte) *nats.Msg {
	m := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: body}
	m.Header.Set(jetstream.MsgIDHeader, id)
	return m
}
