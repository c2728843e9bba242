package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v84/webhook"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/test/natstest"
)

const secret = "whsec_receiver_test"

// intake is a receiver on a real JetStream server, with a delivery log.
type intake struct {
	srv        *httptest.Server
	journal    *ingest.Journal
	deliveries *ingest.DeliveryLog
	metrics    *ingest.Metrics
	js         jetstream.JetStream
	natsStop   func()
}

func newIntake(t *testing.T, configs ...ingest.EndpointConfig) *intake {
	t.Helper()
	return newLimitedIntake(t, ingest.RateLimit{}, configs...)
}

// newLimitedIntake is newIntake with a rate limit per source address.
func newLimitedIntake(t *testing.T, rateLimit ingest.RateLimit, configs ...ingest.EndpointConfig) *intake {
	t.Helper()
	ns := natstest.Server(t)
	nc, js := natstest.Connect(t, ns)
	require.NoError(t, ingest.EnsureStreams(ctx(t), js, ingest.StreamOptions{Replicas: 1}))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	in := &intake{js: js, journal: ingest.NewJournal(nc, js), metrics: ingest.NewMetrics(prometheus.NewRegistry())}
	var err error
	in.deliveries, err = ingest.NewDeliveryLog(ctx(t), js, log, ingest.DeliveryLogOptions{Metrics: in.metrics})
	require.NoError(t, err)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = in.deliveries.Close(c)
	})
	var eps []*ingest.Endpoint
	for _, c := range configs {
		e, err := ingest.NewEndpoint(c)
		require.NoError(t, err)
		eps = append(eps, e)
	}
	rc, err := ingest.NewReceiver(eps, in.journal, in.deliveries, in.metrics, log, ingest.ReceiverOptions{AppendTimeout: time.Second, RateLimit: rateLimit})
	require.NoError(t, err)
	in.srv = httptest.NewServer(rc.Handler())
	t.Cleanup(in.srv.Close)
	in.natsStop = func() { ns.Shutdown(); ns.WaitForShutdown() }
	return in
}

func stripeEvent(id, typ string, livemode bool) []byte {
	return []byte(`{"id":"` + id + `","object":"event","type":"` + typ + `","created":1700000000,"livemode":` +
		strconv.FormatBool(livemode) + `,"data":{"object":{"id":"cus_1","object":"customer"}}}`)
}

