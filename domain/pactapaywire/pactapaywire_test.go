package pactapaywire_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/pactapaywire"
	"github.com/billfold/billfold/ingest/samples"
)

const refundEvent = `{"id":"evt_pp_2","event":"payment.refunded","payment_id":"pay_1","amount":4999,"amount_refunded":1000,
"currency":"EUR","customer":"cust_9","timestamp":1700000000,"metadata":{"order":"o_1","note":null}}`

// One decode reads every field the fold uses, in minor units; a null
// metadata value reads as empty.
func TestDecodePayment(t *testing.T) {
	p, err := pactapaywire.Decode([]byte(refundEvent))
	require.NoError(t, err)
	assert.Equal(t, &pactapaywire.Payment{ID: "evt_pp_2", PaymentID: "pay_1", Amount: 4999, AmountRefunded: 1000,
		Currency: "EUR", Customer: "cust_9", Metadata: map[string]string{"order": "o_1", "note": ""}}, p)

	p, err = pactapaywire.Decode(samples.PactaPayPayment("payment.completed", "pay_s", 4200, time.Unix(1767225600, 0)))
	require.NoError(t, err)
	assert.Equal(t, "pay_s", p.PaymentID)
	assert.Equal(t, int64(4200), p.Amount)
	assert.Equal(t, "usd", p.Currency)
	assert.Equal(t, map[string]string{"deal_id": "deal_sample_42"}, p.Metadata)
}

// Member names are PactaPay's, matched exactly, as intake matches them: a
// member spelled in another case is not the field.
func TestDecodeMatchesNamesExactly(t *testing.T) {
	p, err := pactapaywire.Decode([]byte(`{"payment_id":"pay_1","Amount":5,"CUSTOMER":"c","amount":7}`))
	require.NoError(t, err)
	assert.Equal(t, int64(7), p.Amount)
	assert.Empty(t, p.Customer)
	_, err = pactapaywire.Decode([]byte(`{"Payment_ID":"pay_1"}`))
	assert.ErrorIs(t, err, pactapaywire.ErrNoPayment)
}

// A field of the wrong type is an error, not a zero; an event without a
// payment_id is ErrNoPayment.
func TestDecodeRefuses(t *testing.T) {
	for _, body := range []string{`{}`, `{"payment_id":""}`, `{"payment_id":null}`, `null`, `{"id":"e","event":"payout.sent"}`} {
		_, err := pactapaywire.Decode([]byte(body))
		assert.ErrorIs(t, err, pactapaywire.ErrNoPayment, body)
	}
	for _, body := range []string{
		`{"payment_id":"p","amount":"10"}`,
		`{"payment_id":"p","amount":10.5}`,
		`{"payment_id":"p","amount":1e3}`,
		`{"payment_id":"p","amount":99999999999999999999}`,
		`{"payment_id":"p","amount_refunded":true}`,
		`{"payment_id":"p","customer":7}`,
		`{"payment_id":"p","metadata":{"credits":100}}`,
		`{"payment_id":7}`,
		`{"payment_id":"p"} {}`,
		`[]`,
		`id=e&event=payment.completed`,
	} {
		_, err := pactapaywire.Decode([]byte(body))
		if assert.Error(t, err, body) {
			assert.NotErrorIs(t, err, pactapaywire.ErrNoPayment, body)
		}
	}
}

