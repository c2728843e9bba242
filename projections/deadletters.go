package projections

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
)

// DeadLetter is an event a projection could not apply, and what became of
// it since. Each event has one dead letter per projection; every change of
// it (another failure, a requeue, a resolution) is a new message on its
// subject carrying the whole state, so the last message is the current
// state and the earlier ones are its history.
type DeadLetter struct {
	// ID names the dead letter in the API and CLI: "<projection>-<journal
	// sequence>".
	ID              string          `json:"id"`
	Projection      string          `json:"projection"`
	Provider        domain.Provider `json:"provider"`
	Namespace       string          `json:"namespace"`
	EventID         string          `json:"event_id"`
	EventType       string          `json:"event_type"`
	JournalSequence uint64          `json:"journal_sequence"`
	// ProviderRequestID is the provider's request or message id of the
	// event (Stripe request.id, Svix message id), when it gave one.
	ProviderRequestID string `json:"provider_request_id,omitempty"`
	// RetryState says, while the dead letter is open, whether billfold
	// will try the event again on its own: "retrying" while scheduled
	// retries remain (a transient failure), "exhausted" once none do (then
	// only a requeue, replay or rebuild applies it).
	RetryState string `json:"retry_state,omitempty"`
	// Retries counts the scheduled retries made; NextRetryAt is when the
	// next one is due, while retrying.
	Retries     int       `json:"retries,omitempty"`
	NextRetryAt time.Time `json:"next_retry_at,omitzero"`
	// Created is the provider's clock for the event.
	Created time.Time `json:"created,omitzero"`
	// Status is "open" until the event is applied (by a requeue, a replay
	// or a rebuild), then "resolved".
	Status string `json:"status"`
	// Class is "permanent" (the reducer refused the event) or "transient"
	// (the stores kept failing until the retries ran out).
	Class   string      `json:"class"`
	Code    domain.Code `json:"code"`
	Message string      `json:"message"`
	// Attempts counts every attempt to apply the event, across the first
	// delivery and every requeue.
	Attempts   int       `json:"attempts"`
	FailedAt   time.Time `json:"failed_at"`
	Requeues   []Requeue `json:"requeues,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// ResolvedBy says what applied the event: "requeue", "replay <id>" or
	// "rebuild <id>".
	ResolvedBy string `json:"resolved_by,omitempty"`
}

// Requeue is one explicit decision to apply a dead letter again.
type Requeue struct {
	// By is the name of the admin token that asked.
	By      string      `json:"by"`
	At      time.Time   `json:"at"`
	Outcome string      `json:"outcome"` // "applied" or "failed"
	Code    domain.Code `json:"code,omitempty"`
}

// Dead-letter classes, statuses and requeue outcomes.
const (
	ClassPermanent = "permanent"
	ClassTransient = "transient"

	DeadLetterOpen     = "open"
	DeadLetterResolved = "resolved"

	OutcomeApplied = "applied"
	OutcomeFailed  = "failed"

	RetryRetrying  = "retrying"
	RetryExhausted = "exhausted"
)

// DeadLetterID is the id of the dead letter of the event at journal
// sequence seq in projection.
func DeadLetterID(projection string, seq uint64) string {
	return projection + "-" + strconv.FormatUint(seq, 10)
}

// parseDeadLetterID splits a dead-letter id.
func parseDeadLetterID(id string) (projection string, seq uint64, err error) {
	i := strings.LastIndexByte(id, '-')
	if i > 0 {
		seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	}
	if i <= 0 || err != nil || seq == 0 {
		return "", 0, domain.Errorf(domain.CodeBadRequest, "dead-letter id %q is not <projection>-<journal sequence>", id)
	}
	return id[:i], seq, nil
}

// DeadLetterConfig is the dead-letter stream's configuration: kept until
// an operator deals with them.
func DeadLetterConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         domain.DeadLetterStream,
		Description:  "billfold dead letters: events a projection could not apply",
		Subjects:     []string{domain.DeadLetterSubjectPrefix + ">"},
		Storage:      jetstream.FileStorage,
		Replicas:     max(replicas, 1),
		AllowDirect:  true,
		MaxConsumers: domain.MaxStreamConsumers,
	}
}

// deadLetters reads and writes dead letters.
type deadLetters struct {
	js jetstream.JetStream
	// schedule is the waits before each scheduled retry of a transient
	// failure (retry.go); none: a dead letter is exhausted at once.
	schedule []time.Duration
	// metrics counts the dead letters that run out of retries.
	metrics *ProjectorMetrics
}

func deadLetterSubject(dl *DeadLetter) string {
	return domain.DeadLetterSubject(dl.Projection, dl.Namespace, dl.EventID)
}

// get returns the current state of the dead letter on subject and its
// stream sequence; nil when there is none.
func (d deadLetters) get(ctx context.Context, subject string) (*DeadLetter, uint64, error) {
	s, err := d.js.Stream(ctx, domain.DeadLetterStream)
	if err != nil {
		return nil, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "dead letters")
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "dead letters")
	}
	dl, err := decodeDeadLetter(m.Data)
	if err != nil {
		return nil, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "dead letter "+subject)
	}
	return dl, m.Sequence, nil
}

// update writes the next state of a dead letter: change gets the current
// state (nil when there is none) and returns the next. It is
// compare-and-set on the subject, so two processes recording at once
// both count.
func (d deadLetters) update(ctx context.Context, subject string, change func(cur *DeadLetter) *DeadLetter) (*DeadLetter, error) {
	for {
		cur, seq, err := d.get(ctx, subject)
		if err != nil {
			return nil, err
		}
		next := change(cur)
		if next == nil {
			return cur, nil
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		_, err = d.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, jetstream.WithExpectLastSequencePerSubject(seq))
		if jsio.WrongLastSequence(err) {
			continue
		}
		if err != nil {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "dead letter "+subject)
		}
		return next, nil
	}
}

// decodeDeadLetter reads a stored dead letter. An open one stored before
// retry states existed was written once the retries had run out:
// exhausted.
func decodeDeadLetter(data []byte) (*DeadLetter, error) {
	var dl DeadLetter
	if err := json.Unmarshal(data, &dl); err != nil {
		return nil, err
	}
	if dl.RetryState == "" && dl.Status == DeadLetterOpen {
		dl.RetryState = RetryExhausted
	}
	return &dl, nil
}

// fail records a failure to apply the event of dl: a new open dead letter,
// or the existing one with its attempts raised. A transient failure is
// retried on the schedule (a scheduled retry, requeue.By ScheduledRetryBy,
// counts one step); a permanent one, or one past the schedule, is
// exhausted, and counted when it becomes so.
func (d deadLetters) fail(ctx context.Context, dl DeadLetter, requeue *Requeue) error {
	wasExhausted := false
	next, err := d.update(ctx, deadLetterSubject(&dl), func(cur *DeadLetter) *DeadLetter {
		wasExhausted = cur != nil && cur.Status == DeadLetterOpen && cur.RetryState == RetryExhausted
		next := dl
		next.ID, next.Status = DeadLetterID(dl.Projection, dl.JournalSequence), DeadLetterOpen
		if cur != nil {
			next.Attempts += cur.Attempts
			next.Requeues = slices.Clone(cur.Requeues)
			next.Retries = cur.Retries
		}
		if requeue != nil {
			next.Requeues = append(next.Requeues, *requeue)
			if requeue.By == ScheduledRetryBy {
				next.Retries++
			}
		}
		next.RetryState, next.NextRetryAt = RetryExhausted, time.Time{}
		if next.Class == ClassTransient && next.Retries < len(d.schedule) {
			next.RetryState, next.NextRetryAt = RetryRetrying, next.FailedAt.Add(d.schedule[next.Retries])
		}
		return &next
	})
	if err == nil && next.RetryState == RetryExhausted && !wasExhausted { // counted once, when it runs out
		d.metrics.exhausted(next.Projection, next.Class)
	}
	return err
}

// resolve marks the open dead letter of an event in a projection applied,
// by what, with requeue added to its history when one applied it. It
// reports whether an open dead letter was resolved; nothing happens when
// there is none.
func (d deadLetters) resolve(ctx context.Context, projection, namespace, eventID, by string, requeue *Requeue, at time.Time) (bool, error) {
	wasOpen := false
	_, err := d.update(ctx, domain.DeadLetterSubject(projection, namespace, eventID), func(cur *DeadLetter) *DeadLetter {
		if cur == nil || (cur.Status == DeadLetterResolved && requeue == nil) {
			return nil
		}
		wasOpen = cur.Status == DeadLetterOpen
		next := *cur
		next.Requeues = slices.Clone(cur.Requeues)
		if requeue != nil {
			next.Requeues = append(next.Requeues, *requeue)
		}
		if next.Status != DeadLetterResolved {
			next.Status, next.ResolvedAt, next.ResolvedBy = DeadLetterResolved, at, by
			next.RetryState, next.NextRetryAt = "", time.Time{}
		}
		return &next
	})
	return wasOpen && err == nil, err
}

// DeadLetterFilter selects dead letters. Empty fields match everything.
type DeadLetterFilter struct {
	Projection string
	Code       domain.Code
	EventType  string
	Provider   string
	// Status is "open" (the default when listing), "resolved" or "all".
	Status string
	// Since keeps those that failed at or after it.
	Since time.Time
}

func (f DeadLetterFilter) match(dl *DeadLetter) bool {
	status := f.Status
	if status == "" {
		status = DeadLetterOpen
	}
	return (f.Projection == "" || dl.Projection == f.Projection) &&
		(f.Code == "" || dl.Code == f.Code) &&
		(f.EventType == "" || dl.EventType == f.EventType) &&
		(f.Provider == "" || string(dl.Provider) == f.Provider || dl.Namespace == f.Provider) &&
		(status == "all" || dl.Status == status) &&
		(f.Since.IsZero() || !dl.FailedAt.Before(f.Since))
}

// list returns the current state of every dead letter f selects, oldest
// failure first. It reads the last message of each subject only.
func (d deadLetters) list(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	filter := domain.DeadLetterSubjectPrefix + ">"
	if f.Projection != "" {
		filter = domain.DeadLetterSubjectPrefix + f.Projection + ".>"
	}
	out := []DeadLetter{}
	err := jsio.EachLastPerSubject(ctx, d.js, domain.DeadLetterStream, filter, func(data []byte) {
		if dl, err := decodeDeadLetter(data); err == nil && f.match(dl) {
			out = append(out, *dl)
		}
	})
	slices.SortStableFunc(out, func(a, b DeadLetter) int { return a.FailedAt.Compare(b.FailedAt) })
	return out, err
}

// open counts the open dead letters.
func (d deadLetters) open(ctx context.Context) (int, error) {
	dls, err := d.list(ctx, DeadLetterFilter{})
	return len(dls), err
}
