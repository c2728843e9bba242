package projections

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// RetryPolicy bounds the retries of an event whose stores fail.
type RetryPolicy struct {
	// Attempts before the event goes to the dead letters.
	Attempts int
	// Initial and Max bound the exponential backoff between attempts;
	// each wait is jittered by up to half of it.
	Initial, Max time.Duration
}

// DefaultRetryPolicy retries for about ten seconds.
var DefaultRetryPolicy = RetryPolicy{Attempts: 6, Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// AckWait is how long a pulled journal event stays with one projector
// before the consumer redelivers it: the longest a crash delays a
// projection.
const AckWait = 10 * time.Second

// maxConflicts bounds the re-folds of one event that keeps losing
// compare-and-set races; past it the event is retried as transient.
const maxConflicts = 20

// Projector folds the journal into one projection's store, from a durable
// consumer of its own (a rebuild's catch-up, an engine folding split) or
// from batches the engine's joint fold hands it (jointfold.go). Each event
// is acknowledged only after its changes are stored, so a crash replays
// it; the reducers make the replay change nothing.
type Projector struct {
	projection reducers.Projection
	js         jetstream.JetStream
	store      *kvstore.Store
	dead       deadletter.Letters
	metrics    *ProjectorMetrics
	log        *slog.Logger
	retry      RetryPolicy
	// facts shares decoded payloads with the engine's other projectors.
	facts *sharedFacts
	// batch is the most events folded in one burst (0: DefaultBatch).
	batch int
	// from is the journal sequence a new consumer starts at (0: the
	// beginning); a rebuild's projector starts after what it folded.
	from uint64
	// attached projectors (the engine's) fold from a consumer the engine
	// created and stop when it is deleted, instead of creating it again.
	attached bool
}

// NewProjector returns a projector of p into store.
func NewProjector(p reducers.Projection, js jetstream.JetStream, store *kvstore.Store, m *ProjectorMetrics, log *slog.Logger, retry RetryPolicy) *Projector {
	if retry.Attempts <= 0 {
		retry = DefaultRetryPolicy
	}
	return &Projector{projection: p, js: js, store: store, dead: deadletter.Letters{JS: js, Exhausted: m.exhausted}, metrics: m, log: log.With("projection", p.Name()), retry: retry}
}

// From makes the projector's consumer, when it does not exist yet, start
// at journal sequence seq instead of the beginning.
func (pr *Projector) From(seq uint64) *Projector { pr.from = seq; return pr }

// Durable is the name of the projector's consumer on the journal.
func (pr *Projector) Durable() string {
	return domain.ProjectorDurable(pr.projection.Name(), pr.store.Generation())
}

// EnsureConsumer opens the projector's durable consumer, creating it when
// it does not exist.
func (pr *Projector) EnsureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	if c, err := pr.js.Consumer(ctx, domain.JournalStream, pr.Durable()); err == nil {
		return c, nil
	}
	c, err := pr.js.CreateOrUpdateConsumer(ctx, domain.JournalStream,
		projectorConsumerConfig(pr.Durable(), "billfold projector: "+pr.projection.Name(), pr.from))
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "projector consumer "+pr.projection.Name())
	}
	return c, nil
}

// projectorConsumerConfig is the configuration of a consumer that folds the
// journal (a projector's own, or the engine's joint fold) from journal
// sequence from (0 or 1: the beginning).
func projectorConsumerConfig(durable, description string, from uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   description,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Short, so the events a crashed process had pulled are
		// redelivered within seconds; a projector retrying an event
		// extends it with an in-progress ack before every wait.
		AckWait:       AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1024,
	}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	return cfg
}

// Run folds events until ctx is done. It survives NATS outages: it waits
// and resumes where the consumer's acknowledgements left off.
func (pr *Projector) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := pr.runOnce(ctx)
		if pr.attached && consumerGone(err) {
			return errConsumerGone
		}
		if err != nil && ctx.Err() == nil {
			pr.log.Warn("projector interrupted, resuming", "error", err)
			jsio.Sleep(ctx, time.Second)
		}
	}
	return nil
}

