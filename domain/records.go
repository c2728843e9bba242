package domain

import (
	"time"

	"github.com/looplab/eventhorizon/uuid"
)

// Projection names.
const (
	ProjectionCustomers     = "customers"
	ProjectionSubscriptions = "subscriptions"
	ProjectionOrders        = "orders"
	ProjectionWallets       = "wallets"
)

// Projections lists the projection names in a stable order.
var Projections = []string{ProjectionCustomers, ProjectionSubscriptions, ProjectionOrders, ProjectionWallets}

// EventRef is one event that changed a record, by the provider's clock.
// Verification is empty for a signed event; an unsigned event with the
// same id is another event.
type EventRef struct {
	At           time.Time    `json:"at"`
	EventID      string       `json:"event_id"`
	Verification Verification `json:"verification,omitempty"`
}

// MaxRecordEvents is how many of the latest event ids a record shows.
const MaxRecordEvents = 50

// RecordMeta is what every record carries so an operator can see why it
// holds what it holds. It is a function of the set of events folded in, not
// of their order: Version counts them, UpdatedAt is the latest provider
// time among them, EventIDs the latest MaxRecordEvents of them, and
// Verification the least trusted of them: "signature" when only signed
// events made the record, "unsigned" or "bypass" when input from an
// unsigned endpoint or the test bypass contributed.
type RecordMeta struct {
	Version      int          `json:"version"`
	UpdatedAt    time.Time    `json:"updated_at"`
	EventIDs     []string     `json:"event_ids"`
	Verification Verification `json:"verification"`
	// Account is the Stripe Connect account (acct_...) whose events made
	// the record; empty for the platform's (and other providers') records.
	// A Stripe object lives in one account; were events to disagree, the
	// least account in byte order is kept, so the record does not depend
	// on the order they were folded in.
	Account string `json:"account,omitempty"`
}

// AggregateVersion implements eh.Versionable.
func (m *RecordMeta) AggregateVersion() int { return m.Version }

// CustomerRecord is a person or company at one provider.
type CustomerRecord struct {
	Provider  Provider          `json:"provider"`
	ID        string            `json:"id"`
	Email     string            `json:"email,omitempty"`
	Name      string            `json:"name,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Deleted   bool              `json:"deleted"`
	Links     []Link            `json:"links,omitempty"`
	CreatedAt *time.Time        `json:"created_at,omitempty"`
	RecordMeta
}

// Link ties a record to the same person or deal elsewhere: another
// provider's customer, or a key from metadata (user_id, deal_id, run_id).
type Link struct {
	Kind  string `json:"kind"` // for example "user_id", "clerk", "deal_id"
	Value string `json:"value"`
}

// EntityID implements eh.Entity.
func (r *CustomerRecord) EntityID() uuid.UUID {
	return AggregateID(string(r.Provider), KindCustomer, r.ID)
}

// Transition is one change of a subscription's lifecycle state.
type Transition struct {
	From    LifecycleState `json:"from"`
	To      LifecycleState `json:"to"`
	At      time.Time      `json:"at"`
	EventID string         `json:"event_id"`
}

// MaxTransitions is how many transitions a subscription record keeps;
// older ones stay derivable from the journal.
const MaxTransitions = 50

// InvoiceSummary is the latest invoice of a subscription.
type InvoiceSummary struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	AmountDue  int64     `json:"amount_due"`
	AmountPaid int64     `json:"amount_paid"`
	Currency   string    `json:"currency,omitempty"`
	At         time.Time `json:"at"`
	EventID    string    `json:"event_id"`
}

// PaymentOutcome is the outcome of the latest payment attempt.
type PaymentOutcome struct {
	Outcome   string    `json:"outcome"` // "succeeded" or "failed"
	InvoiceID string    `json:"invoice_id,omitempty"`
	At        time.Time `json:"at"`
	EventID   string    `json:"event_id"`
}

// SubscriptionRecord is a subscription with its lifecycle state.
type SubscriptionRecord struct {
	Provider          Provider        `json:"provider"`
	ID                string          `json:"id"`
	CustomerID        string          `json:"customer_id,omitempty"`
	State             LifecycleState  `json:"state"`
	ProviderStatus    string          `json:"provider_status"`
	Entitled          bool            `json:"entitled"`
	PlanID            string          `json:"plan_id,omitempty"`
	PriceID           string          `json:"price_id,omitempty"`
	Quantity          int64           `json:"quantity,omitempty"`
	CancelAtPeriodEnd bool            `json:"cancel_at_period_end"`
	CancelAt          *time.Time      `json:"cancel_at,omitempty"`
	CurrentPeriodEnd  *time.Time      `json:"current_period_end,omitempty"`
	TrialEnd          *time.Time      `json:"trial_end,omitempty"`
	EndedAt           *time.Time      `json:"ended_at,omitempty"`
	NextBillingDate   *time.Time      `json:"next_billing_date,omitempty"` // Braintree next-billing-date, midnight UTC
	LatestInvoice     *InvoiceSummary `json:"latest_invoice,omitempty"`
	LastPayment       *PaymentOutcome `json:"last_payment,omitempty"`
	Transitions       []Transition    `json:"transitions"`
	RecordMeta
}

// EntityID implements eh.Entity.
func (r *SubscriptionRecord) EntityID() uuid.UUID {
	return AggregateID(string(r.Provider), KindSubscription, r.ID)
}

// OrderStatus is an order's payment status.
type OrderStatus string

// Order statuses.
const (
	OrderPending           OrderStatus = "pending"
	OrderPaid              OrderStatus = "paid"
	OrderFailed            OrderStatus = "failed"
	OrderExpired           OrderStatus = "expired"
	OrderPartiallyRefunded OrderStatus = "partially_refunded"
	OrderRefunded          OrderStatus = "refunded"
)

// OrderRecord is a one-off purchase: a checkout session or a payment.
type OrderRecord struct {
	Provider       Provider          `json:"provider"`
	ID             string            `json:"id"`
	CustomerID     string            `json:"customer_id,omitempty"`
	SessionID      string            `json:"session_id,omitempty"`
	PaymentID      string            `json:"payment_id,omitempty"`
	Status         OrderStatus       `json:"status"`
	Amount         int64             `json:"amount"`
	AmountRefunded int64             `json:"amount_refunded"`
	Currency       string            `json:"currency,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Links          []Link            `json:"links,omitempty"`
	RecordMeta
}

