package test

import (
	"bytes"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/svix"
	"github.com/billfold/billfold/projections/ledger"
)

// Secrets of the providers e2e test: for each endpoint the current one, the
// rotated (previous) one, and one billfold does not know.
const (
	btCurrent = "bt_pub_e2e:bt_priv_e2e_current"
	btRotated = "bt_pub_e2e_old:bt_priv_e2e_previous"
	btWrong   = "bt_pub_e2e:bt_priv_e2e_wrong"

	clerkCurrent = "whsec_Y2xlcmsgZTJlIGN1cnJlbnQgc2VjcmV0IGtleQ=="
	clerkRotated = "whsec_Y2xlcmsgZTJlIHByZXZpb3VzIHNlY3JldCBrZXk="
	clerkWrong   = "whsec_Y2xlcmsgZTJlIHdyb25nIHNlY3JldCBrZXkhIQ=="

	acmeCurrent = "whsec_YWNtZSBlMmUgY3VycmVudCBzZWNyZXQga2V5IQ=="
	acmeRotated = "whsec_YWNtZSBlMmUgcHJldmlvdXMgc2VjcmV0IGtleQ=="
	acmeWrong   = "whsec_YWNtZSBlMmUgd3Jvbmcgc2VjcmV0IGtleSEhIQ=="

	ppCurrent = "pactapay_e2e_current"
	ppRotated = "pactapay_e2e_previous"
	ppWrong   = "pactapay_e2e_wrong"

	omniCurrent = "omni_e2e_current"
	omniRotated = "omni_e2e_previous"
	omniWrong   = "omni_e2e_wrong"
)

// omniScheme is the hmac endpoint's scheme, as its YAML below states it.
var omniScheme = hmacsig.Config{
	SignatureHeader: "Omni-Signature", TimestampHeader: "Omni-Timestamp", Template: "{timestamp}.{body}",
	EventIDField: "id", EventTypeField: "type", CreatedField: "created",
}

// delivery is one signed request to an endpoint.
type delivery struct {
	body    []byte
	headers map[string]string
	eventID string
}

// providerCase describes one provider for the table: how to sign its n-th
// test event with a secret at a time, and how to tamper with a body so its
// signature no longer matches.
type providerCase struct {
	endpoint  string
	namespace string // the {provider} segment of /v1/events
	eventType string
	secrets   [3]string // current, rotated, wrong
	// timestamped schemes reject a stale signature; the others sign no
	// time and rely on dedupe.
	timestamped bool
	sign        func(secret string, n int, at time.Time) delivery
	tamper      func(body []byte) []byte
}

// tamperJSON adds a space after the opening brace: still the same JSON
// event, no longer the signed bytes.
func tamperJSON(body []byte) []byte {
	return append([]byte("{ "), body[1:]...)
}

func signSvix(endpoint, typeField, typ string, secret string, n int, at time.Time, prefix string) delivery {
	id := fmt.Sprintf("msg_%s_%d", endpoint, n)
	body := fmt.Appendf(nil, `{%q:%q,"object":"event","timestamp":%d,"data":{"id":"user_%s_%d","object":"user","email_addresses":[],"first_name":"E2E"}}`,
		typeField, typ, at.UnixMilli(), endpoint, n)
	sig, err := svix.Sign(secret, id, at, body)
	if err != nil {
		panic(err)
	}
	return delivery{body: body, eventID: id, headers: map[string]string{
		prefix + "-id": id, prefix + "-timestamp": strconv.FormatInt(at.Unix(), 10), prefix + "-signature": sig,
		"Content-Type": "application/json",
	}}
}

