package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// DeliveryLog records every delivery in the delivery log stream.
//
// The entry of an accepted delivery is not written by the request: the
// journal append carries the delivery's record in its headers, and a
// durable consumer on the journal (deliveryFollower) derives the entry from
// it, so an acknowledged delivery cannot lose its entry, whatever happens to
// the process after the PubAck. Every other entry (duplicates, refusals,
// 503s) is queued off the answer's path and written by asynchronous,
// batched publishes, best effort: an entry that cannot be queued or written
// is counted (billfold_delivery_log_failures_total) and logged. No entry is
// written after reading another: attempts are numbered when the log is read
// (domain.NumberAttempts).
//
// Rate-limited requests are counted in billfold_deliveries_total only, never
// logged one by one; refused deliveries are sampled per source address when
// one source floods (billfold_delivery_log_sampled_total counts the rest).
type DeliveryLog struct {
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *Metrics
	queue   chan domain.Delivery
	refusal *sourceLimiter
	follow  *deliveryFollower
	wg      sync.WaitGroup

	// dropped and sampled count what was not written since the last
	// summary line, so a flood produces a few log lines, not one per
	// request.
	dropped, sampled atomic.Int64
	lastSummary      atomic.Int64

	mu      sync.RWMutex
	closed  bool
	stopped chan struct{} // closed once everything is written; made by the first Close
}

// DeliveryLogOptions tune a DeliveryLog.
type DeliveryLogOptions struct {
	// Metrics counts what the log drops or samples out; required.
	Metrics *Metrics
	// QueueSize bounds the entries waiting to be written; when full,
	// Record drops the entry and counts a failure rather than slowing the
	// answer to the provider. Default 65536.
	QueueSize int
	// Batch is the most entries published before their acknowledgements
	// are awaited. Default 512.
	Batch int
	// RefusalSample is how many refused deliveries (rejected, malformed,
	// too large, misconfigured, ignored) one source address may log; past
	// it they are counted only. Default 20 a second, bursts of 500: a
	// misconfigured sender or a probe is logged whole, a flood (thousands
	// a second) is not.
	RefusalSample RateLimit
}

// summaryEvery is the least time between two lines summarizing dropped or
// sampled-out entries.
const summaryEvery = 10 * time.Second

// NewDeliveryLog starts a DeliveryLog writing through js. It creates (or
// opens) the durable consumer that derives accepted entries from the
// journal; the journal and delivery log streams must exist.
func NewDeliveryLog(ctx context.Context, js jetstream.JetStream, log *slog.Logger, o DeliveryLogOptions) (*DeliveryLog, error) {
	if o.QueueSize <= 0 {
		o.QueueSize = 1 << 16
	}
	if o.Batch <= 0 {
		o.Batch = 512
	}
	if o.RefusalSample.PerSecond <= 0 {
		o.RefusalSample = RateLimit{PerSecond: 20, Burst: 500}
	}
	l := &DeliveryLog{js: js, log: log, metrics: o.Metrics, queue: make(chan domain.Delivery, o.QueueSize),
		refusal: newSourceLimiter(o.RefusalSample)}
	f, err := newDeliveryFollower(ctx, js, l, o.Batch)
	if err != nil {
		return nil, err
	}
	l.follow = f
	l.wg.Add(1)
	go l.writeQueued(o.Batch)
	return l, nil
}

// Record queues d to be written. It never blocks. An accepted delivery's
// entry is derived from the journal, so Record has nothing to write for it.
func (l *DeliveryLog) Record(d domain.Delivery) {
	switch d.Outcome {
	case domain.OutcomeAccepted, domain.OutcomeRateLimited:
		return
	case domain.OutcomeRejected, domain.OutcomeMalformed, domain.OutcomeTooLarge, domain.OutcomeMisconfigured, domain.OutcomeIgnored:
		if !l.refusal.allow(d.SourceAddr, d.Received) {
			l.metrics.DeliveryLogSampled.WithLabelValues(string(d.Outcome)).Inc()
			l.sampled.Add(1)
			l.summarize(d.Received)
			return
		}
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.drop(d, errors.New("delivery log closed"))
		return
	}
	select {
	case l.queue <- d:
	default:
		l.drop(d, errors.New("delivery log queue full"))
	}
}

