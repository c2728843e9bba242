// Package btnotify decodes Braintree webhook notifications: the
// form-encoded bt_payload field, its base64 and the XML <notification>
// inside, into the few fields billfold reads.
//
// It owns the Braintree notification format (element names, value types,
// the payload alphabet) and the conversion of Braintree decimal amounts to
// minor units. It must never do I/O, read the clock, or check signatures:
// callers decode only a body that package ingest/braintree has verified.
// Decode never panics, whatever the input.
//
// Braintree spells element names with dashes (<plan-id>); some samples use
// underscores (<add_ons>). Every field read here is looked up under both
// spellings, case-insensitively.
package btnotify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
)

// PayloadField and SignatureField are the form fields of a Braintree
// webhook request body.
const (
	PayloadField   = "bt_payload"
	SignatureField = "bt_signature"
)

// maxDepth bounds XML nesting; real notifications nest about six deep.
const maxDepth = 64

// Notification is a decoded Braintree webhook notification.
type Notification struct {
	// Kind is the notification kind, for example
	// "subscription_charged_successfully" or "check".
	Kind string
	// Timestamp is Braintree's time for the notification, in UTC.
	Timestamp time.Time
	// Subscription is the subject when it is a <subscription>, else nil.
	Subscription *Subscription
	// SubjectKind is the element name of the subject object as sent
	// ("subscription", "transaction", "dispute", "check", ...); empty when
	// <subject> is missing or empty.
	SubjectKind string
	// SubjectID is the <id> of the subject object, whatever its kind; empty
	// when it has none (a check notification, for example).
	SubjectID string
	// Identity is the value of the element that identifies the object the
	// notification is about, for its kind (see IdentifyingElement): the
	// subscription id, the transaction id of a transaction review, a payment
	// method token, a merchant id, a payment id; the subject's <id> when
	// that element is missing. Empty when the kind names no object or the
	// subject has neither.
	Identity string
	// Digest is the hex SHA-256 of the XML document, for telling apart
	// notifications that name no object.
	Digest string
}

// identifyingElements name, per notification kind, the child of the
// subject object that identifies what the notification is about, as
// Braintree's libraries (webhook_testing_gateway) lay the subjects out.
// Kinds not listed here are identified by the subject's <id>.
var identifyingElements = map[string]string{
	"transaction_reviewed":                     "transaction-id",
	"payment_method_revoked_by_customer":       "token",
	"granted_payment_method_revoked":           "token",
	"payment_method_customer_data_updated":     "token",
	"grantor_updated_granted_payment_method":   "token",
	"recipient_updated_granted_payment_method": "token",
	"granted_payment_instrument_update":        "token",
	"oauth_access_revoked":                     "merchant-id",
	"connected_merchant_status_transitioned":   "merchant-public-id",
	"connected_merchant_paypal_status_changed": "merchant-public-id",
	"local_payment_completed":                  "payment-id",
	"local_payment_expired":                    "payment-id",
	"local_payment_funded":                     "payment-id",
	"local_payment_reversed":                   "payment-id",
	"partner_merchant_connected":               "partner-merchant-id",
	"partner_merchant_disconnected":            "partner-merchant-id",
	"partner_merchant_declined":                "partner-merchant-id",
	// These name no object: the notification is told apart by its digest.
	"check":                        "",
	"account_updater_daily_report": "",
}

// IdentifyingElement is the element of the subject object that identifies
// what a notification of kind is about ("id" unless the kind lays its
// subject out otherwise), and "" for a kind that names no object.
func IdentifyingElement(kind string) string {
	if e, ok := identifyingElements[kind]; ok {
		return e
	}
	return "id"
}

// Subscription is the part of a Braintree subscription billfold reads.
// Decimal amounts and dates are kept as sent; see MinorUnits.
type Subscription struct {
	ID     string
	Status string // as sent: "Active", "Past Due", "Canceled", ...
	PlanID string
	// Price is the decimal as sent, for example "49.99".
	Price string
	// Dates are YYYY-MM-DD as sent; empty when absent or nil.
	NextBillingDate      string
	BillingPeriodEndDate string
	FirstBillingDate     string
	TrialPeriod          bool
	TrialDuration        int
	TrialDurationUnit    string // "day" or "month"
	FailureCount         int
	Transactions         []Transaction
}

// Transaction is the part of a Braintree transaction billfold reads.
type Transaction struct {
	ID              string
	Status          string
	Amount          string // decimal as sent
	CurrencyISOCode string
	// CustomerID is <customer><id>, or <customer-details><id>.
	CustomerID string
	// CustomerEmail, CustomerFirstName and CustomerLastName are the
	// customer's details as the transaction carries them (the same
	// element as CustomerID); empty when absent.
	CustomerEmail     string
	CustomerFirstName string
	CustomerLastName  string
	// CustomFields are the merchant's custom fields (Braintree's
	// metadata): the transaction's <custom-fields>, under the customer's
	// where its element has them too. Names are the API names, lower case
	// with underscores (Braintree's XML writes user_id as <user-id>). Nil
	// when there are none.
	CustomFields map[string]string
	// CreatedAt is in UTC; zero when absent.
	CreatedAt time.Time
}