func (in *intake) post(t *testing.T, path string, body []byte, sigHeader string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, in.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if sigHeader != "" {
		req.Header.Set("Stripe-Signature", sigHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func signed(body []byte, at time.Time, secret string) string {
	return stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

// The answers table of the foundation issue, row by row, against a real
// journal.
func TestReceiverAnswers(t *testing.T) {
	live := true
	in := newIntake(t,
		ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{"whsec_old", secret}},
		ingest.EndpointConfig{Name: "stripe-live", Provider: domain.Stripe, Secrets: []string{secret}, Livemode: &live},
		ingest.EndpointConfig{Name: "nosecret", Provider: domain.Stripe},
		ingest.EndpointConfig{Name: "small", Provider: domain.Stripe, Secrets: []string{secret}, MaxBodyBytes: 64},
	)
	now := time.Now()
	body := stripeEvent("evt_ok", "customer.created", false)
	cases := []struct {
		name       string
		path       string
		body       []byte
		sig        string
		wantStatus int
		wantBody   string
	}{
		{"verified new event", "/webhooks/stripe", body, signed(body, now, secret), 200, `{"received":true,"status":"accepted"}`},
		{"same event again", "/webhooks/stripe", body, signed(body, now, secret), 200, `{"received":true,"status":"duplicate"}`},
		{"signed with the rotated-out secret", "/webhooks/stripe", stripeEvent("evt_old", "x", false), signed(stripeEvent("evt_old", "x", false), now, "whsec_old"), 200, `{"received":true,"status":"accepted"}`},
		{"unknown event type is journaled", "/webhooks/stripe", stripeEvent("evt_new", "brand.new.type", false), signed(stripeEvent("evt_new", "brand.new.type", false), now, secret), 200, `{"received":true,"status":"accepted"}`},
		{"livemode differs", "/webhooks/stripe-live", stripeEvent("evt_test", "x", false), signed(stripeEvent("evt_test", "x", false), now, secret), 200, `{"received":true,"status":"ignored"}`},
		{"no signature", "/webhooks/stripe", body, "", 400, `{"error":"signature verification failed"}`},
		{"wrong secret", "/webhooks/stripe", body, signed(body, now, "whsec_wrong"), 400, `{"error":"signature verification failed"}`},
		{"tampered body", "/webhooks/stripe", append(bytes.Clone(body), ' '), signed(body, now, secret), 400, `{"error":"signature verification failed"}`},
		{"expired signature", "/webhooks/stripe", body, signed(body, now.Add(-10*time.Minute), secret), 400, `{"error":"signature verification failed"}`},
		{"verified but no type", "/webhooks/stripe", []byte(`{"id":"evt_1","object":"event"}`), signed([]byte(`{"id":"evt_1","object":"event"}`), now, secret), 400, `{"error":"malformed event"}`},
		{"verified but not JSON", "/webhooks/stripe", []byte(`hello`), signed([]byte(`hello`), now, secret), 400, `{"error":"malformed event"}`},
		{"body over the limit", "/webhooks/small", bytes.Repeat([]byte("a"), 65), "t=1,v1=00", 413, `{"error":"body too large"}`},
		{"endpoint without secret", "/webhooks/nosecret", body, signed(body, now, secret), 500, `{"error":"BILLFOLD-CONFIG-NO-SECRET"}`},
		{"unknown endpoint", "/webhooks/nope", body, signed(body, now, secret), 404, `{"error":"not found"}`},
		{"not a webhook path", "/admin", body, "", 404, `{"error":"not found"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, got, _ := in.post(t, c.path, c.body, c.sig)
			assert.Equal(t, c.wantStatus, status)
			assert.JSONEq(t, c.wantBody, got)
		})
	}

	resp, err := http.Get(in.srv.URL + "/webhooks/stripe")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "POST", resp.Header.Get("Allow"))

	resp, err = http.Get(in.srv.URL + "/healthz")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.JSONEq(t, `{"status":"ok"}`, string(b))

	assert.Equal(t, 3.0, testutil.ToFloat64(in.metrics.Deliveries.WithLabelValues("stripe", "accepted")))
	assert.Equal(t, 1.0, testutil.ToFloat64(in.metrics.Duplicates.WithLabelValues("stripe")))
	assert.Equal(t, 1.0, testutil.ToFloat64(in.metrics.SignatureFailures.WithLabelValues("stripe", string(domain.CodeSigTooOld))))
	assert.Equal(t, 1.0, testutil.ToFloat64(in.metrics.SignatureFailures.WithLabelValues("stripe", string(domain.CodeSigMissing))))
	assert.Equal(t, 2.0, testutil.ToFloat64(in.metrics.SignatureFailures.WithLabelValues("stripe", string(domain.CodeSigMismatch))))
}

func TestReceiverAnswers503WithRetryAfterWhenTheJournalIsDown(t *testing.T) {
	in := newIntake(t, ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{secret}})
	in.natsStop()
	body := stripeEvent("evt_down", "customer.created", false)
	status, got, h := in.post(t, "/webhooks/stripe", body, signed(body, time.Now(), secret))
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, ingest.RetryAfter, h.Get("Retry-After"))
	assert.NotContains(t, got, "received")
	assert.Equal(t, 1.0, testutil.ToFloat64(in.metrics.JournalAppendFailures.WithLabelValues("stripe")))
}

// Every delivery reaches the delivery log with its reason code; read in
// order of receipt, an event's entries number its attempts. The answer body
// never carries the cause.
func TestReceiverRecordsEveryDelivery(t *testing.T) {
	in := newIntake(t, ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{secret}})
	body := stripeEvent("evt_log", "invoice.paid", false)
	now := time.Now()
	for _, sig := range []string{signed(body, now.Add(-time.Hour), secret), signed(body, now, secret), signed(body, now, secret)} {
		req, _ := http.NewRequest(http.MethodPost, in.srv.URL+"/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sig)
		req.Header.Set("X-Request-Id", "req-"+strconv.Itoa(int(time.Now().UnixNano()%1e6)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.NoError(t, in.deliveries.Close(ctx(t)))

	var logged []domain.Delivery
	require.Eventually(t, func() bool {
		logged = in.readDeliveries(t, domain.DeliverySubject("stripe", "evt_log"))
		return len(logged) == 2
	}, 10*time.Second, 50*time.Millisecond, "the accepted entry is derived from the journal, the duplicate's written directly")
	logged = domain.NumberAttempts(logged)
	assert.Equal(t, []domain.Outcome{domain.OutcomeAccepted, domain.OutcomeDuplicate}, []domain.Outcome{logged[0].Outcome, logged[1].Outcome})
	assert.Equal(t, []int{1, 2}, []int{logged[0].Attempt, logged[1].Attempt})
	for _, d := range logged {
		assert.Equal(t, "invoice.paid", d.EventType)
		assert.Equal(t, domain.VerifiedSignature, d.Verification)
		assert.Equal(t, 200, d.Status)
		assert.NotZero(t, d.JournalSequence)
		assert.Equal(t, "127.0.0.1", d.SourceAddr)
		assert.True(t, strings.HasPrefix(d.RequestID, "req-"), "the sender's X-Request-Id is kept")
		assert.False(t, d.Completed.Before(d.Received))
		require.NotNil(t, d.Created)
		assert.Equal(t, int64(1700000000), d.Created.Unix())
	}
	rejected := in.readDeliveries(t, domain.UnverifiedDeliverySubject("stripe"))
	require.Len(t, rejected, 1)
	assert.Equal(t, domain.OutcomeRejected, rejected[0].Outcome)
	assert.Equal(t, domain.CodeSigTooOld, rejected[0].ReasonCode)
	assert.Equal(t, domain.VerifyFailed, rejected[0].Verification)
	assert.Empty(t, rejected[0].EventID, "an unverified body is never read for its id")
	assert.Equal(t, 400, rejected[0].Status)
}

func (in *intake) readDeliveries(t *testing.T, subject string) []domain.Delivery {
	t.Helper()
	c, err := in.js.OrderedConsumer(ctx(t), domain.DeliveryStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	require.NoError(t, err)
	var out []domain.Delivery
	for {
		m, err := c.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		if err != nil {
			return out
		}
		var d domain.Delivery
		require.NoError(t, json.Unmarshal(m.Data(), &d))
		out = append(out, d)
	}
}

// Issue 17: an unsigned delivery claiming a signed event's id is journaled
// in its own namespace, so Stripe's genuine, signed delivery of that id is
// accepted afterwards, not answered duplicate; each has its own journal
// subject and delivery log entry.
func TestUnsignedDeliveryNeverMakesASignedOneADuplicate(t *testing.T) {
	const open = "in-3f9a1c7be2d84056af19c2e7b5d0e813"
	in := newIntake(t,
		ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{secret}},
		ingest.EndpointConfig{Name: open, Provider: domain.Stripe, Unsigned: true})
	body := stripeEvent("evt_shared1", "customer.created", false)
	status, answer, _ := in.post(t, "/webhooks/"+open, body, "")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"received":true,"status":"accepted"}`, answer)
	status, answer, _ = in.post(t, "/webhooks/stripe", body, signed(body, time.Now(), secret))
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"received":true,"status":"accepted"}`, answer, "the signed event is new")
	status, answer, _ = in.post(t, "/webhooks/"+open, body, "")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"received":true,"status":"duplicate"}`, answer, "unsigned input dedupes among itself")

	s, err := in.js.Stream(ctx(t), domain.JournalStream)
	require.NoError(t, err)
	for ns, want := range map[string]domain.Verification{"stripe": domain.VerifiedSignature, "stripe~unsigned": domain.VerifiedUnsigned} {
		m, err := s.GetLastMsgForSubject(ctx(t), domain.JournalSubject(ns, "evt_shared1"))
		require.NoError(t, err, ns)
		env, err := domain.DecodeEnvelope(m.Header, m.Data, m.Sequence)
		require.NoError(t, err)
		assert.Equal(t, want, env.Verification, ns)
		require.Eventually(t, func() bool {
			return len(in.readDeliveries(t, domain.DeliverySubject(ns, "evt_shared1"))) >= 1
		}, 10*time.Second, 50*time.Millisecond, "%s has its delivery log entries", ns)
	}
}
