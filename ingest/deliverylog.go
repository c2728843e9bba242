package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// HeaderAttempt carries a delivery log entry's attempt number, so the next
// delivery of the same event can count on from it without decoding JSON.
const HeaderAttempt = "Billfold-Attempt"

// DeliveryLog records every delivery in the delivery log stream, off the
// answer's path: Record only queues. Workers write the entries; entries for
// one event id always go through the same worker so their attempt numbers
// are assigned in order.
type DeliveryLog struct {
	js      jetstream.JetStream
	log     *slog.Logger
	failed  func()
	queues  []chan domain.Delivery
	seed    maphash.Seed
	wg      sync.WaitGroup
	timeout time.Duration

	mu     sync.RWMutex
	stream jetstream.Stream
	closed bool
}

// DeliveryLogOptions tune a DeliveryLog.
type DeliveryLogOptions struct {
	// Workers writing entries; default 4.
	Workers int
	// QueueSize per worker; when full, Record drops the entry and counts a
	// failure rather than slowing the answer to the provider. Default 4096.
	QueueSize int
	// OnFailure is called for each entry that could not be written.
	OnFailure func()
}

// NewDeliveryLog starts a DeliveryLog writing through js.
func NewDeliveryLog(js jetstream.JetStream, log *slog.Logger, o DeliveryLogOptions) *DeliveryLog {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.OnFailure == nil {
		o.OnFailure = func() {}
	}
	l := &DeliveryLog{js: js, log: log, failed: o.OnFailure, seed: maphash.MakeSeed(), timeout: 5 * time.Second}
	for range o.Workers {
		q := make(chan domain.Delivery, o.QueueSize)
		l.queues = append(l.queues, q)
		l.wg.Add(1)
		go l.work(q)
	}
	return l
}

// Record queues d to be written. It never blocks.
func (l *DeliveryLog) Record(d domain.Delivery) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.drop(d, errors.New("delivery log closed"))
		return
	}
	q := l.queues[maphash.String(l.seed, d.Subject())%uint64(len(l.queues))]
	select {
	case q <- d:
	default:
		l.drop(d, errors.New("delivery log queue full"))
	}
}

// Close writes what is queued, waiting at most until ctx is done, and stops
// the workers.
func (l *DeliveryLog) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		for _, q := range l.queues {
			close(q)
		}
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *DeliveryLog) work(q <-chan domain.Delivery) {
	defer l.wg.Done()
	for d := range q {
		if err := l.write(d); err != nil {
			l.drop(d, err)
		}
	}
}

func (l *DeliveryLog) drop(d domain.Delivery, err error) {
	l.failed()
	l.log.Warn("delivery log entry not written", "endpoint", d.Endpoint, "event_id", d.EventID,
		"request_id", d.RequestID, "outcome", d.Outcome, "error", err)
}

// write appends one entry. For a known event id it numbers the attempt from
// the previous entry on the event's subject and appends with that entry's
// sequence as the expected last one, so two processes cannot give the same
// number twice; on a conflict it reads again.
func (l *DeliveryLog) write(d domain.Delivery) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	subject := d.Subject()
	for range 5 {
		msg := &nats.Msg{Subject: subject, Header: nats.Header{}}
		if d.EventID != "" {
			lastSeq, lastAttempt, err := l.last(ctx, subject)
			if err != nil {
				return err
			}
			d.Attempt = lastAttempt + 1
			msg.Header[HeaderAttempt] = []string{strconv.Itoa(d.Attempt)}
			msg.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(lastSeq, 10)}
		}
		data, err := json.Marshal(d)
		if err != nil {
			return err
		}
		msg.Data = data
		_, err = l.js.PublishMsg(ctx, msg)
		if err == nil || !isWrongLastSequence(err) {
			return err
		}
	}
	return errors.New("delivery log: too many concurrent writers for one event")
}

// last returns the sequence and attempt number of the newest entry on
// subject, zeros when there is none.
func (l *DeliveryLog) last(ctx context.Context, subject string) (uint64, int, error) {
	s, err := l.deliveryStream(ctx)
	if err != nil {
		return 0, 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n, _ := strconv.Atoi(m.Header.Get(HeaderAttempt))
	return m.Sequence, n, nil
}

func (l *DeliveryLog) deliveryStream(ctx context.Context) (jetstream.Stream, error) {
	l.mu.RLock()
	s := l.stream
	l.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	s, err := l.js.Stream(ctx, domain.DeliveryStream)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.stream = s
	l.mu.Unlock()
	return s, nil
}
