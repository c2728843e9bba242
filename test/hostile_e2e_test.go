package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/stripe"
	"github.com/billfold/billfold/ingest/svix"
	"github.com/billfold/billfold/test/natstest"
)

// hostileConfig has one endpoint per signing scheme, each with the
// default body limit (1 MiB) and, but for omni (90 s), the default
// tolerance (5 minutes).
const hostileConfig = `
endpoints:
  - name: stripe
    provider: stripe
    secrets: ["${E2E_STRIPE}"]
  - name: braintree
    provider: braintree
    secrets: ["${E2E_BT}"]
  - name: clerk
    provider: clerk
    secrets: ["${E2E_CLERK}"]
  - name: acme
    provider: standard
    type_field: event_type
    secrets: ["${E2E_ACME}"]
  - name: pactapay
    provider: pactapay
    secrets: ["${E2E_PP}"]
  - name: omni
    provider: hmac
    secrets: ["${E2E_OMNI}"]
    tolerance: 90s
    hmac:
      signature_header: Omni-Signature
      timestamp_header: Omni-Timestamp
      template: "{timestamp}.{body}"
      event_id_field: id
      event_type_field: type
      created_field: created
`

func hostileEnv() []string {
	return []string{
		"E2E_STRIPE=" + stripeSecret, "E2E_BT=" + btCurrent, "E2E_CLERK=" + clerkCurrent,
		"E2E_ACME=" + acmeCurrent, "E2E_PP=" + ppCurrent, "E2E_OMNI=" + omniCurrent,
	}
}

// startHostileServer starts billfold with hostileConfig on an external NATS
// server and returns it with a JetStream view of that server, so a test can
// count the journal and read the delivery log.
func startHostileServer(t *testing.T, extra ...string) (*server, jetstream.JetStream) {
	t.Helper()
	dir := t.TempDir()
	natsURL := externalNATS(t)
	args := append([]string{"--config", writeConfig(t, dir, hostileConfig), "--nats-url", natsURL,
		"--rate-limit", "100000", "--rate-burst", "100000"}, extra...)
	srv := startServer(t, filepath.Join(dir, "data"), hostileEnv(), args...)
	_, js := natstest.ConnectURL(t, natsURL)
	return srv, js
}

// request is one HTTP delivery as sent: any headers, repeated ones
// included, and the exact body.
type request struct {
	header http.Header
	body   []byte
}

// with returns a copy of r whose header has name set (or added, when add)
// to value.
func (r request) with(name, value string, add bool) request {
	h := r.header.Clone()
	if add {
		h.Add(name, value)
	} else {
		h.Set(name, value)
	}
	return request{header: h, body: r.body}
}

// without returns a copy of r without the named headers.
func (r request) without(names ...string) request {
	h := r.header.Clone()
	for _, n := range names {
		h.Del(n)
	}
	return request{header: h, body: r.body}
}

// scheme is how one endpoint's provider signs: a valid event for an id,
// and the signed request for a body. Braintree's body is the notification
// XML and its signed request the form Braintree posts.
type scheme struct {
	endpoint string
	// event is a valid, journalable event with the given id at a time.
	event func(id string, at time.Time) []byte
	// sign signs body as the provider would, with the event id where the
	// scheme carries it outside the body (Standard Webhooks).
	sign func(id string, body []byte, at time.Time) request
	// signatureHeader carries the signature; "" when it is in the body.
	signatureHeader string
	// timestampHeader / idHeader, when the scheme has them as headers.
	timestampHeader, idHeader string
	// garbage is a signature header value that is not a signature at all;
	// zeros is one well-formed but wrong.
	garbage, zeros func(at time.Time) string
	// typeValue is the event type event() writes, as a JSON string.
	typeValue string
}

func jsonRequest(h map[string]string, body []byte) request {
	hdr := http.Header{}
	for k, v := range h {
		hdr.Set(k, v)
	}
	hdr.Set("Content-Type", "application/json")
	return request{header: hdr, body: body}
}