func providerCases() []providerCase {
	return []providerCase{
		{
			endpoint: "braintree", namespace: "braintree", eventType: "subscription_went_active",
			secrets: [3]string{btCurrent, btRotated, btWrong},
			sign: func(secret string, n int, _ time.Time) delivery {
				k, err := braintree.ParseKeyPair(secret)
				if err != nil {
					panic(err)
				}
				ts := time.Date(2024, 1, 2, 3, 4, n, 0, time.UTC).Format(time.RFC3339)
				xml := fmt.Sprintf(`<notification><timestamp type="datetime">%s</timestamp><kind>subscription_went_active</kind><subject><subscription><id>sub_e2e_%d</id><status>Active</status><plan-id>plan_monthly</plan-id><price>9.99</price></subscription></subject></notification>`, ts, n)
				return delivery{
					body:    braintree.Sign(k, braintree.EncodePayload([]byte(xml))),
					headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
					eventID: fmt.Sprintf("subscription_went_active:sub_e2e_%d:%s", n, ts),
				}
			},
			tamper: func(body []byte) []byte {
				form, err := url.ParseQuery(string(body))
				if err != nil {
					panic(err)
				}
				p := []byte(form.Get(braintree.PayloadField))
				if p[20] == 'A' {
					p[20] = 'B'
				} else {
					p[20] = 'A'
				}
				form.Set(braintree.PayloadField, string(p))
				return []byte(form.Encode())
			},
		},
		{
			endpoint: "clerk", namespace: "clerk", eventType: "user.created",
			secrets: [3]string{clerkCurrent, clerkRotated, clerkWrong}, timestamped: true,
			sign: func(secret string, n int, at time.Time) delivery {
				return signSvix("clerk", "type", "user.created", secret, n, at, "svix")
			},
			tamper: tamperJSON,
		},
		{
			endpoint: "acme", namespace: "acme", eventType: "order.paid",
			secrets: [3]string{acmeCurrent, acmeRotated, acmeWrong}, timestamped: true,
			sign: func(secret string, n int, at time.Time) delivery {
				return signSvix("acme", "event_type", "order.paid", secret, n, at, "webhook")
			},
			tamper: tamperJSON,
		},
		{
			endpoint: "pactapay", namespace: "pactapay", eventType: "payment.completed",
			secrets: [3]string{ppCurrent, ppRotated, ppWrong},
			sign: func(secret string, n int, at time.Time) delivery {
				id := fmt.Sprintf("evt_pp_e2e_%d", n)
				body := fmt.Appendf(nil, `{"id":%q,"event":"payment.completed","payment_id":"pay_e2e_%d","amount":4999,"currency":"EUR","timestamp":%d,"metadata":{"order":"o_%d"}}`, id, n, at.Unix(), n)
				h := hmacsig.Sign(hmacsig.PactaPay(), secret, at, body)
				h["Content-Type"] = "application/json"
				return delivery{body: body, headers: h, eventID: id}
			},
			tamper: tamperJSON,
		},
		{
			endpoint: "omni", namespace: "omni", eventType: "order.paid",
			secrets: [3]string{omniCurrent, omniRotated, omniWrong}, timestamped: true,
			sign: func(secret string, n int, at time.Time) delivery {
				id := fmt.Sprintf("omni_evt_e2e_%d", n)
				body := fmt.Appendf(nil, `{"id":%q,"type":"order.paid","created":%d,"data":{"id":"ord_%d"}}`, id, at.Unix(), n)
				h := hmacsig.Sign(omniScheme, secret, at, body)
				h["Content-Type"] = "application/json"
				return delivery{body: body, headers: h, eventID: id}
			},
			tamper: tamperJSON,
		},
	}
}

