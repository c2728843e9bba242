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

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Event is a Stripe event as billfold reads it.
type Event struct {
	// Object is data.object: the fields billfold reads of any object kind.
	Object Object
	// Previous is data.previous_attributes, by field.
	Previous map[string]json.RawMessage
	// body is the event as sent, for Fields.
	body []byte
}

// Envelope is what intake reads of a Stripe event: its identity, Stripe's
// clock, the mode, and the object it is about.
type Envelope struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Created  int64  `json:"created"`
	Livemode *bool  `json:"livemode"`
	// Account is set on the events of a Connect platform's connected
	// accounts.
	Account string `json:"account"`
	// Request is {"id": "req_...", "idempotency_key": ...} since API
	// version 2017-05-25, a bare "req_..." string before it, null for
	// automatic events: RequestID reads either.
	Request jsontext.Value `json:"request"`
	Data    struct {
		Object struct {
			ID   string `json:"id"`
			Kind string `json:"object"`
		} `json:"object"`
	} `json:"data"`
}

// RequestID is the id of the API request that caused the event, in either
// of Stripe's forms, or "" when there is none.
func (e Envelope) RequestID() string {
	var id string
	if jsonv2.Unmarshal(e.Request, &id) == nil {
		return id
	}
	var req struct {
		ID string `json:"id"`
	}
	if jsonv2.Unmarshal(e.Request, &req) == nil {
		return req.ID
	}
	return ""
}

// DecodeEnvelope reads a Stripe event's envelope in one pass, skipping
// everything else. A member of the wrong type is an error.
func DecodeEnvelope(body []byte) (Envelope, error) {
	var e Envelope
	err := jsonv2.Unmarshal(body, &e, decodeOptions)
	return e, err
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

// decodeOptions read JSON as encoding/json does where it matters for
// payloads (the last of duplicate names wins, invalid UTF-8 is accepted),
// but match member names exactly: Stripe's are lower-case snake case.
var decodeOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// Decode reads a Stripe event body in one pass. It uses the JSON v2
// decoder (github.com/go-json-experiment/json, what encoding/json/v2 is
// built from), several times faster than encoding/json on a 3 KB event.
func Decode(body []byte) (*Event, error) {
	var e struct {
		Data struct {
			Object             *Object                    `json:"object"`
			PreviousAttributes map[string]json.RawMessage `json:"previous_attributes"`
		} `json:"data"`
	}
	if err := jsonv2.Unmarshal(body, &e, decodeOptions); err != nil {
		if len(body) > 0 && isNotAnObject(err) {
			return nil, ErrNoObject
		}
		return nil, err
	}
	if e.Data.Object == nil {
		return nil, ErrNoObject
	}
	return &Event{Object: *e.Data.Object, Previous: e.Data.PreviousAttributes, body: body}, nil
}

// isNotAnObject reports whether err says data.object is not a JSON object.
func isNotAnObject(err error) bool {
	var se *jsonv2.SemanticError
	return errors.As(err, &se) && se.JSONPointer == "/data/object"
}

// Fields returns the top-level fields of the object among keys, as sent.
func (e *Event) Fields(keys []string) (map[string]json.RawMessage, error) {
	var raw struct {
		Data struct {
			Object map[string]jsontext.Value `json:"object"`
		} `json:"data"`
	}
	if err := jsonv2.Unmarshal(e.body, &raw, decodeOptions); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(keys))
	for _, k := range keys {
		if v, ok := raw.Data.Object[k]; ok {
			out[k] = json.RawMessage(v)
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
