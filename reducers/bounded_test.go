package reducers

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
)

// applyAll folds events one by one into m with every projection and
// returns how many writes each event caused.
func applyAll(t tb, m memory, events ...*domain.Envelope) int {
	t.Helper()
	writes := 0
	for _, ev := range events {
		for _, p := range All(DefaultOptions()) {
			if !p.Handles(ev.Provider, ev.EventType) {
				continue
			}
			changes, err := p.Apply(ev, m)
			require.NoError(t, err)
			writes += len(changes)
			maps.Copy(m, changes)
		}
	}
	return writes
}

// A customer, a subscription and a user's wallet that live for thousands
// of events carry no more than they did after a few hundred: a record
// remembers its latest events by id (FoldedRefs, FoldedHorizon), and
// counts the rest.
func TestLongLivedRecordsStayBounded(t *testing.T) {
	const events = 2000
	h := newHistory(t)
	h.clerkUser("user.created", "user_1", "ana@example.com")
	h.stripe("customer.created", map[string]any{"id": "cus_1", "object": "customer", "email": "ana@example.com"}, nil)
	h.stripe("customer.subscription.created", subscription("sub_1", "cus_1", "active", nil), nil)
	sizes := map[string]int{}
	keys := map[string]string{
		"customer":     CustomerKey("stripe", "cus_1"),
		"subscription": SubscriptionKey("stripe", "sub_1"),
		"wallet":       WalletKey("user_1"),
	}
	m := memory{}
	applyAll(t, m, h.events...)
	for i := range events - 1 {
		h.tick(time.Hour)
		applyAll(t, m,
			h.stripe("customer.updated", map[string]any{"id": "cus_1", "object": "customer", "email": fmt.Sprintf("ana+%d@example.com", i)}, nil),
			h.stripe("customer.subscription.updated", subscription("sub_1", "cus_1", "active", map[string]any{"quantity": i%7 + 1}), map[string]any{"quantity": (i+6)%7 + 1}),
			h.clerkUser("user.updated", "user_1", fmt.Sprintf("ana+%d@example.com", i)))
		if i == 1000 {
			for name, key := range keys {
				sizes[name] = len(m[key])
			}
		}
	}
	for name, key := range keys {
		assert.LessOrEqual(t, len(m[key]), sizes[name]+64, "%s grew after 1,000 events", name)
	}
	c := record[domain.CustomerRecord](t, m, keys["customer"])
	assert.Equal(t, events, c.Version, "every event counted")
	assert.Len(t, c.EventIDs, domain.MaxRecordEvents)
	assert.Equal(t, h.events[len(h.events)-3].EventID, c.EventIDs[len(c.EventIDs)-1], "the latest event shown last")
	assert.Equal(t, events, record[domain.SubscriptionRecord](t, m, keys["subscription"]).Version)
	assert.Equal(t, events, record[domain.WalletRecord](t, m, keys["wallet"]).Version)
}

// An event older than every event a record still remembers by id is
// folded all the same (a refund is never lost) and counted once; the same
// event again changes nothing.
func TestLateEventIsFoldedOnce(t *testing.T) {
	h := newHistory(t)
	const pi, refunds = "pi_1", FoldedRefs + 72 // an hour apart: the oldest is a week behind the latest
	for i := range refunds {
		h.tick(time.Hour)
		h.stripe("refund.created", map[string]any{"id": fmt.Sprintf("re_%d", i), "object": "refund", "amount": 1, "status": "succeeded", "payment_intent": pi, "charge": "ch_1"}, nil)
	}
	late := h.events[0]
	m := memory{}
	applyAll(t, m, h.events[1:]...)
	key := OrderKey("stripe", pi)
	before := record[domain.OrderRecord](t, m, key)
	require.Equal(t, int64(refunds-1), before.AmountRefunded)

	assert.Equal(t, 2, applyAll(t, m, late), "the late refund changes the order and the wallets' top-up entry (not the charge's alias: a late event that changes nothing is not counted)")
	after := record[domain.OrderRecord](t, m, key)
	assert.Equal(t, int64(refunds), after.AmountRefunded)
	assert.Equal(t, refunds, after.Version)

	assert.Zero(t, applyAll(t, m, late, h.events[5], h.events[refunds-1]), "redeliveries, late or recent, change nothing")
	assert.JSONEq(t, string(fold(t, DefaultOptions(), h.events)[key]), string(m[key]), "the same order as folding in order")
}