// Decode decodes the raw form-encoded body of a Braintree webhook request
// (bt_signature=...&bt_payload=...). Every failure is a *domain.Error with
// code domain.CodeEventMalformed naming what is wrong.
func Decode(body []byte) (Notification, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Notification{}, domain.Wrap(domain.CodeEventMalformed, err, "body is not a form")
	}
	payloads := form[PayloadField]
	switch {
	case len(payloads) == 0 || payloads[0] == "":
		return Notification{}, domain.Errorf(domain.CodeEventMalformed, "field %s is missing", PayloadField)
	case len(payloads) > 1:
		return Notification{}, domain.Errorf(domain.CodeEventMalformed, "more than one %s field", PayloadField)
	}
	return DecodePayload(payloads[0])
}

// DecodePayload decodes a bt_payload value: base64, with newlines, of the
// XML notification.
func DecodePayload(payload string) (Notification, error) {
	for i := 0; i < len(payload); i++ {
		if !payloadByte(payload[i]) {
			return Notification{}, domain.Errorf(domain.CodeEventMalformed, "field %s has a character outside A-Za-z0-9+=/ and newline at offset %d", PayloadField, i)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(payload, "\n", ""))
	if err != nil {
		return Notification{}, domain.Wrap(domain.CodeEventMalformed, err, "field "+PayloadField+" is not base64")
	}
	return DecodeXML(raw)
}

func payloadByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '=' || c == '/' || c == '\n'
}

// DecodeXML decodes the XML <notification> document itself.
func DecodeXML(doc []byte) (Notification, error) {
	root, err := parseTree(doc)
	if err != nil {
		return Notification{}, err
	}
	if !sameName(root.name, "notification") {
		return Notification{}, domain.Errorf(domain.CodeEventMalformed, "root element is <%s>, not <notification>", clip(root.name))
	}
	sum := sha256.Sum256(doc)
	n := Notification{Digest: hex.EncodeToString(sum[:])}
	kind := root.child("kind")
	if kind == nil || kind.value() == "" {
		return Notification{}, domain.Errorf(domain.CodeEventMalformed, "field kind is missing")
	}
	n.Kind = kind.value()
	ts := root.child("timestamp")
	if ts == nil || ts.value() == "" {
		return Notification{}, domain.Errorf(domain.CodeEventMalformed, "field timestamp is missing")
	}
	if n.Timestamp, err = parseDateTime("timestamp", ts.value()); err != nil {
		return Notification{}, err
	}
	subject := root.child("subject")
	if subject == nil || len(subject.children) == 0 {
		return n, nil
	}
	obj := subject.children[0]
	n.SubjectKind = obj.name
	n.SubjectID = obj.field("id")
	if e := IdentifyingElement(n.Kind); e != "" {
		n.Identity = obj.field(e)
		if n.Identity == "" {
			n.Identity = n.SubjectID // a subject laid out otherwise than expected
		}
	}
	if sameName(obj.name, "subscription") {
		if n.Subscription, err = decodeSubscription(obj); err != nil {
			return Notification{}, err
		}
	}
	return n, nil
}

func decodeSubscription(e *element) (*Subscription, error) {
	s := &Subscription{
		ID:                   e.field("id"),
		Status:               e.field("status"),
		PlanID:               e.field("plan-id"),
		Price:                e.field("price"),
		NextBillingDate:      e.field("next-billing-date"),
		BillingPeriodEndDate: e.field("billing-period-end-date"),
		FirstBillingDate:     e.field("first-billing-date"),
		TrialDurationUnit:    e.field("trial-duration-unit"),
	}
	var err error
	if s.TrialPeriod, err = e.boolField("subscription/trial-period"); err != nil {
		return nil, err
	}
	if s.TrialDuration, err = e.intField("subscription/trial-duration"); err != nil {
		return nil, err
	}
	if s.FailureCount, err = e.intField("subscription/failure-count"); err != nil {
		return nil, err
	}
	if txs := e.child("transactions"); txs != nil {
		for _, t := range txs.children {
			if !sameName(t.name, "transaction") {
				continue
			}
			tx, err := decodeTransaction(t)
			if err != nil {
				return nil, err
			}
			s.Transactions = append(s.Transactions, tx)
		}
	}
	return s, nil
}

