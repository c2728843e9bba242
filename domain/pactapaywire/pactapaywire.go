// Package pactapaywire reads PactaPay's webhook event format: the one
// place billfold knows which members of a PactaPay event mean what. Intake
// (ingest/hmacsig's PactaPayParser) reads the payment an event is about
// and checks the fields the payment types require with DecodeEnvelope;
// the fold decodes each journaled PactaPay event once with Decode and
// every projection reads the same Payment.
//
// It must never do I/O, read the clock, or check signatures: callers
// decode only a body whose signature ingest/hmacsig has verified (for the
// fold, one the journal kept). Decode and DecodeEnvelope never panic,
// whatever the input. Member names are matched exactly, as PactaPay sends
// them (lower-case snake case), by intake and fold alike.
package pactapaywire

import (
	"errors"
	"slices"
	"strconv"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/billfold/billfold/domain"
)

// The members of the envelope that the generic HMAC parser reads for
// PactaPay (ingest/hmacsig.PactaPay): the event id, its type, and
// PactaPay's time (Unix seconds or RFC 3339), which is inside the signed
// body.
const (
	FieldID      = "id"
	FieldType    = "event"
	FieldCreated = "timestamp"
)

// PaymentTypes are the event types about one payment, whose payment
// fields intake requires (Envelope.Check) and the orders projection folds.
var PaymentTypes = []string{"payment.completed", "payment.failed", "payment.refunded"}

// IsPayment reports whether eventType is one of PaymentTypes.
func IsPayment(eventType string) bool { return slices.Contains(PaymentTypes, eventType) }

// ObjectKind is the envelope's object kind for an event about a payment.
const ObjectKind = "payment"

// Payment is a PactaPay payment event as the fold reads it. Amounts are
// in minor units of Currency.
type Payment struct {
	ID        string `json:"id"`
	PaymentID string `json:"payment_id"`
	Amount    int64  `json:"amount"`
	// AmountRefunded is what a payment.refunded event says was refunded,
	// 0 when it does not say so apart from Amount.
	AmountRefunded int64             `json:"amount_refunded"`
	Currency       string            `json:"currency"`
	Customer       string            `json:"customer"`
	Metadata       map[string]string `json:"metadata"`
}

// ErrNoPayment is Decode's error for an event without a payment_id.
var ErrNoPayment = errors.New("no payment_id")

// decodeOptions read JSON as encoding/json does where it matters for
// payloads (the last of duplicate names wins, invalid UTF-8 is accepted),
// but match member names exactly.
var decodeOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// Decode reads a PactaPay payment event body in one pass with the JSON v2
// decoder. A member of the wrong type (an amount that is not an integer, a
// metadata value that is not a string) is an error, not a zero; so is an
// event without a payment_id.
func Decode(body []byte) (*Payment, error) {
	var p Payment
	if err := jsonv2.Unmarshal(body, &p, decodeOptions); err != nil {
		return nil, err
	}
	if p.PaymentID == "" {
		return nil, ErrNoPayment
	}
	return &p, nil
}

// Envelope is what intake reads of a PactaPay event beyond the generic
// fields: the payment fields the payment types require, each as sent (of
// any JSON type, or absent), so that Check can name the one that is
// missing or of the wrong type.
type Envelope struct {
	id, paymentID, amount, currency member
}

// DecodeEnvelope reads the payment fields of a PactaPay event body, whose
// members may be of any type. Only a body that is not one JSON object is
// an error.
func DecodeEnvelope(body []byte) (Envelope, error) {
	var e struct {
		ID        member `json:"id"`
		PaymentID member `json:"payment_id"`
		Amount    member `json:"amount"`
		Currency  member `json:"currency"`
	}
	if err := jsonv2.Unmarshal(body, &e, decodeOptions); err != nil {
		return Envelope{}, err
	}
	return Envelope{id: e.ID, paymentID: e.PaymentID, amount: e.Amount, currency: e.Currency}, nil
}

// Payment is the id of the payment the event is about: payment_id when it
// is a string, else "".
func (e Envelope) Payment() string { return e.paymentID.str() }

// Check requires, for the payment types, id, payment_id and currency to
// be non-empty strings and amount an integer (minor units) that fits in
// 64 bits; other event types need none of them. The first field that
// fails, in that order, is named in a BILLFOLD-EVENT-MALFORMED error.
func (e Envelope) Check(eventType string) error {
	if !IsPayment(eventType) {
		return nil
	}
	for _, f := range []struct {
		name  string
		value member
	}{{"id", e.id}, {"payment_id", e.paymentID}, {"currency", e.currency}} {
		if f.value.str() == "" {
			return domain.Errorf(domain.CodeEventMalformed, "field %s is missing or not a string", f.name)
		}
	}
	// The number's literal as sent: a fraction or an exponent is refused.
	if _, err := strconv.ParseInt(e.amount.text, 10, 64); e.amount.kind != '0' || err != nil {
		return domain.Errorf(domain.CodeEventMalformed, "field amount is missing or not an integer")
	}
	return nil
}

// member is one member of an event as sent: its JSON kind (0 when
// absent), and the value of a string or the literal of a number. Reading
// one costs no more than the string it keeps.
type member struct {
	kind jsontext.Kind
	text string
}

// UnmarshalJSONFrom implements json.UnmarshalerFrom. A repeated member
// is read again: the last one counts, as for every other member.
func (m *member) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	*m = member{kind: dec.PeekKind()}
	if m.kind != '"' && m.kind != '0' {
		return dec.SkipValue()
	}
	tok, err := dec.ReadToken()
	m.text = tok.String()
	return err
}

// str is the member's value when it is a string, else "".
func (m member) str() string {
	if m.kind != '"' {
		return ""
	}
	return m.text
}