// The multi-provider "done when": the real binary, one config file with an
// endpoint per provider, and per provider a valid delivery, its duplicate,
// a tampered body, a wrong secret, a stale timestamp where the scheme signs
// one, and a delivery signed with the rotated secret; then the journal and
// the delivery log through the admin API, and the metrics.
func TestProvidersEndToEnd(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, `
endpoints:
  - name: braintree
    provider: braintree
    secrets: ["${E2E_BT_CURRENT}", "${E2E_BT_ROTATED}"]
  - name: clerk
    provider: clerk
    secrets: ["${E2E_CLERK_CURRENT}", "${E2E_CLERK_ROTATED}"]
  - name: acme
    provider: standard
    type_field: event_type
    secrets: ["${E2E_ACME_CURRENT}", "${E2E_ACME_ROTATED}"]
  - name: pactapay
    provider: pactapay
    secrets: ["${E2E_PP_CURRENT}", "${E2E_PP_ROTATED}"]
  - name: omni
    provider: hmac
    secrets: ["${E2E_OMNI_CURRENT}", "${E2E_OMNI_ROTATED}"]
    tolerance: 300s
    hmac:
      signature_header: Omni-Signature
      timestamp_header: Omni-Timestamp
      template: "{timestamp}.{body}"
      digest: sha256
      encoding: hex
      event_id_field: id
      event_type_field: type
      created_field: created
`)
	env := []string{
		"E2E_BT_CURRENT=" + btCurrent, "E2E_BT_ROTATED=" + btRotated,
		"E2E_CLERK_CURRENT=" + clerkCurrent, "E2E_CLERK_ROTATED=" + clerkRotated,
		"E2E_ACME_CURRENT=" + acmeCurrent, "E2E_ACME_ROTATED=" + acmeRotated,
		"E2E_PP_CURRENT=" + ppCurrent, "E2E_PP_ROTATED=" + ppRotated,
		"E2E_OMNI_CURRENT=" + omniCurrent, "E2E_OMNI_ROTATED=" + omniRotated,
	}
	srv := startServer(t, filepath.Join(dir, "data"), env, "--config", config)

	const (
		accepted  = `{"received":true,"status":"accepted"}`
		duplicate = `{"received":true,"status":"duplicate"}`
		sigFailed = `{"error":"signature verification failed"}`
	)
	for _, pc := range providerCases() {
		t.Run(pc.endpoint, func(t *testing.T) {
			now := time.Now()
			send := func(name string, d delivery, wantCode int, wantAnswer string) {
				t.Helper()
				code, answer, _ := srv.post(pc.endpoint, d.body, d.headers)
				assert.Equal(t, wantCode, code, "%s: %s", name, answer)
				assert.JSONEq(t, wantAnswer, answer, name)
			}

			valid := pc.sign(pc.secrets[0], 1, now)
			send("valid", valid, 200, accepted)
			send("duplicate", valid, 200, duplicate)

			tampered := valid
			tampered.body = pc.tamper(valid.body)
			require.False(t, bytes.Equal(tampered.body, valid.body))
			send("tampered body", tampered, 400, sigFailed)

			send("wrong secret", pc.sign(pc.secrets[2], 2, now), 400, sigFailed)
			if pc.timestamped {
				send("stale timestamp", pc.sign(pc.secrets[0], 3, now.Add(-time.Hour)), 400, sigFailed)
				send("future timestamp", pc.sign(pc.secrets[0], 4, now.Add(time.Hour)), 400, sigFailed)
			}

			rotated := pc.sign(pc.secrets[1], 5, now)
			send("rotated secret", rotated, 200, accepted)

			// The journal holds the event once, with its envelope; the
			// delivery log has both deliveries of it.
			var entry ledger.EventEntry
			path := "/v1/events/" + pc.namespace + "/" + url.PathEscape(valid.eventID)
			require.Eventually(t, func() bool {
				return srv.getJSON(path, &entry) == 200 && entry.Deliveries.Count == 2
			}, 5*time.Second, 50*time.Millisecond, "GET %s: %+v", path, entry)
			require.NotNil(t, entry.Journal)
			assert.Equal(t, valid.eventID, entry.Journal.EventID)
			assert.Equal(t, pc.eventType, entry.Journal.EventType)
			assert.Equal(t, pc.endpoint, entry.Journal.Endpoint)
			assert.Equal(t, "signature", string(entry.Journal.Verification))
			assert.False(t, entry.Journal.Created.IsZero())
			assert.Equal(t, 1, entry.Deliveries.Duplicates)
			assert.Equal(t, "duplicate", string(entry.Deliveries.LastOutcome))
			for _, d := range entry.Deliveries.Deliveries {
				assert.Equal(t, pc.endpoint, d.Endpoint)
				assert.Equal(t, "signature", string(d.Verification))
				assert.Equal(t, 200, d.Status)
			}

			var rot ledger.EventEntry
			require.Equal(t, 200, srv.getJSON("/v1/events/"+pc.namespace+"/"+url.PathEscape(rotated.eventID), &rot))
			require.NotNil(t, rot.Journal, "the delivery signed with the rotated secret is journaled")
			assert.Equal(t, 1, rot.Deliveries.Count)

			// Rejected deliveries are journaled nowhere.
			wrong := pc.sign(pc.secrets[2], 2, now)
			var none ledger.EventEntry
			srv.getJSON("/v1/events/"+pc.namespace+"/"+url.PathEscape(wrong.eventID), &none)
			assert.Nil(t, none.Journal)
		})
	}

	// PactaPay: a verified payment event without its amount is malformed,
	// never journaled.
	noAmount := []byte(`{"id":"evt_pp_e2e_noamount","event":"payment.completed","payment_id":"pay_x","currency":"EUR"}`)
	h := hmacsig.Sign(hmacsig.PactaPay(), ppCurrent, time.Now(), noAmount)
	code, answer, _ := srv.post("pactapay", noAmount, h)
	assert.Equal(t, 400, code)
	assert.JSONEq(t, `{"error":"malformed event"}`, answer)

	// Metrics count every outcome per endpoint and every failure by code.
	_, metrics := srv.get("/metrics")
	for _, pc := range providerCases() {
		for _, want := range []string{
			fmt.Sprintf(`billfold_deliveries_total{endpoint=%q,outcome="accepted"} 2`, pc.endpoint),
			fmt.Sprintf(`billfold_deliveries_total{endpoint=%q,outcome="duplicate"} 1`, pc.endpoint),
			fmt.Sprintf(`billfold_signature_failures_total{code="BILLFOLD-SIG-MISMATCH",endpoint=%q} 2`, pc.endpoint),
		} {
			assert.Contains(t, string(metrics), want)
		}
		if pc.timestamped {
			assert.Contains(t, string(metrics), fmt.Sprintf(`billfold_signature_failures_total{code="BILLFOLD-SIG-TOO-OLD",endpoint=%q} 1`, pc.endpoint))
			assert.Contains(t, string(metrics), fmt.Sprintf(`billfold_signature_failures_total{code="BILLFOLD-SIG-TOO-NEW",endpoint=%q} 1`, pc.endpoint))
		}
	}
	assert.Contains(t, string(metrics), `billfold_deliveries_total{endpoint="pactapay",outcome="malformed"} 1`)
}