// Close writes what is queued and what the journal still owes, waiting at
// most until ctx is done, and stops.
func (l *DeliveryLog) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
		l.stopped = make(chan struct{})
		go func() { l.wg.Wait(); l.follow.stop(ctx); close(l.stopped) }()
	}
	done := l.stopped
	l.mu.Unlock()
	select {
	case <-done:
		l.summarize(time.Time{})
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeQueued publishes queued entries in batches: everything waiting, up to
// batch, goes out asynchronously, then the acknowledgements are awaited.
func (l *DeliveryLog) writeQueued(batch int) {
	defer l.wg.Done()
	pending := make([]domain.Delivery, 0, batch)
	for d := range l.queue {
		pending = fillBatch(pending[:0], d, l.queue, batch)
		msgs := make([]*nats.Msg, len(pending))
		for i := range pending {
			msgs[i] = deliveryMsg(&pending[i], "")
		}
		for i, err := range publishAll(l.js, msgs) {
			if err != nil {
				l.drop(pending[i], err)
			}
		}
	}
}

// fillBatch appends first and then whatever ch holds right now to batch,
// up to size entries, without waiting for more.
func fillBatch[T any](batch []T, first T, ch <-chan T, size int) []T {
	batch = append(batch, first)
	for len(batch) < size {
		select {
		case v, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

// deliveryMsg is the delivery log message of d; msgID, when set, makes a
// second write of the same entry within the stream's duplicate window a
// no-op.
func deliveryMsg(d *domain.Delivery, msgID string) *nats.Msg {
	data, err := json.Marshal(d)
	if err != nil {
		panic("ingest: delivery does not encode: " + err.Error()) // plain data only
	}
	m := &nats.Msg{Subject: d.Subject(), Data: data}
	if msgID != "" {
		m.Header = nats.Header{jetstream.MsgIDHeader: []string{msgID}}
	}
	return m
}

// publishTimeout bounds the wait for one batch's acknowledgements.
const publishTimeout = 10 * time.Second

// publishAll publishes msgs asynchronously and waits for every
// acknowledgement; the result says, per message, why it was not stored.
func publishAll(js jetstream.JetStream, msgs []*nats.Msg) []error {
	errs := make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		futures[i], errs[i] = js.PublishMsgAsync(m)
	}
	timeout := time.NewTimer(publishTimeout)
	defer timeout.Stop()
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs[i] = err
		case <-timeout.C:
			errs[i] = errors.New("delivery log: no acknowledgement in time")
			timeout.Reset(0) // every later future of the batch fails as well
		}
	}
	return errs
}

func (l *DeliveryLog) drop(d domain.Delivery, err error) {
	l.metrics.DeliveryLogFailures.Inc()
	if l.dropped.Add(1) == 1 {
		// The first of a series is logged whole; the rest are summed up.
		l.log.Warn("delivery log entry not written", "endpoint", d.Endpoint, "event_id", d.EventID,
			"request_id", d.RequestID, "outcome", d.Outcome, "error", err)
	}
	l.summarize(time.Now())
}

// summarize logs how many entries were dropped or sampled out since the
// last summary, at most once per summaryEvery; a zero now forces it.
func (l *DeliveryLog) summarize(now time.Time) {
	last := l.lastSummary.Load()
	if !now.IsZero() && now.UnixNano()-last < int64(summaryEvery) {
		return
	}
	if !l.lastSummary.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if n := l.dropped.Swap(0); n > 1 {
		l.log.Warn("delivery log entries not written", "count", n, "counter", "billfold_delivery_log_failures_total")
	}
	if n := l.sampled.Swap(0); n > 0 {
		l.log.Warn("refused deliveries from flooding sources counted, not logged", "count", n,
			"counter", "billfold_delivery_log_sampled_total")
	}
}
