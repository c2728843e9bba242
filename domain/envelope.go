package domain

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/looplab/eventhorizon/uuid"

	guuid "github.com/google/uuid"
)

// MaxEventIDLength bounds provider event ids; longer ids are malformed.
const MaxEventIDLength = 255

// CheckEventID validates a provider event id read from field: present, at
// most MaxEventIDLength bytes of printable UTF-8, without leading or
// trailing spaces. The replacement character is refused too, because a
// JSON decoder turns every invalid byte sequence into it and two different
// ids would then dedupe as one. Surrounding spaces are refused because the
// journal's NATS headers trim them: the journaled envelope would name
// another id than the one verified.
func CheckEventID(field, id string) error {
	return checkEnvelopeText(field, id)
}

// CheckEventType validates a provider event type read from field by the
// same rules as an event id: present, at most MaxEventIDLength bytes of
// printable UTF-8, no surrounding spaces. A line break in a type would be
// turned into a space in the journal's header.
func CheckEventType(field, typ string) error {
	return checkEnvelopeText(field, typ)
}

// ProviderText returns s when it passes the rules of CheckEventID, else
// "": for optional identifiers read from a verified body (a provider
// request id) that are worth keeping only when they can be journaled as
// they are.
func ProviderText(s string) string {
	if checkEnvelopeText("", s) != nil {
		return ""
	}
	return s
}

func checkEnvelopeText(field, s string) error {
	if s == "" || len(s) > MaxEventIDLength || !utf8.ValidString(s) {
		return Errorf(CodeEventMalformed, "field %s is missing or invalid", field)
	}
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return Errorf(CodeEventMalformed, "field %s has an unprintable character", field)
		}
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return Errorf(CodeEventMalformed, "field %s has leading or trailing spaces", field)
	}
	return nil
}

// Envelope is one verified provider event as the journal holds it: the raw
// verified body exactly as received, and what billfold read from it and from
// the delivery.
type Envelope struct {
	Provider  Provider
	Endpoint  string
	EventID   string
	EventType string
	// Created is the provider's own clock for the event (Stripe
	// event.created, Svix timestamp, Braintree notification time).
	Created time.Time
	// Received is billfold's clock when the delivery arrived.
	Received  time.Time
	RequestID string
	// ProviderRequestID is the provider's own id of what caused or carried
	// the event, for finding it in the provider's logs: Stripe's
	// request.id (the API request that caused the event; empty for
	// automatic events), Svix's message id (svix-id). Empty when the
	// provider gives none.
	ProviderRequestID string
	// Account is the Stripe Connect account (acct_...) an event of a
	// connected account belongs to; empty for the platform's own events.
	Account string
	// Livemode is nil when the provider does not say.
	Livemode     *bool
	Verification Verification
	// ObjectKind and ObjectID name the provider object the event is about
	// (for Stripe, data.object.object and data.object.id); either may be
	// empty when the payload does not say.
	ObjectKind string
	ObjectID   string
	// SourceAddr, ReasonCode and Reason describe the delivery that
	// brought the event in: its sender's address and, for a delivery the
	// test bypass let through, why its verification failed. They are
	// journaled so the delivery log entry of an accepted delivery can be
	// derived from the journal (DeliveryFromJournal) and never lost.
	SourceAddr string
	ReasonCode Code
	Reason     string
	// Sequence is the journal sequence; zero until journaled.
	Sequence uint64
	// Body is the raw verified request body.
	Body []byte
	// Facts, when set, memoizes the normalization of Body (Normalized):
	// envelopes of one journal event that share it decode the payload
	// once, for every projection that folds it.
	Facts *Facts
}

// Facts is the memo of one event's normalization; its zero value is ready.
type Facts struct {
	once sync.Once
	v    any
	err  error
}

// Normalized returns normalize(e), computed at most once for every
// envelope that shares e.Facts (each time when e.Facts is nil). One
// normalizer is meant to be used with a given Facts: the memo does not
// tell normalizers apart.
func (e *Envelope) Normalized(normalize func(*Envelope) (any, error)) (any, error) {
	f := e.Facts
	if f == nil {
		return normalize(e)
	}
	f.once.Do(func() { f.v, f.err = normalize(e) })
	return f.v, f.err
}

// Namespace is the namespace of the provider objects the envelope is about
// (see Namespace): what records are keyed by, whatever the event's trust.
func (e *Envelope) Namespace() string { return Namespace(e.Provider, e.Endpoint) }

// EventNamespace is the envelope's dedupe namespace (see EventNamespace):
// its journal, delivery log and dead-letter subjects use it.
func (e *Envelope) EventNamespace() string {
	return EventNamespace(e.Provider, e.Endpoint, e.Verification)
}

// JournalSubject is the envelope's journal subject.
func (e *Envelope) JournalSubject() string { return JournalSubject(e.EventNamespace(), e.EventID) }