func (pr *Projector) runOnce(ctx context.Context) error {
	var c jetstream.Consumer
	var err error
	if pr.attached {
		c, err = pr.js.Consumer(ctx, domain.JournalStream, pr.Durable())
	} else {
		c, err = pr.EnsureConsumer(ctx)
	}
	if err != nil {
		return err
	}
	return jsio.ConsumeBatches(ctx, c, pr.batchSize(), func(msgs []jetstream.Msg) error {
		pr.handleBatch(ctx, msgs)
		return nil
	})
}

// DefaultBatch is how many journal events a projector pulls and folds
// before it waits for their writes: a burst of at most this many events.
const DefaultBatch = 256

// shareFacts makes the projector share decoded payloads through s.
func (pr *Projector) shareFacts(s *sharedFacts) *Projector { pr.facts = s; return pr }

// Batch sets how many journal events the projector folds in one burst of
// writes (1: one event at a time).
func (pr *Projector) Batch(n int) *Projector { pr.batch = n; return pr }

func (pr *Projector) batchSize() int {
	if pr.batch <= 0 {
		return DefaultBatch
	}
	return pr.batch
}

// handleBatch folds a batch of journal messages in one burst of writes
// and settles each: acknowledged, or handed back to JetStream for a later
// delivery (foldBatch). Unless ctx ended first: then the batch is left for
// redelivery.
func (pr *Projector) handleBatch(ctx context.Context, msgs []jetstream.Msg) {
	back := make([]error, len(msgs))
	if !pr.foldBatch(ctx, msgs, back) {
		return
	}
	settle(msgs, back, pr.retry, pr.log)
}

// foldBatch folds a batch of journal messages in one burst of writes and
// sets, in back (an entry per message), the cause of each event to hand
// back to JetStream for a later delivery; it returns false when ctx ended
// first. It acknowledges nothing: one projector
// settles its own batch (handleBatch), the engine's joint fold settles a
// batch once all projections folded it.
//
// Events are folded in journal order; after the burst an event that lost a
// compare-and-set race is folded again at once, and one whose write still
// was not stored is handed back (handBack) or, delivered too often, taken
// through the projector's handler (handler.go).
func (pr *Projector) foldBatch(ctx context.Context, msgs []jetstream.Msg, back []error) bool {
	b := kvstore.NewBurst(ctx, pr.store)
	envs := make([]*domain.Envelope, len(msgs))
	errs := make([]error, len(msgs))
	folded := make([]bool, len(msgs)) // staged in the burst, or to be retried
	hinter, _ := pr.projection.(reducers.KeyHinter)
	var keys []string
	for i, msg := range msgs {
		meta, err := msg.Metadata()
		if err != nil {
			pr.log.Error("journal message without metadata", "error", err)
			continue
		}
		env, err := domain.DecodeEnvelope(msg.Headers(), msg.Data(), meta.Sequence.Stream)
		if err == nil {
			env.Facts = pr.facts.of(env.Sequence)
		}
		envs[i], errs[i] = &env, err
		if err == nil && hinter != nil && pr.projection.Handles(env.Provider, env.EventType) {
			keys = append(keys, hinter.Keys(&env)...)
		}
	}
	pr.store.Prefetch(ctx, keys)
	for i, env := range envs {
		if env == nil {
			continue
		}
		if errs[i] != nil {
			pr.deadLetter(ctx, env, 0, errs[i], nil)
			continue
		}
		if !pr.projection.Handles(env.Provider, env.EventType) {
			pr.metrics.skipped(pr.projection.Name())
			continue
		}
		t := b.Tx(i)
		changes, err := pr.projection.Apply(env, t)
		if err == nil {
			err = t.Stage(changes, kvstore.Cause{EventID: env.EventID, EventType: env.EventType, Sequence: env.Sequence})
		}
		switch {
		case err == nil:
			folded[i] = true
		case domain.Permanent(err):
			pr.deadLetter(ctx, env, 1, err, nil)
		default:
			folded[i] = true // the store's failure: retried below
			b.Fail(i, err)
		}
	}
	b.Flush()
	// While an event is retried the rest of the batch waits for its ack
	// too: keep every message from being redelivered meanwhile.
	extend := func() {
		for _, msg := range msgs {
			_ = msg.InProgress()
		}
	}
	for i, msg := range msgs {
		cause := b.Failure(i)
		if cause == nil {
			continue
		}
		if errors.Is(cause, kvstore.ErrConflict) {
			// Lost a race with another writer: fold it again at once, from
			// what that writer stored.
			if cause = pr.refold(ctx, envs[i]); cause == nil {
				continue
			}
		}
		if pr.retry.handBack(msg, cause) {
			back[i], folded[i] = cause, false
			continue
		}
		// The handler dead-letters a failure and counts a success.
		_ = pr.handler(extend, nil)(ctx, envs[i])
		if ctx.Err() != nil {
			return false
		}
		folded[i] = false
	}
	if ctx.Err() != nil {
		return false
	}
	for i := range msgs {
		if folded[i] {
			pr.metrics.applied(pr.projection.Name())
		}
	}
	return true
}

