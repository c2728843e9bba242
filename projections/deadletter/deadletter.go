package deadletter

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

// Letter, a dead letter, is an event a projection could not apply, and what became of
// it since. Each event has one dead letter per projection; every change of
// it (another failure, a requeue, a resolution) is a new message on its
// subject carrying the whole state, so the last message is the current
// state and the earlier ones are its history.
type Letter struct {
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

	Open     = "open"
	Resolved = "resolved"

	OutcomeApplied = "applied"
	OutcomeFailed  = "failed"

	RetryRetrying  = "retrying"
	RetryExhausted = "exhausted"
)

// ID is the id of the dead letter of the event at journal
// sequence seq in projection.
func ID(projection string, seq uint64) string {
	return projection + "-" + strconv.FormatUint(seq, 10)
}

// ParseID splits a dead-letter id.
func ParseID(id string) (projection string, seq uint64, err error) {
	i := strings.LastIndexByte(id, '-')
	if i > 0 {
		seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	}
	if i <= 0 || err != nil || seq == 0 {
		return "", 0, domain.Errorf(domain.CodeBadRequest, "dead-letter id %q is not <projection>-<journal sequence>", id)
	}
	return id[:i], seq, nil
}

// StreamConfig is the dead-letter stream's configuration: kept until
// an operator deals with them.
func StreamConfig(replicas int) jetstream.StreamConfig {
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

// Letters reads and writes the dead-letter stream: its one reader and
// writer (the query index of open dead letters follows it with Watch and
// reads pages with Latest).
type Letters struct {
	JS jetstream.JetStream
	// Schedule is the waits before each scheduled retry of a transient
	// failure; none: a dead letter is exhausted at once.
	Schedule []time.Duration
	// Exhausted, when set, counts each dead letter that runs out of
	// retries, when it does.
	Exhausted func(projection, class string)
}

// Subject is the dead letter's subject on the stream.
func (dl *Letter) Subject() string {
	return domain.DeadLetterSubject(dl.Projection, dl.Namespace, dl.EventID)
}

// Get returns the current state of the dead letter on subject and its
// stream sequence; nil when there is none.
func (d Letters) Get(ctx context.Context, subject string) (*Letter, uint64, error) {
	s, err := d.JS.Stream(ctx, domain.DeadLetterStream)
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
	dl, err := Decode(m.Data)
	if err != nil {
		return nil, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "dead letter "+subject)
	}
	return dl, m.Sequence, nil
}

// update writes the next state of a dead letter: change gets the current
// state (nil when there is none) and returns the next. It is
// compare-and-set on the subject, so two processes recording at once
// both count.
func (d Letters) update(ctx context.Context, subject string, change func(cur *Letter) *Letter) (*Letter, error) {
	for {
		cur, seq, err := d.Get(ctx, subject)
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
		_, err = d.JS.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, jetstream.WithExpectLastSequencePerSubject(seq))
		if jsio.WrongLastSequence(err) {
			continue
		}
		if err != nil {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "dead letter "+subject)
		}
		return next, nil
	}
}

// Decode reads a stored dead letter. An open one stored before
// retry states existed was written once the retries had run out:
// exhausted.
func Decode(data []byte) (*Letter, error) {
	var dl Letter
	if err := json.Unmarshal(data, &dl); err != nil {
		return nil, err
	}
	if dl.RetryState == "" && dl.Status == Open {
		dl.RetryState = RetryExhausted
	}
	return &dl, nil
}

// Fail records a failure to apply the event of dl: a new open dead letter,
// or the existing one with its attempts raised. A transient failure is
// retried on the schedule (a scheduled retry, requeue.By ScheduledRetryBy,
// counts one step); a permanent one, or one past the schedule, is
// exhausted, and counted when it becomes so.
func (d Letters) Fail(ctx context.Context, dl Letter, requeue *Requeue) error {
	wasExhausted := false
	next, err := d.update(ctx, dl.Subject(), func(cur *Letter) *Letter {
		wasExhausted = cur != nil && cur.Status == Open && cur.RetryState == RetryExhausted
		next := dl
		next.ID, next.Status = ID(dl.Projection, dl.JournalSequence), Open
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
		if next.Class == ClassTransient && next.Retries < len(d.Schedule) {
			next.RetryState, next.NextRetryAt = RetryRetrying, next.FailedAt.Add(d.Schedule[next.Retries])
		}
		return &next
	})
	if err == nil && next.RetryState == RetryExhausted && !wasExhausted { // counted once, when it runs out
		if d.Exhausted != nil {
			d.Exhausted(next.Projection, next.Class)
		}
	}
	return err
}

