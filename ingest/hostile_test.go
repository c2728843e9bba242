package ingest_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
)

// Bad and hostile input over HTTP: each gets its documented status and
// code, none panics, none reaches the journal, every one is in the delivery
// log.
func TestHostileInput(t *testing.T) {
	in := newIntake(t, ingest.EndpointConfig{Name: "stripe", Provider: domain.Stripe, Secrets: []string{secret}})
	now := time.Now()
	valid := stripeEvent("evt_valid", "customer.created", false)
	signedHdr := func(body []byte) http.Header {
		return http.Header{"Stripe-Signature": {signed(body, now, secret)}}
	}
	deep := []byte(`{"id":"evt_deep","type":"x","data":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`)
	cases := []struct {
		name   string
		body   []byte
		header http.Header
		status int
		code   domain.Code
	}{
		{"empty body, no signature", nil, nil, 400, domain.CodeSigMissing},
		{"empty body, signed", []byte{}, signedHdr([]byte{}), 400, domain.CodeEventMalformed},
		{"huge body", bytes.Repeat([]byte("x"), 2<<20), signedHdr(valid), 413, domain.CodeBodyTooLarge},
		{"wrong content type is irrelevant to a valid signature", valid, http.Header{"Stripe-Signature": {signed(valid, now, secret)}, "Content-Type": {"text/plain"}}, 200, ""},
		{"truncated JSON", valid[:len(valid)/2], signedHdr(valid[:len(valid)/2]), 400, domain.CodeEventMalformed},
		{"id but no type", []byte(`{"id":"evt_notype"}`), signedHdr([]byte(`{"id":"evt_notype"}`)), 400, domain.CodeEventMalformed},
		{"deep nesting", deep, signedHdr(deep), 400, domain.CodeEventMalformed},
		{"invalid UTF-8 id", []byte("{\"id\":\"evt_\xff\xfe\",\"type\":\"x\"}"), signedHdr([]byte("{\"id\":\"evt_\xff\xfe\",\"type\":\"x\"}")), 400, domain.CodeEventMalformed},
		{"two signature headers", valid, http.Header{"Stripe-Signature": {signed(valid, now, secret), signed(valid, now, secret)}}, 400, domain.CodeSigMalformed},
		{"signature header garbage", valid, http.Header{"Stripe-Signature": {"t=,,,v1==;\u00e9\u00e9"}}, 400, domain.CodeSigMalformed},
		{"valid signature over a different body", valid, signedHdr(stripeEvent("evt_other", "customer.created", false)), 400, domain.CodeSigMismatch},
		{"replayed old delivery", valid, http.Header{"Stripe-Signature": {signed(valid, now.Add(-24*time.Hour), secret)}}, 400, domain.CodeSigTooOld},
	}
	journalBefore := in.journalCount(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, in.srv.URL+"/webhooks/stripe", bytes.NewReader(c.body))
			require.NoError(t, err)
			for k, vs := range c.header {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, c.status, resp.StatusCode)
		})
	}
	require.NoError(t, in.deliveries.Close(ctx(t)))
	assert.Equal(t, journalBefore+1, in.journalCount(t), "only the one valid delivery reached the journal")

	var codes []domain.Code
	for _, subject := range []string{domain.UnverifiedDeliverySubject("stripe"), domain.DeliverySubject("stripe", "evt_valid")} {
		for _, d := range in.readDeliveries(t, subject) {
			codes = append(codes, d.ReasonCode)
		}
	}
	for _, c := range cases {
		if c.code != "" {
			assert.Contains(t, codes, c.code, "the delivery log records %s", c.name)
		}
	}
	assert.Len(t, codes, len(cases), "every delivery is in the delivery log")
}

func (in *intake) journalCount(t *testing.T) uint64 {
	s, err := in.js.Stream(ctx(t), domain.JournalStream)
	require.NoError(t, err)
	info, err := s.Info(ctx(t))
	require.NoError(t, err)
	return info.State.Msgs
}