// manyEventsOfOneCustomer draws a long history of one Stripe customer,
// longer than what a record remembers by id, with its clock often
// standing still.
func manyEventsOfOneCustomer(t *rapid.T) []*domain.Envelope {
	h := newHistory(t)
	h.stripe("customer.created", map[string]any{"id": "cus_1", "object": "customer", "email": "a@example.com"}, nil)
	for i := range rapid.IntRange(FoldedRefs+1, 3*FoldedRefs).Draw(t, "events") {
		h.tick(rapid.SampledFrom([]time.Duration{0, time.Second, time.Hour, 24 * time.Hour}).Draw(t, "tick"))
		h.stripe("customer.updated", map[string]any{"id": "cus_1", "object": "customer", "email": fmt.Sprintf("a+%d@example.com", i),
			"metadata": map[string]any{"deal_id": rapid.SampledFrom([]string{"d1", "d2", "d3"}).Draw(t, "deal")}}, nil)
	}
	return h.events
}

// Any delivery order in which no event first comes after FoldedRefs
// later events of its record, with redeliveries anywhere after the first
// delivery, folds to the same bytes as provider order.
func TestBoundedLatenessConvergesExactly(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		events := manyEventsOfOneCustomer(t)
		var order []*domain.Envelope
		for block := range slices.Chunk(events, FoldedRefs/2) {
			order = append(order, rapid.Permutation(block).Draw(t, "block")...)
		}
		for range rapid.IntRange(0, len(events)).Draw(t, "duplicates") {
			// A redelivery, anywhere after the first delivery (one placed
			// before it would be the first delivery, possibly very early).
			ev := rapid.SampledFrom(events).Draw(t, "duplicate")
			at := rapid.IntRange(slices.Index(order, ev)+1, len(order)).Draw(t, "at")
			order = slices.Insert(order, at, ev)
		}
		require.Equal(t, fold(t, DefaultOptions(), events), fold(t, DefaultOptions(), order))
	})
}

// Any delivery order at all converges to the same record state; only the
// count may miss a late event that changed nothing (FoldedRefs).
func TestAnyLatenessConvergesButTheCount(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		events := manyEventsOfOneCustomer(t)
		key := CustomerKey("stripe", "cus_1")
		want := record[domain.CustomerRecord](t, fold(t, DefaultOptions(), events), key)
		got := record[domain.CustomerRecord](t, fold(t, DefaultOptions(), shuffleWithDuplicates(t, events)), key)
		require.Equal(t, len(events), want.Version)
		require.LessOrEqual(t, got.Version, want.Version)
		got.Version = want.Version
		require.Equal(t, want, got)
	})
}

// A record stored before the window existed, with every event in an
// array, is read as it is: its events still make redeliveries no-ops and
// the next event counts on from them.
func TestRecordsOfTheEarlierFormatStillFold(t *testing.T) {
	h := newHistory(t)
	for i := range 3 {
		h.tick(time.Hour)
		h.stripe("customer.updated", map[string]any{"id": "cus_1", "object": "customer", "email": fmt.Sprintf("a+%d@example.com", i)}, nil)
	}
	m := memory{}
	applyAll(t, m, h.events...)
	key := CustomerKey("stripe", "cus_1")
	var stored map[string]map[string]any
	require.NoError(t, json.Unmarshal(m[key], &stored))
	var earlier []map[string]any
	for _, ev := range h.events {
		earlier = append(earlier, map[string]any{"at": ev.Created.UTC().Format(time.RFC3339), "event_id": ev.EventID})
	}
	stored["merge"]["folded"] = earlier
	old, err := json.Marshal(stored)
	require.NoError(t, err)
	m[key] = old

	assert.Zero(t, applyAll(t, m, h.events[1]), "a redelivery changes nothing")
	h.tick(time.Hour)
	assert.Equal(t, 2, applyAll(t, m, h.stripe("customer.updated", map[string]any{"id": "cus_1", "object": "customer", "email": "new@example.com"}, nil)), "the customer and its identity entry in wallets")
	c := record[domain.CustomerRecord](t, m, key)
	assert.Equal(t, 4, c.Version)
	assert.Equal(t, "new@example.com", c.Email)
	assert.Equal(t, fold(t, DefaultOptions(), h.events)[key], m[key], "the same bytes as a fold of the new form")
}

// An earlier version wrote an empty set of events as null; it reads as
// empty.
func TestFoldedNullIsEmpty(t *testing.T) {
	var f Folded
	require.NoError(t, json.Unmarshal([]byte(`null`), &f))
	assert.Equal(t, Folded{}, f)
	s, err := decodeStored[domain.WalletRecord, walletMerge]([]byte(`{"record":{"user_id":"u1"},"merge":{"folded":null,"parts":null}}`))
	require.NoError(t, err)
	assert.Zero(t, s.Merge.Folded.Count)
}