// Resolve marks the open dead letter of an event in a projection applied,
// by what, with requeue added to its history when one applied it. It
// reports whether an open dead letter was resolved; nothing happens when
// there is none.
func (d Letters) Resolve(ctx context.Context, projection, namespace, eventID, by string, requeue *Requeue, at time.Time) (bool, error) {
	wasOpen := false
	_, err := d.update(ctx, domain.DeadLetterSubject(projection, namespace, eventID), func(cur *Letter) *Letter {
		if cur == nil || (cur.Status == Resolved && requeue == nil) {
			return nil
		}
		wasOpen = cur.Status == Open
		next := *cur
		next.Requeues = slices.Clone(cur.Requeues)
		if requeue != nil {
			next.Requeues = append(next.Requeues, *requeue)
		}
		if next.Status != Resolved {
			next.Status, next.ResolvedAt, next.ResolvedBy = Resolved, at, by
			next.RetryState, next.NextRetryAt = "", time.Time{}
		}
		return &next
	})
	return wasOpen && err == nil, err
}

// Filter selects dead letters. Empty fields match everything.
type Filter struct {
	Projection string
	Code       domain.Code
	EventType  string
	Provider   string
	// Status is "open" (the default when listing), "resolved" or "all".
	Status string
	// Since keeps those that failed at or after it.
	Since time.Time
}

func (f Filter) Match(dl *Letter) bool {
	status := f.Status
	if status == "" {
		status = Open
	}
	return (f.Projection == "" || dl.Projection == f.Projection) &&
		(f.Code == "" || dl.Code == f.Code) &&
		(f.EventType == "" || dl.EventType == f.EventType) &&
		(f.Provider == "" || string(dl.Provider) == f.Provider || dl.Namespace == f.Provider) &&
		(status == "all" || dl.Status == status) &&
		(f.Since.IsZero() || !dl.FailedAt.Before(f.Since))
}

// List returns the current state of every dead letter f selects, oldest
// failure first. It reads the last message of each subject only.
func (d Letters) List(ctx context.Context, f Filter) ([]Letter, error) {
	filter := domain.DeadLetterSubjectPrefix + ">"
	if f.Projection != "" {
		filter = domain.DeadLetterSubjectPrefix + f.Projection + ".>"
	}
	out := []Letter{}
	err := jsio.EachLastPerSubject(ctx, d.JS, domain.DeadLetterStream, filter, func(data []byte) {
		if dl, err := Decode(data); err == nil && f.Match(dl) {
			out = append(out, *dl)
		}
	})
	slices.SortStableFunc(out, func(a, b Letter) int { return a.FailedAt.Compare(b.FailedAt) })
	return out, err
}

// CountOpen counts the open dead letters.
func (d Letters) CountOpen(ctx context.Context) (int, error) {
	dls, err := d.List(ctx, Filter{})
	return len(dls), err
}

// ScheduledRetryBy is the "by" of the requeues the retry schedule makes.
const ScheduledRetryBy = "billfold (scheduled retry)"

// retryLease is how long a claimed retry is held from the other processes:
// past it, a retry whose process died is claimed again.
const retryLease = time.Minute

// Claim takes the due retry of the dead letter on subject for this
// process, moving its next retry a lease ahead; false when it is not due
// any more (another process claimed or resolved it).
func (d Letters) Claim(ctx context.Context, subject string, now time.Time) (bool, error) {
	won := false
	_, err := d.update(ctx, subject, func(cur *Letter) *Letter {
		won = false
		if cur == nil || cur.Status != Open || cur.RetryState != RetryRetrying || cur.NextRetryAt.After(now) {
			return nil
		}
		next := *cur
		next.Requeues = slices.Clone(cur.Requeues)
		next.NextRetryAt = now.Add(retryLease).UTC()
		won = true
		return &next
	})
	return won, err
}