// settle acknowledges every journal message of a folded batch but those
// with a cause in back, which are handed back to JetStream for a later
// delivery (a negative acknowledgement with the retry policy's longest
// wait), and logs the hand-backs once.
func settle(msgs []jetstream.Msg, back []error, retry RetryPolicy, log *slog.Logger) {
	handedBack, first := 0, -1
	for i, msg := range msgs {
		if back[i] == nil {
			_ = msg.Ack()
			continue
		}
		// A hand-back the server did not take is redelivered anyway, once
		// its ack wait is over.
		_ = msg.NakWithDelay(retry.backoff(retry.Attempts))
		if handedBack++; first < 0 {
			first = i
		}
	}
	if first >= 0 {
		var seq uint64
		if meta, err := msgs[first].Metadata(); err == nil {
			seq = meta.Sequence.Stream
		}
		log.Warn("record writes not stored: events handed back to the journal for a later delivery",
			"events", handedBack, "first_event_id", msgs[first].Headers().Get(domain.HeaderEventID), "first_sequence", seq, "error", back[first])
	}
}

// handBack reports whether an event whose write failed is to be handed
// back to JetStream for a later delivery: when the store did not answer (a
// node lost, a leader election) or kept refusing its compare-and-set
// (another writer's write of the record in flight: while a quorum is lost
// the store refuses every write of that record until the write commits),
// and the event has not been delivered Attempts times yet. The batch's
// other events are acknowledged meanwhile, and the retries of the event are
// spread over the outage (each redelivery waits up to the policy's Max)
// rather than spent at once; the reducers make a write that did land a
// no-op on the next delivery. A reducer's refusal is not handed back:
// retrying cannot help.
func (r RetryPolicy) handBack(msg jetstream.Msg, cause error) bool {
	if domain.Permanent(cause) {
		return false
	}
	meta, err := msg.Metadata()
	return err == nil && meta.NumDelivered < uint64(r.Attempts)
}

// deadLetter records that env could not be applied after attempts, with
// requeue when an operator's requeue was the attempt.
func (pr *Projector) deadLetter(ctx context.Context, env *domain.Envelope, attempts int, cause error, requeue *deadletter.Requeue) {
	dl := deadletter.Letter{
		Projection: pr.projection.Name(), Provider: env.Provider, Namespace: env.EventNamespace(),
		EventID: env.EventID, EventType: env.EventType, JournalSequence: env.Sequence, Created: env.Created,
		ProviderRequestID: env.ProviderRequestID,
		Class:             deadletter.ClassPermanent, Code: domain.ErrorCode(cause), Message: cause.Error(), Attempts: attempts,
		FailedAt: time.Now().UTC(),
	}
	if !domain.Permanent(cause) {
		dl.Class, dl.Code = deadletter.ClassTransient, domain.CodeStoreUnavailable
	}
	if requeue != nil {
		requeue.Outcome, requeue.Code = deadletter.OutcomeFailed, dl.Code
	}
	pr.metrics.failed(pr.projection.Name(), dl.Code)
	pr.log.Warn("event dead-lettered", "event_id", env.EventID, "event_type", env.EventType,
		"code", dl.Code, "class", dl.Class, "attempts", attempts, "error", cause)
	for i := 0; ; i++ {
		err := pr.dead.Fail(ctx, dl, requeue)
		if err == nil || ctx.Err() != nil {
			return
		}
		// The dead letter is what makes the failure visible: keep trying
		// rather than acknowledge an event nobody would ever see again.
		pr.log.Warn("dead letter not written, retrying", "event_id", env.EventID, "error", err)
		jsio.Sleep(ctx, pr.retry.backoff(i+1))
	}
}

func (r RetryPolicy) backoff(attempt int) time.Duration {
	return jsio.Backoff(attempt, r.Initial, r.Max)
}
