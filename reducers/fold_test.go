package reducers

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
)

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	require.TestingT
	Helper()
}

// memory is a Lookup over a map: the reducers' view of a store in tests.
type memory map[string][]byte

func (m memory) Get(key string) ([]byte, error) { return m[key], nil }

// fold applies events in the given order to a fresh store with every
// projection, failing the test on any reducer error.
func fold(t tb, o Options, events []*domain.Envelope) memory {
	t.Helper()
	m := memory{}
	for _, ev := range events {
		for _, p := range All(o) {
			if !p.Handles(ev.Provider, ev.EventType) {
				continue
			}
			changes, err := p.Apply(ev, m)
			require.NoError(t, err, "%s %s", p.Name(), ev)
			maps.Copy(m, changes)
		}
	}
	return m
}

// record decodes the record part of a stored value.
func record[R any](t tb, m memory, key string) R {
	t.Helper()
	var s struct {
		Record R `json:"record"`
	}
	raw, ok := m[key]
	require.True(t, ok, "no record %s", key)
	require.NoError(t, json.Unmarshal(raw, &s))
	return s.Record
}

// history builds provider events with the provider clock starting at a
// fixed instant; at advances it.
type history struct {
	t      tb
	now    time.Time
	n      int
	events []*domain.Envelope
}

func newHistory(t tb) *history {
	return &history{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// tick moves the provider clock by d (zero keeps events in one second).
func (h *history) tick(d time.Duration) { h.now = h.now.Add(d) }

func (h *history) add(p domain.Provider, typ string, body map[string]any) *domain.Envelope {
	h.n++
	id := fmt.Sprintf("evt_%04d", h.n)
	if p == domain.Stripe {
		body["id"], body["object"], body["type"], body["created"] = id, "event", typ, h.now.Unix()
	}
	if p == domain.Clerk {
		id = fmt.Sprintf("msg_%04d", h.n)
		body["type"], body["object"] = typ, "event"
	}
	raw, err := json.Marshal(body)
	require.NoError(h.t, err)
	ev := &domain.Envelope{Provider: p, Endpoint: string(p), EventID: id, EventType: typ, Created: h.now, Body: raw}
	h.events = append(h.events, ev)
	return ev
}

func (h *history) stripe(typ string, object map[string]any, prev map[string]any) *domain.Envelope {
	data := map[string]any{"object": object}
	if prev != nil {
		data["previous_attributes"] = prev
	}
	return h.add(domain.Stripe, typ, map[string]any{"data": data, "livemode": false})
}

func (h *history) clerkUser(typ, id, email string) *domain.Envelope {
	data := map[string]any{"id": id, "object": "user"}
	if typ == "user.deleted" {
		data["deleted"] = true
	} else {
		data["first_name"], data["last_name"] = "Ana", "Silva"
		data["primary_email_address_id"] = "idn_1"
		data["email_addresses"] = []any{map[string]any{"id": "idn_1", "email_address": email}}
		data["created_at"] = h.now.UnixMilli()
	}
	return h.add(domain.Clerk, typ, map[string]any{"data": data, "timestamp": h.now.UnixMilli()})
}

// subscription is a Stripe subscription object with the given fields over
// a base.
func subscription(id, customer, status string, fields map[string]any) map[string]any {
	o := map[string]any{
		"id": id, "object": "subscription", "customer": customer, "status": status,
		"cancel_at_period_end": false, "cancel_at": nil, "ended_at": nil, "pause_collection": nil,
		"trial_end": nil, "quantity": 1,
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_" + id, "quantity": 1, "current_period_end": 1770000000,
			"price": map[string]any{"id": "price_pro"}, "plan": map[string]any{"id": "price_pro"},
		}}},
	}
	maps.Copy(o, fields)
	return o
}

func invoice(id, sub, status string, due, paid int64) map[string]any {
	return map[string]any{
		"id": id, "object": "invoice", "status": status, "amount_due": due, "amount_paid": paid, "currency": "eur",
		"parent": map[string]any{"subscription_details": map[string]any{"subscription": sub}},
	}
}

func session(id, pi, paymentStatus string, amount int64, md map[string]any) map[string]any {
	return map[string]any{
		"id": id, "object": "checkout.session", "mode": "payment", "payment_intent": pi, "payment_status": paymentStatus,
		"amount_total": amount, "currency": "eur", "customer": "cus_1", "metadata": md,
	}
}

func charge(id, pi string, amount, refunded int64, refunds ...map[string]any) map[string]any {
	return map[string]any{
		"id": id, "object": "charge", "payment_intent": pi, "amount": amount, "amount_refunded": refunded,
		"currency": "eur", "refunded": refunded >= amount, "refunds": map[string]any{"data": refunds},
	}
}

func refund(id string, amount int64, status string) map[string]any {
	return map[string]any{"id": id, "object": "refund", "amount": amount, "status": status}
}
