package feed

import (
	"encoding/json"
	"time"

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