// Journal header names.
const (
	HeaderProvider  = "Billfold-Provider"
	HeaderEndpoint  = "Billfold-Endpoint"
	HeaderEventID   = "Billfold-Event-Id"
	HeaderEventType = "Billfold-Event-Type"
	HeaderCreated   = "Billfold-Created"
	HeaderReceived  = "Billfold-Received"
	HeaderRequestID = "Billfold-Request-Id"
	// HeaderProviderRequestID carries Envelope.ProviderRequestID.
	HeaderProviderRequestID = "Billfold-Provider-Request-Id"
	// HeaderAccount carries Envelope.Account.
	HeaderAccount      = "Billfold-Account"
	HeaderLivemode     = "Billfold-Livemode"
	HeaderVerification = "Billfold-Verified"
	HeaderObjectKind   = "Billfold-Object-Kind"
	HeaderObjectID     = "Billfold-Object-Id"
	HeaderSourceAddr   = "Billfold-Source-Addr"
	HeaderReasonCode   = "Billfold-Reason-Code"
	HeaderReason       = "Billfold-Reason"
)

// EncodeHeader writes the envelope's fields, all but Body and Sequence, into
// a NATS message header. Times are written as RFC 3339 with nanoseconds.
func (e *Envelope) EncodeHeader(h map[string][]string) {
	set := func(k, v string) {
		if v != "" {
			h[k] = []string{v}
		}
	}
	set(HeaderProvider, string(e.Provider))
	set(HeaderEndpoint, e.Endpoint)
	set(HeaderEventID, e.EventID)
	set(HeaderEventType, e.EventType)
	set(HeaderCreated, formatTime(e.Created))
	set(HeaderReceived, formatTime(e.Received))
	set(HeaderRequestID, e.RequestID)
	set(HeaderProviderRequestID, e.ProviderRequestID)
	set(HeaderAccount, e.Account)
	if e.Livemode != nil {
		set(HeaderLivemode, strconv.FormatBool(*e.Livemode))
	}
	set(HeaderVerification, string(e.Verification))
	set(HeaderObjectKind, e.ObjectKind)
	set(HeaderObjectID, e.ObjectID)
	set(HeaderSourceAddr, e.SourceAddr)
	set(HeaderReasonCode, string(e.ReasonCode))
	set(HeaderReason, strings.Map(headerSafe, e.Reason))
}

// headerSafe keeps a NATS header value on one line.
func headerSafe(r rune) rune {
	if r == '\r' || r == '\n' {
		return ' '
	}
	return r
}

// DecodeEnvelope rebuilds an Envelope from a journal message's header, body
// and sequence.
func DecodeEnvelope(h map[string][]string, body []byte, seq uint64) (Envelope, error) {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	e := Envelope{
		Provider:          Provider(get(HeaderProvider)),
		Endpoint:          get(HeaderEndpoint),
		EventID:           get(HeaderEventID),
		EventType:         get(HeaderEventType),
		RequestID:         get(HeaderRequestID),
		ProviderRequestID: get(HeaderProviderRequestID),
		Account:           get(HeaderAccount),
		Verification:      Verification(get(HeaderVerification)),
		ObjectKind:        get(HeaderObjectKind),
		ObjectID:          get(HeaderObjectID),
		SourceAddr:        get(HeaderSourceAddr),
		ReasonCode:        Code(get(HeaderReasonCode)),
		Reason:            get(HeaderReason),
		Sequence:          seq,
		Body:              body,
	}
	if e.Provider == "" || e.EventID == "" {
		return Envelope{}, Errorf(CodeEventMalformed, "journal message %d has no provider or event id", seq)
	}
	var err error
	if e.Created, err = parseTime(get(HeaderCreated)); err != nil {
		return Envelope{}, Wrap(CodeEventMalformed, err, "journal header "+HeaderCreated)
	}
	if e.Received, err = parseTime(get(HeaderReceived)); err != nil {
		return Envelope{}, Wrap(CodeEventMalformed, err, "journal header "+HeaderReceived)
	}
	if v := get(HeaderLivemode); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Envelope{}, Wrap(CodeEventMalformed, err, "journal header "+HeaderLivemode)
		}
		e.Livemode = &b
	}
	return e, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// aggregateNamespace seeds the deterministic (version 5) aggregate ids.
var aggregateNamespace = guuid.NewSHA1(guuid.NameSpaceURL, []byte("urn:billfold:aggregate"))

// AggregateID derives the eventhorizon aggregate id of a provider object
// deterministically from its namespace, kind and provider id, so the same
// object gets the same id in every process and every rebuild.
func AggregateID(namespace, kind, objectID string) uuid.UUID {
	return guuid.NewSHA1(aggregateNamespace, []byte(namespace+"\x00"+kind+"\x00"+objectID))
}

// String is for logs.
func (e *Envelope) String() string {
	return fmt.Sprintf("%s/%s %s (%s)", e.Provider, e.Endpoint, e.EventID, e.EventType)
}
