package stripewire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain/stripewire"
	"github.com/billfold/billfold/ingest/samples"
)

const invoiceEvent = `{"id":"evt_1","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_1",
"customer":{"id":"cus_1","object":"customer"},"status":"paid","amount_due":2900,"amount_paid":2900,"currency":"eur",
"subscription":null,"parent":{"subscription_details":{"subscription":"sub_1"}},"metadata":{"user_id":"u_1","seats":4,"note":null}}}}`

// One decode reads what every projection needs: expandable ids in both
// shapes, metadata with non-string values kept as their JSON text, the
// invoice's subscription under either API version.
func TestDecodeInvoice(t *testing.T) {
	e, err := stripewire.Decode([]byte(invoiceEvent))
	require.NoError(t, err)
	o := e.Object
	assert.Equal(t, "invoice", o.Kind)
	assert.Equal(t, "in_1", o.ID)
	assert.Equal(t, stripewire.Expandable("cus_1"), o.Customer)
	assert.Equal(t, int64(2900), o.AmountPaid)
	assert.Equal(t, "sub_1", o.InvoiceSubscription(), "API 2025-03-31: parent.subscription_details")
	assert.Equal(t, stripewire.Metadata{"user_id": "u_1", "seats": "4", "note": ""}, o.Metadata, "numbers kept as text, null as empty")
	o.Subscription = "sub_top"
	assert.Equal(t, "sub_top", o.InvoiceSubscription(), "the top-level field of earlier API versions wins")
}

// Fields returns the requested top-level fields exactly as sent, and only
// those present; previous_attributes are kept by field.
func TestFieldsAsSent(t *testing.T) {
	e, err := stripewire.Decode([]byte(`{"data":{"object":{"id":"sub_1","status":"active","cancel_at":null,"quantity":3,"pause_collection":{"behavior":"void"}},
		"previous_attributes":{"status":"trialing"}}}`))
	require.NoError(t, err)
	f, err := e.Fields([]string{"status", "cancel_at", "ended_at"})
	require.NoError(t, err)
	assert.Equal(t, map[string]json.RawMessage{"status": json.RawMessage(`"active"`), "cancel_at": json.RawMessage(`null`)}, f)
	assert.Equal(t, json.RawMessage(`"trialing"`), e.Previous["status"])
	assert.JSONEq(t, `{"behavior":"void"}`, string(e.Object.PauseCollection), "raw members are kept as sent")
	assert.Equal(t, int64(3), e.Object.Quantity)
}

func TestDecodeRefusesEventsWithoutAnObject(t *testing.T) {
	for _, body := range []string{`{}`, `{"data":{}}`, `{"data":{"object":[]}}`, `{"data":{"object":"x"}}`} {
		_, err := stripewire.Decode([]byte(body))
		assert.ErrorIs(t, err, stripewire.ErrNoObject, body)
	}
	_, err := stripewire.Decode([]byte(`{"data":{"object":{"amount":"ten"}}}`))
	assert.Error(t, err, "a field of the wrong type is an error, not a zero")
}

// Decode never panics, and what it accepts has an object whose fields
// Fields can read.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(invoiceEvent))
	f.Add([]byte(`{"data":{"object":{"object":"charge","id":"ch_1","refunds":{"data":[{"id":"re_1","amount":5}]}}}}`))
	f.Add([]byte(`{"data":{"object":{"items":{"data":[{"price":{"id":"p"},"current_period_end":5}]}}}}`))
	f.Add([]byte(`{"data":{"object":{"customer":{"id":1}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := stripewire.Decode(body)
		if err != nil {
			return
		}
		_, err = e.Fields([]string{"status", "id"})
		assert.NoError(t, err)
	})
}

// BenchmarkDecode decodes a subscription event as the onboarding mix of
// billfold bench sends it (docs/performance.md).
func BenchmarkDecode(b *testing.B) {
	body := samples.Stripe{Type: "customer.subscription.updated", Created: time.Unix(1767225600, 0),
		Previous: map[string]any{"status": "trialing"}}.Event()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stripewire.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
