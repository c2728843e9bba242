package projections

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
)

// DeadLetter is an event a projection could not apply.
type DeadLetter struct {
	Projection      string          `json:"projection"`
	Provider        domain.Provider `json:"provider"`
	Namespace       string          `json:"namespace"`
	EventID         string          `json:"event_id"`
	EventType       string          `json:"event_type"`
	JournalSequence uint64          `json:"journal_sequence"`
	// Class is "permanent" (the reducer refused the event) or "transient"
	// (the stores kept failing until the retries ran out).
	Class    string      `json:"class"`
	Code     domain.Code `json:"code"`
	Message  string      `json:"message"`
	Attempts int         `json:"attempts"`
	FailedAt time.Time   `json:"failed_at"`
}

// Dead-letter classes.
const (
	ClassPermanent = "permanent"
	ClassTransient = "transient"
)

// DeadLetterConfig is the dead-letter stream's configuration: kept until
// an operator deals with them.
func DeadLetterConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        domain.DeadLetterStream,
		Description: "billfold dead letters: events a projection could not apply",
		Subjects:    []string{domain.DeadLetterSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		AllowDirect: true,
	}
}

// deadLetters writes dead letters.
type deadLetters struct {
	js jetstream.JetStream
}

func (d deadLetters) add(ctx context.Context, dl DeadLetter) error {
	data, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: domain.DeadLetterSubject(dl.Projection, dl.Namespace, dl.EventID), Data: data}
	_, err = d.js.PublishMsg(ctx, msg)
	return err
}