// EntityID implements eh.Entity.
func (r *OrderRecord) EntityID() uuid.UUID {
	return AggregateID(string(r.Provider), KindOrder, r.ID)
}

// WalletEntry is one movement of credits.
type WalletEntry struct {
	Amount    int64  `json:"amount"`
	Reason    string `json:"reason"`    // signup_bonus, top_up, refund_reversal
	Reference string `json:"reference"` // what makes it unique: the user, the payment
	EventID   string `json:"event_id"`
	// Held entries count toward Pending, not Available: the user is not
	// known yet, or was deleted, or the paying customer's links name
	// another user. HeldReason says which (HeldUserUnknown, ...).
	Held       bool   `json:"held"`
	HeldReason string `json:"held_reason,omitempty"`
	// CustomerID is the Stripe customer that paid a top-up (and its
	// reversal), checked against the customer's links to users.
	CustomerID string `json:"customer_id,omitempty"`
	// CustomerUsers are the users the customer's links name, on an entry
	// held for HeldIdentityMismatch: what the credit was checked against.
	CustomerUsers []string `json:"customer_users,omitempty"`
}

// Reasons a wallet entry is held (WalletEntry.HeldReason).
const (
	// HeldUserUnknown: no user.created of the user was seen yet.
	HeldUserUnknown = "user_unknown"
	// HeldUserDeleted: the user was deleted.
	HeldUserDeleted = "user_deleted"
	// HeldIdentityMismatch: the Stripe customer that paid the top-up is
	// linked to another user (its metadata, or a Clerk user's
	// external_id), so the credit is not given to this one.
	HeldIdentityMismatch = "identity_mismatch"
)

// WalletRecord is a user's credits.
type WalletRecord struct {
	UserID    string        `json:"user_id"`
	Balance   int64         `json:"balance"`
	Available int64         `json:"available"`
	Pending   int64         `json:"pending"`
	Entries   []WalletEntry `json:"entries"`
	UserKnown bool          `json:"user_known"`
	Deleted   bool          `json:"user_deleted"`
	RecordMeta
}

// EntityID implements eh.Entity.
func (r *WalletRecord) EntityID() uuid.UUID {
	return AggregateID(WalletNamespace, KindWallet, r.UserID)
}

// Kinds of entry in the projection stores: the four record kinds, and the
// helper entries projections keep beside them (an order's aliases, a
// wallet's top-ups and the identity links of the customers that paid them),
// which are not records of their own.
const (
	KindCustomer     = "customer"
	KindSubscription = "subscription"
	KindOrder        = "order"
	KindWallet       = "wallet"
	KindAlias        = "alias"
	KindTopUp        = "topup"
	KindIdentity     = "identity"
)

// IsRecordKind reports whether kind is one of the four record kinds rather
// than a helper entry.
func IsRecordKind(kind string) bool {
	switch kind {
	case KindCustomer, KindSubscription, KindOrder, KindWallet:
		return true
	}
	return false
}

// WalletNamespace is the namespace of wallet ids: a wallet belongs to a
// billfold user, not to one provider.
const WalletNamespace = "billfold"

// RecordKey is the key of a record in its projection's KV bucket:
// "<kind>.<aggregate id>", for example "subscription.0f8a…". Keys are the
// eventhorizon entity ids, so the stores can serve as eh repositories, and
// the kind prefix lets one bucket hold a projection's helper records (a
// wallet's top-ups) beside its records.
func RecordKey(kind string, id uuid.UUID) string { return kind + "." + id.String() }