func decodeTransaction(e *element) (Transaction, error) {
	tx := Transaction{
		ID:              e.field("id"),
		Status:          e.field("status"),
		Amount:          e.field("amount"),
		CurrencyISOCode: e.field("currency-iso-code"),
	}
	tx.CustomFields = customFields(e, nil)
	for _, name := range []string{"customer", "customer-details"} {
		if c := e.child(name); c != nil && c.field("id") != "" {
			tx.CustomerID, tx.CustomerEmail = c.field("id"), c.field("email")
			tx.CustomerFirstName, tx.CustomerLastName = c.field("first-name"), c.field("last-name")
			tx.CustomFields = customFields(c, tx.CustomFields)
			break
		}
	}
	if v := e.field("created-at"); v != "" {
		t, err := parseDateTime("transaction/created-at", v)
		if err != nil {
			return Transaction{}, err
		}
		tx.CreatedAt = t
	}
	return tx, nil
}

// maxCustomFields bounds the custom fields read of one element; Braintree
// merchants define a handful.
const maxCustomFields = 64

// customFields adds the <custom-fields> of e to into (a later element's
// value over an earlier one's) and returns it; nil when there are none.
func customFields(e *element, into map[string]string) map[string]string {
	cf := e.child("custom-fields")
	if cf == nil {
		return into
	}
	for _, f := range cf.children {
		v := f.value()
		if v == "" || len(into) >= maxCustomFields {
			continue
		}
		if into == nil {
			into = map[string]string{}
		}
		into[strings.ReplaceAll(strings.ToLower(f.name), "-", "_")] = v
	}
	return into
}

func parseDateTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, domain.Errorf(domain.CodeEventMalformed, "field %s is not an RFC 3339 date-time", field)
	}
	return t.UTC(), nil
}

// element is a node of the generic XML tree.
type element struct {
	name     string // local name
	isNil    bool   // nil="true"
	text     strings.Builder
	children []*element
}

// value is the trimmed text directly inside e; "" for a nil element.
func (e *element) value() string {
	if e.isNil {
		return ""
	}
	return strings.TrimSpace(e.text.String())
}

// child is the first child element named name, in either spelling.
func (e *element) child(name string) *element {
	for _, c := range e.children {
		if sameName(c.name, name) {
			return c
		}
	}
	return nil
}

// field is the value of the child named name, "" when there is none.
func (e *element) field(name string) string {
	if c := e.child(name); c != nil {
		return c.value()
	}
	return ""
}

// boolField reads the child named by path's last segment as a boolean;
// empty or absent is false.
func (e *element) boolField(path string) (bool, error) {
	v := e.field(path[strings.LastIndexByte(path, '/')+1:])
	switch strings.ToLower(v) {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, domain.Errorf(domain.CodeEventMalformed, "field %s is not a boolean", path)
}

// intField reads the child named by path's last segment as an integer;
// empty or absent is 0.
func (e *element) intField(path string) (int, error) {
	v := e.field(path[strings.LastIndexByte(path, '/')+1:])
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, domain.Errorf(domain.CodeEventMalformed, "field %s is not an integer", path)
	}
	return int(n), nil
}

// sameName compares element names ignoring case and treating '_' as '-'.
func sameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseTree reads doc into a tree without recursion, refusing anything
// but one well-formed root element nested at most maxDepth deep.
func parseTree(doc []byte) (*element, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var root *element
	var stack []*element
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, domain.Wrap(domain.CodeEventMalformed, err, "notification XML does not decode")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, domain.Errorf(domain.CodeEventMalformed, "notification XML nests deeper than %d", maxDepth)
			}
			e := &element{name: t.Name.Local}
			for _, a := range t.Attr {
				if a.Name.Local == "nil" && a.Value == "true" {
					e.isNil = true
				}
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, domain.Errorf(domain.CodeEventMalformed, "notification XML has more than one root element")
				}
				root = e
			} else {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1] // the decoder checks that tags match
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, domain.Errorf(domain.CodeEventMalformed, "notification XML has text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, domain.Errorf(domain.CodeEventMalformed, "notification XML has no root element")
	}
	return root, nil
}

// clip shortens a name echoed into an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// MinorUnits converts a Braintree decimal amount such as "49.99" to minor
// units (4999) exactly, with string arithmetic. It assumes a currency with
// two decimal places: "49" and "49.9" are 4900 and 4990, and digits past the
// second decimal must be zeros. An optional leading '-' is allowed. Anything
// else (empty, spaces, exponents, "1.", ".5", overflow) is a
// domain.CodeEventMalformed error.
func MinorUnits(decimal string) (int64, error) {
	bad := func() (int64, error) {
		return 0, domain.Errorf(domain.CodeEventMalformed, "amount %q is not a decimal with at most two significant decimal places", clip(decimal))
	}
	s := decimal
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || hasDot && frac == "" || !digits(whole) || !digits(frac) {
		return bad()
	}
	if len(frac) > 2 {
		if strings.Trim(frac[2:], "0") != "" {
			return bad()
		}
		frac = frac[:2]
	}
	for len(frac) < 2 {
		frac += "0"
	}
	var n uint64
	for _, c := range []byte(whole + frac) {
		d := uint64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return bad()
		}
		n = n*10 + d
	}
	if neg {
		return -int64(n), nil
	}
	return int64(n), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