// The payment types require id, payment_id and currency as non-empty
// strings and amount as a 64-bit integer; the first field that fails is
// named, with the code and message intake answers with.
func TestCheckRequiredFields(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"complete", `{"id":"e","event":"payment.failed","payment_id":"p","amount":-0,"currency":"EUR"}`, ""},
		{"largest amount", `{"id":"e","payment_id":"p","amount":9223372036854775807,"currency":"EUR"}`, ""},
		{"id missing", `{"payment_id":"p","amount":1,"currency":"EUR"}`, "field id is missing or not a string"},
		{"id a number", `{"id":7,"payment_id":"p","amount":1,"currency":"EUR"}`, "field id is missing or not a string"},
		{"id empty", `{"id":"","payment_id":"p","amount":1,"currency":"EUR"}`, "field id is missing or not a string"},
		{"payment_id missing", `{"id":"e","amount":1,"currency":"EUR"}`, "field payment_id is missing or not a string"},
		{"payment_id a number", `{"id":"e","payment_id":7,"amount":1,"currency":"EUR"}`, "field payment_id is missing or not a string"},
		{"payment_id null", `{"id":"e","payment_id":null,"amount":1,"currency":"EUR"}`, "field payment_id is missing or not a string"},
		{"payment_id an object", `{"id":"e","payment_id":{"id":"p"},"amount":1,"currency":"EUR"}`, "field payment_id is missing or not a string"},
		{"currency a number", `{"id":"e","payment_id":"p","amount":1,"currency":978}`, "field currency is missing or not a string"},
		{"currency empty", `{"id":"e","payment_id":"p","amount":1,"currency":""}`, "field currency is missing or not a string"},
		{"amount missing", `{"id":"e","payment_id":"p","currency":"EUR"}`, "field amount is missing or not an integer"},
		{"amount a string", `{"id":"e","payment_id":"p","amount":"10","currency":"EUR"}`, "field amount is missing or not an integer"},
		{"amount fractional", `{"id":"e","payment_id":"p","amount":10.5,"currency":"EUR"}`, "field amount is missing or not an integer"},
		{"amount exponent", `{"id":"e","payment_id":"p","amount":1e3,"currency":"EUR"}`, "field amount is missing or not an integer"},
		{"amount too large", `{"id":"e","payment_id":"p","amount":9223372036854775808,"currency":"EUR"}`, "field amount is missing or not an integer"},
		{"the last of repeated members counts", `{"id":"e","payment_id":"p","amount":1,"amount":null,"currency":"EUR"}`, "field amount is missing or not an integer"},
		{"fields checked in order", `{"id":"e","payment_id":7,"currency":978}`, "field payment_id is missing or not a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := pactapaywire.DecodeEnvelope([]byte(c.body))
			require.NoError(t, err)
			for _, typ := range pactapaywire.PaymentTypes {
				err := e.Check(typ)
				if c.want == "" {
					assert.NoError(t, err, typ)
					continue
				}
				assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err), typ)
				assert.Equal(t, c.want, domain.ErrorMessage(err), typ)
			}
			assert.NoError(t, e.Check("payout.sent"), "other types require none of the payment fields")
		})
	}
}

// The envelope's payment is payment_id when it is a non-empty string;
// DecodeEnvelope refuses only what is not one JSON object.
func TestEnvelopePayment(t *testing.T) {
	for body, want := range map[string]string{
		`{"payment_id":"pay_1"}`:                     "pay_1",
		`{"payment_id":"pay_\u0031","payment_id":7}`: "",
		`{"payment_id":7,"payment_id":"pay_2"}`:      "pay_2",
		`{"payment_id":["pay_1"]}`:                   "",
		`{}`:                                         "",
	} {
		e, err := pactapaywire.DecodeEnvelope([]byte(body))
		require.NoError(t, err, body)
		assert.Equal(t, want, e.Payment(), body)
	}
	for _, body := range []string{`[]`, `"pay_1"`, `{"payment_id":"p"`, `{} {}`} {
		_, err := pactapaywire.DecodeEnvelope([]byte(body))
		assert.Error(t, err, body)
	}
}

// Decode never panics, and what it accepts agrees with what intake read
// of the same body: the same payment, and, where intake's check passed,
// an id and a currency.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(refundEvent))
	f.Add(samples.PactaPayPayment("payment.completed", "pay_1", 4999, time.Unix(1700000000, 0)))
	f.Add([]byte(`{"payment_id":"p","amount":1,"amount":null,"metadata":{"a":"1"},"metadata":{"b":null}}`))
	f.Add([]byte("{\"id\":\"e\",\"payment_id\":\"p\xff\",\"amount\":-0,\"currency\":\"\\u20ac\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := pactapaywire.Decode(body)
		if err != nil {
			return
		}
		require.NotEmpty(t, p.PaymentID)
		e, err := pactapaywire.DecodeEnvelope(body)
		require.NoError(t, err, "intake refuses a body the fold accepts")
		require.Equal(t, p.PaymentID, e.Payment(), "intake and fold read different payments")
		if e.Check("payment.completed") == nil {
			require.NotEmpty(t, p.ID)
			require.NotEmpty(t, p.Currency)
		}
	})
}

// BenchmarkDecode decodes a payment event as billfold's samples send it.
func BenchmarkDecode(b *testing.B) {
	body := samples.PactaPayPayment("payment.completed", "pay_bench_42", 4200, time.Unix(1767225600, 0))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pactapaywire.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