func svixScheme(endpoint, prefix, secret, typeField string) scheme {
	return scheme{
		endpoint: endpoint,
		event: func(id string, at time.Time) []byte {
			return fmt.Appendf(nil, `{"%s":"user.created","object":"event","timestamp":%d,"data":{"id":"user_%s","object":"user"}}`, typeField, at.UnixMilli(), id)
		},
		sign: func(id string, body []byte, at time.Time) request {
			sig, err := svix.Sign(secret, id, at, body)
			if err != nil {
				panic(err)
			}
			return jsonRequest(map[string]string{prefix + "-id": id, prefix + "-timestamp": strconv.FormatInt(at.Unix(), 10), prefix + "-signature": sig}, body)
		},
		signatureHeader: prefix + "-signature", timestampHeader: prefix + "-timestamp", idHeader: prefix + "-id",
		typeValue: `"user.created"`,
		garbage:   func(time.Time) string { return "v1,\xff\xfe\x80 garbage!" },
		zeros:     func(time.Time) string { return "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32)) },
	}
}

var zeroHex = strings.Repeat("0", 64)

func hostileSchemes() []scheme {
	btKey, err := braintree.ParseKeyPair(btCurrent)
	if err != nil {
		panic(err)
	}
	return []scheme{
		{
			endpoint: "stripe",
			event: func(id string, at time.Time) []byte {
				return fmt.Appendf(nil, `{"id":"%s","object":"event","type":"customer.created","created":%d,"livemode":false,"data":{"object":{"id":"cus_h","object":"customer"}}}`, id, at.Unix())
			},
			sign: func(_ string, body []byte, at time.Time) request {
				return jsonRequest(map[string]string{stripe.SignatureHeader: fmt.Sprintf("t=%d,v1=%s", at.Unix(), stripe.Sign(stripeSecret, at.Unix(), body))}, body)
			},
			signatureHeader: stripe.SignatureHeader, typeValue: `"customer.created"`,
			garbage: func(time.Time) string { return "t=,,,v1==;\xe9\xe9" },
			zeros:   func(at time.Time) string { return fmt.Sprintf("t=%d,v1=%s", at.Unix(), zeroHex) },
		},
		{
			endpoint: "braintree",
			event: func(id string, at time.Time) []byte {
				return fmt.Appendf(nil, `<notification><timestamp type="datetime">%s</timestamp><kind>subscription_went_active</kind><subject><subscription><id>%s</id><status>Active</status></subscription></subject></notification>`, at.UTC().Format(time.RFC3339), id)
			},
			sign: func(_ string, xml []byte, _ time.Time) request {
				return request{header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, body: braintree.Sign(btKey, braintree.EncodePayload(xml))}
			},
		},
		svixScheme("clerk", "svix", clerkCurrent, "type"),
		svixScheme("acme", "webhook", acmeCurrent, "event_type"),
		{
			endpoint: "pactapay",
			event: func(id string, at time.Time) []byte {
				return fmt.Appendf(nil, `{"id":"%s","event":"payment.completed","payment_id":"pay_h","amount":100,"currency":"EUR","timestamp":%d}`, id, at.Unix())
			},
			sign: func(_ string, body []byte, at time.Time) request {
				return jsonRequest(hmacsig.Sign(hmacsig.PactaPay(), ppCurrent, at, body), body)
			},
			signatureHeader: hmacsig.PactaPay().SignatureHeader, typeValue: `"payment.completed"`,
			garbage: func(time.Time) string { return "sha256=\xffzz not hex" },
			zeros:   func(time.Time) string { return "sha256=" + zeroHex },
		},
		{
			endpoint: "omni",
			event: func(id string, at time.Time) []byte {
				return fmt.Appendf(nil, `{"id":"%s","type":"order.paid","created":%d,"data":{"id":"ord_h"}}`, id, at.Unix())
			},
			sign: func(_ string, body []byte, at time.Time) request {
				return jsonRequest(hmacsig.Sign(omniScheme, omniCurrent, at, body), body)
			},
			signatureHeader: omniScheme.SignatureHeader, timestampHeader: omniScheme.TimestampHeader, typeValue: `"order.paid"`,
			garbage: func(time.Time) string { return "\xff\xfe not hex" },
			zeros:   func(time.Time) string { return zeroHex },
		},
	}
}

// hostileCase is one row of the table: what is sent and what billfold
// must answer and record.
type hostileCase struct {
	name    string
	req     request
	chunked bool // send without Content-Length
	status  int
	outcome domain.Outcome
	code    domain.Code // the delivery log's reason_code; "" for accepted and duplicate
	// journaled is how many journal entries the delivery adds: 1 for a
	// new verified event, 0 for everything else.
	journaled uint64
}

// The answers billfold sends, by outcome; the cause is never in them.
var hostileAnswers = map[domain.Outcome]string{
	domain.OutcomeAccepted:  `{"received":true,"status":"accepted"}`,
	domain.OutcomeDuplicate: `{"received":true,"status":"duplicate"}`,
	domain.OutcomeRejected:  `{"error":"signature verification failed"}`,
	domain.OutcomeMalformed: `{"error":"malformed event"}`,
	domain.OutcomeTooLarge:  `{"error":"body too large"}`,
}

func rejected(name string, req request, code domain.Code) hostileCase {
	return hostileCase{name: name, req: req, status: 400, outcome: domain.OutcomeRejected, code: code}
}

func malformed(name string, req request) hostileCase {
	return hostileCase{name: name, req: req, status: 400, outcome: domain.OutcomeMalformed, code: domain.CodeEventMalformed}
}

// deepJSON is a body nested deeper than any JSON decoder billfold uses
// accepts (encoding/json stops at 10000), with every type field present.
func deepJSON(id string) []byte {
	return []byte(`{"id":"` + id + `","type":"x","event":"x","event_type":"x","data":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`)
}

// padTo returns a JSON object body of more than n bytes: the event with a
// padding field in front.
func padTo(event []byte, n int) []byte {
	return append([]byte(`{"pad":"`+strings.Repeat("x", n)+`",`), event[1:]...)
}

// jsonCases is the table for a scheme whose body is a JSON event.
func jsonCases(s scheme, now time.Time) []hostileCase {
	id := func(n string) string { return "h_" + s.endpoint + "_" + n }
	valid := s.event(id("valid"), now)
	signed := s.sign(id("valid"), valid, now)
	plain := func(body []byte) request {
		return request{header: http.Header{"Content-Type": {"application/json"}}, body: body}
	}
	sign := func(n string, body []byte) request { return s.sign(id(n), body, now) }
	huge := padTo(s.event(id("huge"), now), 1<<20)
	truncated := s.event(id("truncated"), now)
	truncated = truncated[:len(truncated)/2]
	// Invalid UTF-8 in the event id: in the body, or in the id header
	// for schemes that carry the id there.
	badID := "h_" + s.endpoint + "_\xff\xfe"
	badUTF8ID := s.sign(badID, s.event(badID, now), now)
	// A line break in the type, spaces around the id: the journal's
	// headers would not keep them as verified.
	typeNL := bytes.Replace(s.event(id("typenl"), now), []byte(s.typeValue), []byte(s.typeValue[:len(s.typeValue)-1]+`\n"`), 1)
	spacedID := " " + id("spaced") + " "
	otherUTF8 := append([]byte("{\"note\":\"caf\xe9 \xff\","), s.event(id("utf8"), now)[1:]...)

	cases := []hostileCase{
		rejected("empty body, no signature", plain(nil), domain.CodeSigMissing),
		malformed("empty body, signed", sign("empty", []byte{})),
		{name: "huge body with Content-Length", req: sign("huge", huge), status: 413, outcome: domain.OutcomeTooLarge, code: domain.CodeBodyTooLarge},
		{name: "huge body, chunked", req: sign("huge", huge), chunked: true, status: 413, outcome: domain.OutcomeTooLarge, code: domain.CodeBodyTooLarge},
		{name: "wrong content type: the signature decides, not the header", req: signed.with("Content-Type", "text/plain; charset=latin1", false),
			status: 200, outcome: domain.OutcomeAccepted, journaled: 1},
		{name: "replay of an accepted delivery", req: signed, status: 200, outcome: domain.OutcomeDuplicate},
		malformed("truncated JSON", sign("truncated", truncated)),
		malformed("JSON with an id but no type", sign("notype", []byte(`{"id":"`+id("notype")+`"}`))),
		malformed("deep nesting", sign("deep", deepJSON(id("deep")))),
		malformed("invalid UTF-8 in the event id", badUTF8ID),
		malformed("line break in the event type", sign("typenl", typeNL)),
		{name: "invalid UTF-8 outside id and type is journaled as received", req: sign("utf8", otherUTF8),
			status: 200, outcome: domain.OutcomeAccepted, journaled: 1},
		rejected("no signature header", plain(s.event(id("nosig"), now)), domain.CodeSigMissing),
		rejected("signature header twice", signed.with(s.signatureHeader, signed.header.Get(s.signatureHeader), true), domain.CodeSigMalformed),
		rejected("signature header garbage", signed.with(s.signatureHeader, s.garbage(now), false), domain.CodeSigMalformed),
		rejected("well-formed signature of zeros", signed.with(s.signatureHeader, s.zeros(now), false), domain.CodeSigMismatch),
		rejected("valid signature over a different body", request{header: sign("other", s.event(id("other"), now)).header, body: s.event(id("forged"), now)}, domain.CodeSigMismatch),
	}
	if s.timestampHeader != "" {
		cases = append(cases,
			rejected("timestamp header twice", signed.with(s.timestampHeader, signed.header.Get(s.timestampHeader), true), domain.CodeSigMalformed),
			rejected("timestamp header garbage", signed.with(s.timestampHeader, "12e9", false), domain.CodeSigMalformed),
			rejected("no timestamp header", signed.without(s.timestampHeader), domain.CodeSigMissing),
		)
	}
	if s.idHeader != "" {
		cases = append(cases, rejected("id header twice", signed.with(s.idHeader, signed.header.Get(s.idHeader), true), domain.CodeSigMalformed))
	} else {
		cases = append(cases, malformed("event id with surrounding spaces", s.sign(spacedID, s.event(spacedID, now), now)))
	}
	switch {
	case s.timestampHeader != "" || s.endpoint == "stripe":
		old := now.Add(-time.Hour)
		cases = append(cases, rejected("replayed old delivery (signed an hour ago)", s.sign(id("old"), s.event(id("old"), old), old), domain.CodeSigTooOld))
	case s.endpoint == "pactapay":
		// PactaPay signs its payload's timestamp: an old body is refused
		// however it is delivered.
		old := now.Add(-time.Hour)
		cases = append(cases, rejected("replayed old payload (its signed timestamp an hour ago)", s.sign(id("old"), s.event(id("old"), old), old), domain.CodeEventTooOld))
	default:
		// No signed time: a captured delivery verifies whenever it is
		// sent, and its replays are duplicates by event id.
		old := now.Add(-24 * time.Hour)
		first := s.sign(id("old"), s.event(id("old"), old), old)
		cases = append(cases,
			hostileCase{name: "old delivery, first seen (no signed time)", req: first, status: 200, outcome: domain.OutcomeAccepted, journaled: 1},
			hostileCase{name: "replayed old delivery", req: first, status: 200, outcome: domain.OutcomeDuplicate},
		)
	}
	return cases
}

// braintreeCases is the table for Braintree, whose signature and payload
// are both form fields of the body.
func braintreeCases(s scheme, now time.Time) []hostileCase {
	btKey, _ := braintree.ParseKeyPair(btCurrent)
	xml := func(n string) []byte { return s.event("sub_h_"+n, now) }
	form := func(fields ...string) request {
		var b strings.Builder
		for i := 0; i < len(fields); i += 2 {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(fields[i] + "=" + url.QueryEscape(fields[i+1]))
		}
		return request{header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, body: []byte(b.String())}
	}
	signedForm := func(payloadXML []byte) (sig, payload string) {
		payload = braintree.EncodePayload(payloadXML)
		return braintree.ChallengeResponse(btKey, payload), payload
	}
	sig, payload := signedForm(xml("valid"))
	valid := form(braintree.SignatureField, sig, braintree.PayloadField, payload)
	otherSig, otherPayload := signedForm(xml("other"))
	huge := []byte(`<notification><pad>` + strings.Repeat("x", 1<<20) + `</pad></notification>`)
	truncated := xml("truncated")
	truncated = truncated[:len(truncated)/2]
	deep := []byte(`<notification><timestamp>` + now.UTC().Format(time.RFC3339) + `</timestamp><kind>k</kind><subject>` +
		strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</subject></notification>`)
	noKind := []byte(`<notification><timestamp>` + now.UTC().Format(time.RFC3339) + `</timestamp><subject><subscription><id>sub_h_nokind</id></subscription></subject></notification>`)
	badUTF8 := []byte(`<notification><timestamp>` + now.UTC().Format(time.RFC3339) + `</timestamp><kind>subscription_went_active</kind><subject><subscription><id>sub_h_` + "\xff\xfe" + `</id></subscription></subject></notification>`)
	old := now.Add(-24 * time.Hour)
	oldDelivery := s.sign("", s.event("sub_h_old", old), old)

	return []hostileCase{
		rejected("empty body", request{header: valid.header, body: nil}, domain.CodeSigMissing),
		{name: "huge body with Content-Length", req: s.sign("", huge, now), status: 413, outcome: domain.OutcomeTooLarge, code: domain.CodeBodyTooLarge},
		{name: "huge body, chunked", req: s.sign("", huge, now), chunked: true, status: 413, outcome: domain.OutcomeTooLarge, code: domain.CodeBodyTooLarge},
		{name: "wrong content type: the signature decides, not the header", req: valid.with("Content-Type", "application/json", false),
			status: 200, outcome: domain.OutcomeAccepted, journaled: 1},
		{name: "replay of an accepted delivery", req: valid, status: 200, outcome: domain.OutcomeDuplicate},
		malformed("truncated XML, signed", s.sign("", truncated, now)),
		rejected("truncated payload, signature of the whole", form(braintree.SignatureField, sig, braintree.PayloadField, payload[:len(payload)/2]), domain.CodeSigMismatch),
		malformed("subject id but no kind", s.sign("", noKind, now)),
		malformed("deep nesting", s.sign("", deep, now)),
		malformed("invalid UTF-8", s.sign("", badUTF8, now)),
		malformed("not base64, signed", form(braintree.SignatureField, braintree.ChallengeResponse(btKey, "@@not base64@@"), braintree.PayloadField, "@@not base64@@")),
		rejected("not a form", request{header: valid.header, body: []byte("bt_signature=%zz&bt_payload=%")}, domain.CodeSigMalformed),
		rejected("no bt_signature", form(braintree.PayloadField, payload), domain.CodeSigMissing),
		rejected("bt_signature twice", form(braintree.SignatureField, sig, braintree.SignatureField, sig, braintree.PayloadField, payload), domain.CodeSigMalformed),
		rejected("bt_payload twice", form(braintree.SignatureField, sig, braintree.PayloadField, payload, braintree.PayloadField, payload), domain.CodeSigMalformed),
		rejected("bt_payload twice, the second unsigned", form(braintree.SignatureField, sig, braintree.PayloadField, payload, braintree.PayloadField, otherPayload), domain.CodeSigMalformed),
		rejected("bt_signature garbage", form(braintree.SignatureField, "\xff\xfe garbage", braintree.PayloadField, payload), domain.CodeSigMalformed),
		rejected("bt_signature of an unknown public key", form(braintree.SignatureField, "someone_else|"+strings.Repeat("0", 40), braintree.PayloadField, payload), domain.CodeSigMismatch),
		rejected("well-formed signature of zeros", form(braintree.SignatureField, btKey.PublicKey+"|"+strings.Repeat("0", 40), braintree.PayloadField, payload), domain.CodeSigMismatch),
		rejected("valid signature over a different payload", form(braintree.SignatureField, otherSig, braintree.PayloadField, payload), domain.CodeSigMismatch),
		{name: "old delivery, first seen (no signed time)", req: oldDelivery, status: 200, outcome: domain.OutcomeAccepted, journaled: 1},
		{name: "replayed old delivery", req: oldDelivery, status: 200, outcome: domain.OutcomeDuplicate},
	}
}

// send posts req to endpoint with a request id and returns status and
// answer; a transport error fails the test.
func (s *server) send(t *testing.T, endpoint, requestID string, req request, chunked bool) (int, string) {
	t.Helper()
	var body io.Reader = bytes.NewReader(req.body)
	if chunked {
		body = struct{ io.Reader }{body} // no length known: chunked
	}
	r, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.public+"/webhooks/"+endpoint, body)
	require.NoError(t, err)
	r.Header = req.header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set("X-Request-Id", requestID)
	resp, err := client.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// journalCount is the number of events in the journal.
func journalCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(ctxT(t), domain.JournalStream)
	require.NoError(t, err)
	info, err := s.Info(ctxT(t))
	require.NoError(t, err)
	return info.State.Msgs
}

// deliveryLog reads every entry of the delivery log, by request id.
func deliveryLog(t *testing.T, js jetstream.JetStream) map[string]domain.Delivery {
	t.Helper()
	ctx := ctxT(t)
	s, err := js.Stream(ctx, domain.DeliveryStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	out := map[string]domain.Delivery{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		var d domain.Delivery
		require.NoError(t, json.Unmarshal(m.Data, &d))
		out[d.RequestID] = d
	}
	return out
}

// alive fails the test if the server process has exited or logged a panic.
func (s *server) alive(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("billfold exited:\n%s", tail(s.logs.String(), 4000))
	default:
	}
	if logs := s.logs.String(); strings.Contains(strings.ToLower(logs), "panic") {
		t.Fatalf("billfold logged a panic:\n%s", tail(logs, 4000))
	}
}

// The hostile-input table for every provider, against the real binary
// over HTTP: each bad delivery gets its documented status, answer and
// reason code (docs/reliability.md lists them), the server neither dies
// nor panics, the journal grows only by the verified new events, and the
// delivery log has an entry for every request.
func TestHostileInputEveryProvider(t *testing.T) {
	srv, js := startHostileServer(t)
	for _, s := range hostileSchemes() {
		t.Run(s.endpoint, func(t *testing.T) {
			now := time.Now()
			var cases []hostileCase
			if s.endpoint == "braintree" {
				cases = braintreeCases(s, now)
			} else {
				cases = jsonCases(s, now)
			}
			ids := make([]string, len(cases))
			for i, c := range cases {
				ids[i] = fmt.Sprintf("hostile-%s-%02d", s.endpoint, i)
				before := journalCount(t, js)
				status, answer := srv.send(t, s.endpoint, ids[i], c.req, c.chunked)
				assert.Equal(t, c.status, status, "%s: %s", c.name, answer)
				assert.JSONEq(t, hostileAnswers[c.outcome], answer, c.name)
				assert.Equal(t, before+c.journaled, journalCount(t, js), "%s: journal entries added", c.name)
				srv.alive(t)
			}

			var log map[string]domain.Delivery
			require.Eventually(t, func() bool {
				log = deliveryLog(t, js)
				for _, id := range ids {
					if _, ok := log[id]; !ok {
						return false
					}
				}
				return true
			}, 10*time.Second, 50*time.Millisecond, "every delivery is in the delivery log")
			for i, c := range cases {
				d := log[ids[i]]
				assert.Equal(t, s.endpoint, d.Endpoint, c.name)
				assert.Equal(t, c.outcome, d.Outcome, c.name)
				assert.Equal(t, c.code, d.ReasonCode, "%s: %s", c.name, d.Reason)
				assert.Equal(t, c.status, d.Status, c.name)
				if c.outcome == domain.OutcomeRejected {
					assert.Equal(t, domain.VerifyFailed, d.Verification, c.name)
					assert.Empty(t, d.EventID, "%s: a rejected delivery's id is never trusted", c.name)
				} else if c.outcome != domain.OutcomeTooLarge {
					assert.Equal(t, domain.VerifiedSignature, d.Verification, c.name)
				}
			}
		})
	}
	srv.alive(t)
	code, _ := srv.get("/readyz")
	assert.Equal(t, 200, code, "still ready after the table")
}
