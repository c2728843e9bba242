package reducers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
)

// The orders fold reads a PactaPay payment's fields by PactaPay's names,
// exactly as intake checked them: a member spelled in another case is not
// the field, and a partial refund counts what amount_refunded says.
func TestPactaPayFoldReadsIntakeNames(t *testing.T) {
	h := newHistory(t)
	// Written by hand: the case variants come last, where a
	// case-insensitive reader would take them.
	h.add(domain.PactaPay, "payment.completed", map[string]any{}).Body = []byte(`{"id":"pp_1","event":"payment.completed",
		"payment_id":"pay_1","amount":5000,"currency":"eur","customer":"cust_1","metadata":{"order":"o_1"},
		"Amount":1,"CURRENCY":"usd","Customer":"cust_2","Metadata":{"x":"y"},"Payment_Id":"pay_2"}`)
	h.tick(time.Hour)
	h.add(domain.PactaPay, "payment.refunded", map[string]any{"id": "pp_2", "event": "payment.refunded", "payment_id": "pay_1",
		"amount": 5000, "amount_refunded": 1500, "currency": "eur"})
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		o := record[domain.OrderRecord](t, fold(t, DefaultOptions(), order), OrderKey("pactapay", "pay_1"))
		assert.Equal(t, int64(5000), o.Amount)
		assert.Equal(t, int64(1500), o.AmountRefunded)
		assert.Equal(t, "eur", o.Currency)
		assert.Equal(t, "cust_1", o.CustomerID)
		assert.Equal(t, map[string]string{"order": "o_1"}, o.Metadata)
	}
}

// A PactaPay payment event the fold cannot read is refused with
// BILLFOLD-REDUCER-DECODE naming the event, every time it is applied
// (the decode is memoized with its error), and changes nothing.
func TestPactaPayDecodeRefusals(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string
	}{
		{"no payment_id", `{"id":"pp_1","event":"payment.completed","amount":1,"currency":"eur"}`,
			"BILLFOLD-REDUCER-DECODE: PactaPay event pp_1 has no payment_id"},
		{"a metadata value that is no string", `{"id":"pp_1","event":"payment.completed","payment_id":"pay_1","amount":1,"currency":"eur","metadata":{"credits":100}}`,
			"BILLFOLD-REDUCER-DECODE: PactaPay event pp_1: "},
		{"amount_refunded a string", `{"id":"pp_1","event":"payment.refunded","payment_id":"pay_1","amount":1,"amount_refunded":"1","currency":"eur"}`,
			"BILLFOLD-REDUCER-DECODE: PactaPay event pp_1: "},
	}
	var orders Projection
	for _, p := range All(DefaultOptions()) {
		if p.Name() == domain.ProjectionOrders {
			orders = p
		}
	}
	require.NotNil(t, orders)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := &domain.Envelope{Provider: domain.PactaPay, Endpoint: "pactapay", EventID: "pp_1", EventType: "payment.completed",
				Created: time.Unix(1767225600, 0), Body: []byte(c.body), Facts: &domain.Facts{}}
			for range 2 {
				changes, err := orders.Apply(ev, memory{})
				require.Error(t, err)
				assert.Equal(t, domain.CodeReducerDecode, domain.ErrorCode(err))
				assert.Contains(t, err.Error(), c.want)
				assert.Empty(t, changes)
			}
		})
	}
}
