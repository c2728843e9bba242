// Package stripewire reads Stripe's event format: the one place billfold
// knows which fields of a Stripe object mean what. The fold decodes each
// journaled Stripe event once with Decode and every projection reads the
// same Event.
//
// It must never do I/O, read the clock, or check signatures: callers
// decode only a body that package ingest/stripe has verified and the
// journal kept. Decode never panics, whatever the input.
package stripewire

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Event is a Stripe event as billfold reads it.
type Event struct {
	// Object is data.object: the fields billfold reads of any object kind.
	Object Object
	// RawObject is data.object as sent.
	RawObject json.RawMessage
	// Previous is data.previous_attributes, by field.
	Previous map[string]json.RawMessage
}

// Object is the union of the fields billfold reads of the Stripe objects
// it folds (customers, subscriptions, invoices, checkout sessions, payment
// intents, charges, refunds). A field an object kind does not have is
// zero.
type Object struct {
	Kind     string     `json:"object"`
	ID       string     `json:"id"`
	Customer Expandable `json:"customer"`
	Metadata Metadata   `json:"metadata"`
	Status   string     `json:"status"`
	Currency string     `json:"currency"`
	Created  int64      `json:"created"`
	Deleted  bool       `json:"deleted"`

	// Customers.
	Email string `json:"email"`
	Name  string `json:"name"`

	// Subscriptions.
	CancelAtPeriodEnd bool            `json:"cancel_at_period_end"`
	CancelAt          int64           `json:"cancel_at"`
	CurrentPeriodEnd  int64           `json:"current_period_end"`
	TrialEnd          int64           `json:"trial_end"`
	EndedAt           int64           `json:"ended_at"`
	PauseCollection   json.RawMessage `json:"pause_collection"`
	Quantity          int64           `json:"quantity"`
	Plan              *Ref            `json:"plan"`
	Items             struct {
		Data []SubscriptionItem `json:"data"`
	} `json:"items"`

	// Invoices.
	AmountDue    int64      `json:"amount_due"`
	AmountPaid   int64      `json:"amount_paid"`
	Subscription Expandable `json:"subscription"`
	Parent       *struct {
		SubscriptionDetails *struct {
			Subscription Expandable `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`

	// Checkout sessions, payment intents, charges and refunds.
	PaymentIntent  Expandable `json:"payment_intent"`
	Charge         Expandable `json:"charge"`
	AmountTotal    int64      `json:"amount_total"`
	PaymentStatus  string     `json:"payment_status"`
	Mode           string     `json:"mode"`
	Amount         int64      `json:"amount"`
	AmountRefunded int64      `json:"amount_refunded"`
	Refunds        *struct {
		Data []Refund `json:"data"`
	} `json:"refunds"`
}

// Ref is a nested object billfold reads only the id of.
type Ref struct {
	ID string `json:"id"`
}

// SubscriptionItem is the part of a subscription item billfold reads.
type SubscriptionItem struct {
	CurrentPeriodEnd int64 `json:"current_period_end"`
	Quantity         int64 `json:"quantity"`
	Price            *Ref  `json:"price"`
	Plan             *Ref  `json:"plan"`
}

// Refund is a refund listed on a charge.
type Refund struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
	Status string `json:"status"`
}

// InvoiceSubscription is an invoice's subscription: the top-level field
// before API version 2025-03-31, parent.subscription_details since.
func (o *Object) InvoiceSubscription() string {
	if o.Subscription != "" {
		return string(o.Subscription)
	}
	if o.Parent != nil && o.Parent.SubscriptionDetails != nil {
		return string(o.Parent.SubscriptionDetails.Subscription)
	}
	return ""
}

// ErrNoObject is Decode's error for an event without a data.object.
var ErrNoObject = errors.New("no data.object")

// Decode reads a Stripe event body.
func Decode(body []byte) (*Event, error) {
	var e struct {
		Data struct {
			Object             json.RawMessage            `json:"object"`
			PreviousAttributes map[string]json.RawMessage `json:"previous_attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, err
	}
	if len(e.Data.Object) == 0 || e.Data.Object[0] != '{' {
		return nil, ErrNoObject
	}
	ev := &Event{RawObject: e.Data.Object, Previous: e.Data.PreviousAttributes}
	if err := json.Unmarshal(e.Data.Object, &ev.Object); err != nil {
		return nil, err
	}
	return ev, nil
}

// Fields returns the top-level fields of the object among keys, as sent.
func (e *Event) Fields(keys []string) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(e.RawObject, &raw); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(keys))
	for _, k := range keys {
		if v, ok := raw[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// Expandable is a Stripe field that is either an id or an expanded object
// with an id.
type Expandable string

// UnmarshalJSON accepts "id", {"id": ...} and null.
func (x *Expandable) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*x = ""
		return nil
	case b[0] == '"':
		var s string
		err := json.Unmarshal(b, &s)
		*x = Expandable(s)
		return err
	}
	var o Ref
	err := json.Unmarshal(b, &o)
	*x = Expandable(o.ID)
	return err
}

// Metadata is Stripe-style metadata: string values; numbers and booleans
// are kept as their JSON text so nothing is silently dropped.
type Metadata map[string]string

// UnmarshalJSON implements json.Unmarshaler.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) == 0 {
		*m = nil
		return nil
	}
	out := make(Metadata, len(raw))
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else if string(v) != "null" {
			out[k] = string(bytes.TrimSpace(v))
		}
	}
	*m = out
	return nil
}
