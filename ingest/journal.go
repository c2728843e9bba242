package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// StreamOptions are the settings of the streams ingest owns.
type StreamOptions struct {
	// Replicas of the journal and the delivery log (1, 3 or 5).
	Replicas int
	// DeliveryRetention is how long the delivery log keeps an entry.
	DeliveryRetention time.Duration
	// DeliveryMaxBytes bounds the delivery log's size on disk; past it
	// the oldest entries are discarded.
	DeliveryMaxBytes int64
}

// DefaultDeliveryRetention is the delivery log's default retention.
const DefaultDeliveryRetention = 30 * 24 * time.Hour

// DefaultDeliveryMaxBytes is the delivery log's default size limit: 1 GiB.
const DefaultDeliveryMaxBytes = 1 << 30

// JournalConfig is the journal stream's configuration. Each verified
// provider event has its own subject and at most one message on it (see
// Journal.Append); nothing is ever deleted, since the journal is the source
// every projection is folded from.
func JournalConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         domain.JournalStream,
		Description:  "billfold journal: each verified provider event once",
		Subjects:     []string{domain.JournalSubjectPrefix + ">"},
		Storage:      jetstream.FileStorage,
		Replicas:     max(replicas, 1),
		Retention:    jetstream.LimitsPolicy,
		Discard:      jetstream.DiscardNew,
		AllowDirect:  true,
		MaxConsumers: domain.MaxStreamConsumers,
		DenyDelete:   true,
		DenyPurge:    true,
	}
}

// DeliveryLogConfig is the delivery log stream's configuration: entries are
// kept for retention and within maxBytes, the oldest discarded first past
// either limit, so no sender can fill the disk the journal lives on.
func DeliveryLogConfig(replicas int, retention time.Duration, maxBytes int64) jetstream.StreamConfig {
	if retention <= 0 {
		retention = DefaultDeliveryRetention
	}
	if maxBytes <= 0 {
		maxBytes = DefaultDeliveryMaxBytes
	}
	return jetstream.StreamConfig{
		Name:        domain.DeliveryStream,
		Description: "billfold delivery log: every webhook delivery, accepted or not",
		Subjects:    []string{domain.DeliverySubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      retention,
		MaxBytes:    maxBytes,
		// Accepted entries carry a Nats-Msg-Id; the window outlasts the
		// journal consumer's ack wait, so a redelivered event is not
		// logged twice.
		Duplicates:   2 * time.Minute,
		AllowDirect:  true,
		MaxConsumers: domain.MaxStreamConsumers,
	}
}

// EnsureStreams creates the journal and delivery log streams, or updates
// their configuration to o.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range []jetstream.StreamConfig{
		JournalConfig(o.Replicas),
		DeliveryLogConfig(o.Replicas, o.DeliveryRetention, o.DeliveryMaxBytes),
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return domain.Wrap(domain.CodeJournalUnavailable, err, "create stream "+cfg.Name)
		}
	}
	return nil
}

// AppendResult is the journal's answer to one append.
type AppendResult struct {
	// Sequence is the journal sequence of the event: the new entry's, or
	// the original's for a duplicate when the journal told it.
	Sequence uint64
	// Duplicate is true when the event id was already journaled.
	Duplicate bool
}

// Journal appends verified provider events to the journal stream.
type Journal struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// NewJournal returns a Journal writing through nc.
func NewJournal(nc *nats.Conn, js jetstream.JetStream) *Journal {
	return &Journal{nc: nc, js: js}
}

// Append writes env to the journal and returns once the journal has
// acknowledged it (with replicas, once a quorum stored it).
//
// Dedupe is the journal's own: each event has its own subject and the append
// carries Nats-Expected-Last-Subject-Sequence: 0, so the stream stores it only
// if no message exists on that subject. The check is made by the stream
// leader against its persistent per-subject index, so it survives restarts,
// holds forever (not just for a dedupe window) and lets exactly one of two
// concurrent deliveries in. Nats-Msg-Id is deliberately not set: its window
// map would cost memory for every event of the last two minutes and add
// nothing the subject check does not already give.
//
// An error is a *domain.Error with code BILLFOLD-JOURNAL-UNAVAILABLE: the
// event may or may not be stored, and the provider must retry.
func (j *Journal) Append(ctx context.Context, env *domain.Envelope) (AppendResult, error) {
	if !j.nc.IsConnected() {
		return AppendResult{}, domain.Errorf(domain.CodeJournalUnavailable, "not connected to NATS (%s)", j.nc.Status())
	}
	subject := env.JournalSubject()
	msg := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: env.Body}
	env.EncodeHeader(msg.Header)
	msg.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{"0"}
	ack, err := j.js.PublishMsg(ctx, msg)
	switch {
	case err == nil:
		return AppendResult{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
	case isWrongLastSequence(err):
		return AppendResult{Sequence: j.sequenceOf(ctx, subject), Duplicate: true}, nil
	}
	return AppendResult{}, domain.Wrap(domain.CodeJournalUnavailable, err, "journal append not acknowledged")
}

// sequenceOf returns the journal sequence of the entry on subject, or 0
// when it cannot be read now; it only decorates the delivery log.
func (j *Journal) sequenceOf(ctx context.Context, subject string) uint64 {
	s, err := j.js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return 0
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return 0
	}
	return m.Sequence
}

// isWrongLastSequence reports whether err is the stream refusing an append
// because its subject already has a message. Replicated streams answer with
// a different code for the same condition.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Ready reports whether the journal can take appends now: connected and both
// streams present. The error says why not.
func (j *Journal) Ready(ctx context.Context) error {
	if !j.nc.IsConnected() {
		return domain.Errorf(domain.CodeJournalUnavailable, "not connected to NATS (%s)", j.nc.Status())
	}
	for _, name := range []string{domain.JournalStream, domain.DeliveryStream} {
		if _, err := j.js.Stream(ctx, name); err != nil {
			return domain.Wrap(domain.CodeJournalUnavailable, err, fmt.Sprintf("stream %s", name))
		}
	}
	return nil
}
