package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/test/natstest"
)

// Issue 17, "a delivery log that keeps up": 64 signed senders at full rate,
// each event sent once and every fourth one again. Every delivery answered
// 200 accepted has its accepted entry, every duplicate its entry, and
// nothing was dropped.
func TestDeliveryLogKeepsUpWith64Senders(t *testing.T) {
	const senders, perSender = 64, 50
	in := newIntake(t, ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{secret}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var mu sync.Mutex
	answers := map[string][]string{} // event id → statuses answered 200
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range perSender {
				id := fmt.Sprintf("evt_flood_%02d_%03d", s, i)
				body := stripeEvent(id, "customer.updated", false)
				for range 1 + btoi(i%4 == 0) {
					req, _ := http.NewRequest(http.MethodPost, in.srv.URL+"/webhooks/stripe", bytes.NewReader(body))
					req.Header.Set("Stripe-Signature", signed(body, time.Now(), secret))
					resp, err := client.Do(req)
					if !assert.NoError(t, err) {
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						var a struct{ Status string }
						_ = json.Unmarshal(b, &a)
						mu.Lock()
						answers[id] = append(answers[id], a.Status)
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, answers, senders*perSender, "every event answered 200")

	var missing []string
	require.Eventually(t, func() bool {
		logged := in.readAllDeliveries(t)
		missing = missing[:0]
		for id, statuses := range answers {
			byOutcome := map[domain.Outcome]int{}
			for _, d := range logged[domain.DeliverySubject("stripe", id)] {
				byOutcome[d.Outcome]++
			}
			for _, st := range statuses {
				if byOutcome[domain.Outcome(st)] == 0 {
					missing = append(missing, id+" "+st)
				} else {
					byOutcome[domain.Outcome(st)]--
				}
			}
		}
		return len(missing) == 0
	}, 30*time.Second, 200*time.Millisecond, "deliveries answered 200 without their entry: %v", &missing)
	assert.Zero(t, testutil.ToFloat64(in.metrics.DeliveryLogFailures), "no entry dropped")
	t.Logf("%d deliveries from %d senders, every one in the delivery log", senders*perSender*5/4, senders)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Issue 16, item 7: a source that floods is counted, not logged one request
// at a time. Rate-limited requests are never written; refused ones are
// sampled per source address and the rest counted.
func TestDeliveryLogSamplesFloodsPerSource(t *testing.T) {
	in := newLimitedIntake(t, ingest.RateLimit{PerSecond: 1, Burst: 800},
		ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{secret}})
	const sent = 1000
	body := stripeEvent("evt_forged", "customer.created", false)
	statuses := map[int]int{}
	start := time.Now()
	for range sent {
		status, _, _ := in.post(t, "/webhooks/stripe", body, signed(body, time.Now(), "whsec_wrong"))
		statuses[status]++
	}
	elapsed := time.Since(start)
	require.NoError(t, in.deliveries.Close(ctx(t)))
	refused, limited := statuses[http.StatusBadRequest], statuses[http.StatusTooManyRequests]
	require.Greater(t, limited, 0, "the rate limit refused some: %v", statuses)
	require.Equal(t, sent, refused+limited, "%v", statuses)

	logged := in.readAllDeliveries(t)[domain.UnverifiedDeliverySubject("stripe")]
	sampled := testutil.ToFloat64(in.metrics.DeliveryLogSampled.WithLabelValues(string(domain.OutcomeRejected)))
	for _, d := range logged {
		assert.Equal(t, domain.OutcomeRejected, d.Outcome, "rate-limited requests are not logged")
	}
	// The default sample: a burst of 500, then 20 a second, however long
	// this machine took to send them.
	most := 500 + int(20*elapsed.Seconds()) + 1
	assert.LessOrEqual(t, len(logged), most, "a flooding source is sampled")
	assert.GreaterOrEqual(t, len(logged), 500, "the sample's burst is logged")
	if most < refused {
		assert.Positive(t, sampled, "past its sample a source is counted")
	}
	assert.Equal(t, refused, len(logged)+int(sampled), "every refusal is logged or counted")
	assert.Equal(t, float64(limited), testutil.ToFloat64(in.metrics.Deliveries.WithLabelValues("stripe", string(domain.OutcomeRateLimited))))
}

// Issue 16, item 7: beside its age limit the delivery log has a size limit;
// past it the oldest entries go and the newest stay.
func TestDeliveryLogHasASizeLimit(t *testing.T) {
	cfg := ingest.DeliveryLogConfig(1, time.Hour, 32<<10)
	assert.Equal(t, int64(32<<10), cfg.MaxBytes)
	assert.Equal(t, jetstream.DiscardOld, cfg.Discard)
	assert.Equal(t, int64(ingest.DefaultDeliveryMaxBytes), ingest.DeliveryLogConfig(1, 0, 0).MaxBytes, "a size limit by default")

	in := newIntake(t, ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{secret}})
	s, err := in.js.Stream(ctx(t), domain.DeliveryStream)
	require.NoError(t, err)
	_, err = in.js.UpdateStream(ctx(t), cfg)
	require.NoError(t, err)
	const events = 200 // about 500 bytes of entry each: three times the limit
	for i := range events {
		body := stripeEvent(fmt.Sprintf("evt_size_%03d", i), "customer.created", false)
		status, _, _ := in.post(t, "/webhooks/stripe", body, signed(body, time.Now(), secret))
		require.Equal(t, http.StatusOK, status)
	}
	last := domain.DeliverySubject("stripe", fmt.Sprintf("evt_size_%03d", events-1))
	require.Eventually(t, func() bool { return len(in.readAllDeliveries(t)[last]) == 1 }, 10*time.Second, 50*time.Millisecond)
	info, err := s.Info(ctx(t))
	require.NoError(t, err)
	assert.LessOrEqual(t, info.State.Bytes, uint64(32<<10))
	assert.Less(t, info.State.Msgs, uint64(events), "the oldest entries were discarded")
	assert.Empty(t, in.readAllDeliveries(t)[domain.DeliverySubject("stripe", "evt_size_000")], "the first entry went first")
}

// readAllDeliveries reads the whole delivery log, by subject.
func (in *intake) readAllDeliveries(t *testing.T) map[string][]domain.Delivery {
	t.Helper()
	out := map[string][]domain.Delivery{}
	natstest.EachMessage(t, in.js, domain.DeliveryStream, func(m jetstream.Msg) {
		var d domain.Delivery
		require.NoError(t, json.Unmarshal(m.Data(), &d))
		out[m.Subject()] = append(out[m.Subject()], d)
	})
	return out
}
