package reducers

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billfold/billfold/domain"
)

// clerkProfile is a Clerk user.created or user.updated whose external_id
// is ext ("" sends null).
func (h *history) clerkProfile(typ, id, ext string) *domain.Envelope {
	data := map[string]any{"id": id, "object": "user", "first_name": "Ana", "created_at": h.now.UnixMilli(), "external_id": nil}
	if ext != "" {
		data["external_id"] = ext
	}
	return h.add(domain.Clerk, typ, map[string]any{"data": data, "timestamp": h.now.UnixMilli()})
}

// stripeCustomer is a Stripe customer event whose metadata names user
// ("" for no user_id).
func (h *history) stripeCustomer(typ, id, user string) *domain.Envelope {
	md := map[string]any{}
	if user != "" {
		md["user_id"] = user
	}
	return h.stripe(typ, map[string]any{"id": id, "object": "customer", "metadata": md}, nil)
}

// topUp is a paid checkout session of customer ("" for a guest checkout)
// crediting user.
func (h *history) topUp(n int, customer, user string, credits int64) *domain.Envelope {
	s := session(fmt.Sprintf("cs_%d", n), fmt.Sprintf("pi_%d", n), "paid", 500, map[string]any{"user_id": user, "credits": strconv.FormatInt(credits, 10)})
	s["customer"] = nil
	if customer != "" {
		s["customer"] = customer
	}
	return h.stripe("checkout.session.completed", s, nil)
}

func entry(t *testing.T, w domain.WalletRecord, ref string) domain.WalletEntry {
	t.Helper()
	i := slices.IndexFunc(w.Entries, func(e domain.WalletEntry) bool { return e.Reference == ref })
	require.GreaterOrEqual(t, i, 0, "no entry %s in %+v", ref, w.Entries)
	return w.Entries[i]
}

// A top-up paid by a customer whose metadata names another user is held,
// with the reason and the users the links name, until the customer's
// metadata names the credited user; then it is credited. The same in
// every delivery order.
func TestTopUpOfAnotherUsersCustomerIsHeld(t *testing.T) {
	h := newHistory(t)
	h.clerkProfile("user.created", "user_a", "")
	h.clerkProfile("user.created", "user_b", "")
	h.stripeCustomer("customer.created", "cus_b", "user_b")
	h.tick(time.Second)
	h.topUp(1, "cus_b", "user_a", 100)
	key := WalletKey("user_a")

	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		w := record[domain.WalletRecord](t, fold(t, DefaultOptions(), order), key)
		assert.Equal(t, int64(40), w.Available, "the signup bonus only")
		assert.Equal(t, int64(100), w.Pending, "the top-up is held")
		e := entry(t, w, "top_up:pi_1")
		assert.True(t, e.Held)
		assert.Equal(t, domain.HeldIdentityMismatch, e.HeldReason)
		assert.Equal(t, "cus_b", e.CustomerID)
		assert.Equal(t, []string{"user_b"}, e.CustomerUsers)
		other := record[domain.WalletRecord](t, fold(t, DefaultOptions(), order), WalletKey("user_b"))
		assert.Equal(t, int64(40), other.Available, "the customer's own user is not credited either")
	}

	// The links prove the session right: the customer's metadata now
	// names user_a.
	h.tick(time.Hour)
	h.stripeCustomer("customer.updated", "cus_b", "user_a")
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		w := record[domain.WalletRecord](t, fold(t, DefaultOptions(), order), key)
		assert.Equal(t, int64(140), w.Available, "released")
		assert.Equal(t, int64(0), w.Pending)
		e := entry(t, w, "top_up:pi_1")
		assert.False(t, e.Held)
		assert.Empty(t, e.HeldReason)
		assert.Contains(t, w.EventIDs, h.events[len(h.events)-1].EventID, "the wallet names the event that released it")
	}
}

// A Clerk user whose external_id names the paying customer is a link
// too: another user's top-up paid by that customer is held, and released
// when the external_id moves to another customer.
func TestClerkExternalIDLinksACustomer(t *testing.T) {
	h := newHistory(t)
	h.clerkProfile("user.created", "user_a", "")
	h.clerkProfile("user.created", "user_b", "cus_shared")
	h.tick(time.Second)
	h.topUp(1, "cus_shared", "user_a", 30)
	w := record[domain.WalletRecord](t, fold(t, DefaultOptions(), reversed(h.events)), WalletKey("user_a"))
	assert.Equal(t, int64(30), w.Pending)
	assert.Equal(t, []string{"user_b"}, entry(t, w, "top_up:pi_1").CustomerUsers)

	h.tick(time.Second)
	h.clerkProfile("user.updated", "user_b", "cus_own")
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		w = record[domain.WalletRecord](t, fold(t, DefaultOptions(), order), WalletKey("user_a"))
		assert.Equal(t, int64(70), w.Available, "the only link left names nobody else")
	}

	// A Clerk user naming the customer as its own external_id confirms
	// its own top-ups; a non-Stripe external_id is no link.
	h.tick(time.Second)
	h.clerkProfile("user.updated", "user_a", "cus_shared")
	h.clerkProfile("user.updated", "user_b", "app_42")
	w = record[domain.WalletRecord](t, fold(t, DefaultOptions(), reversed(h.events)), WalletKey("user_a"))
	assert.Equal(t, int64(70), w.Available)
}

// Links that contradict each other (the metadata names the credited user,
// a Clerk external_id another) hold the credit: billfold never guesses.
// It stays held while a link names another user, whatever else confirms.
func TestContradictingLinksHoldTheCredit(t *testing.T) {
	h := newHistory(t)
	h.clerkProfile("user.created", "user_a", "")
	h.stripeCustomer("customer.created", "cus_a", "user_a")
	h.clerkProfile("user.created", "user_b", "cus_a")
	h.topUp(1, "cus_a", "user_a", 10)
	h.tick(time.Hour)
	h.stripeCustomer("customer.updated", "cus_a", "user_a")
	w := record[domain.WalletRecord](t, fold(t, DefaultOptions(), h.events), WalletKey("user_a"))
	e := entry(t, w, "top_up:pi_1")
	assert.Equal(t, domain.HeldIdentityMismatch, e.HeldReason)
	assert.Equal(t, []string{"user_a", "user_b"}, e.CustomerUsers)
	assert.Equal(t, int64(10), w.Pending)
}

// Nothing to check against is no mismatch: a guest checkout, a customer
// billfold has not seen, a customer without user_id.
func TestTopUpWithoutLinksIsCredited(t *testing.T) {
	h := newHistory(t)
	h.clerkProfile("user.created", "user_a", "")
	h.topUp(1, "", "user_a", 1)
	h.topUp(2, "cus_unseen", "user_a", 2)
	h.stripeCustomer("customer.created", "cus_plain", "")
	h.topUp(3, "cus_plain", "user_a", 4)
	w := record[domain.WalletRecord](t, fold(t, DefaultOptions(), reversed(h.events)), WalletKey("user_a"))
	assert.Equal(t, int64(47), w.Available)
	assert.Equal(t, int64(0), w.Pending)
}

// identityModel is the expected outcome of an identity history, computed
// from the events directly: each link is the latest event's (by provider
// time, then the documented rank and event id).
type identityModel struct {
	stripe  map[string]modelLink // customer -> its latest customer event
	clerk   map[string]modelLink // user -> its latest profile event
	known   map[string]bool
	topUps  []modelTopUp
	credits map[string]int64
}

type modelLink struct {
	at    time.Time
	rank  int
	id    string
	value string
}

func (l modelLink) before(o modelLink) bool {
	if !l.at.Equal(o.at) {
		return l.at.Before(o.at)
	}
	if l.rank != o.rank {
		return l.rank < o.rank
	}
	return l.id < o.id
}

type modelTopUp struct {
	pi, customer, user string
	credits            int64
}

func (m *identityModel) offer(set map[string]modelLink, key string, l modelLink) {
	if old, ok := set[key]; !ok || old.before(l) {
		set[key] = l
	}
}

// held is what the model says of a top-up: held for a mismatch, and the
// users the links name.
func (m *identityModel) held(t modelTopUp) bool {
	if t.customer == "" {
		return false
	}
	if l, ok := m.stripe[t.customer]; ok && l.value != "" && l.value != t.user {
		return true
	}
	for user, l := range m.clerk {
		if l.value == t.customer && user != t.user {
			return true
		}
	}
	return false
}

// genIdentityHistory draws users with Clerk profiles (external_id unset,
// a Stripe customer, or an application id, changing over time), Stripe
// customers whose metadata names a user or none (changing too), and
// top-ups paid by any customer, or none, crediting any user.
func genIdentityHistory(t *rapid.T) ([]*domain.Envelope, *identityModel) {
	h := newHistory(t)
	m := &identityModel{stripe: map[string]modelLink{}, clerk: map[string]modelLink{}, known: map[string]bool{}, credits: map[string]int64{}}
	users := []string{"user_0", "user_1", "user_2"}
	customers := []string{"cus_0", "cus_1", "cus_2"}
	ext := rapid.SampledFrom(append([]string{"", "", "app_7"}, customers...))
	named := rapid.SampledFrom(append([]string{""}, users...))
	for i := range rapid.IntRange(1, 14).Draw(t, "events") {
		h.tick(rapid.SampledFrom([]time.Duration{0, 0, time.Second}).Draw(t, "tick"))
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 0:
			user := rapid.SampledFrom(users).Draw(t, "user")
			typ := rapid.SampledFrom([]string{"user.created", "user.updated"}).Draw(t, "clerk")
			v := ext.Draw(t, "ext")
			ev := h.clerkProfile(typ, user, v)
			m.known[user] = m.known[user] || typ == "user.created"
			if typ == "user.created" {
				m.credits[user] = 40
			}
			if v == "app_7" {
				v = "" // no Stripe customer: no link
			}
			m.offer(m.clerk, user, modelLink{at: h.now, rank: customerRanks[typ], id: ev.EventID, value: v})
		case 1:
			cus := rapid.SampledFrom(customers).Draw(t, "customer")
			typ := rapid.SampledFrom([]string{"customer.created", "customer.updated"}).Draw(t, "stripe")
			v := named.Draw(t, "named")
			ev := h.stripeCustomer(typ, cus, v)
			m.offer(m.stripe, cus, modelLink{at: h.now, rank: customerRanks[typ], id: ev.EventID, value: v})
		case 2:
			tu := modelTopUp{pi: fmt.Sprintf("pi_%d", i), customer: rapid.SampledFrom(append([]string{""}, customers...)).Draw(t, "payer"),
				user: rapid.SampledFrom(users).Draw(t, "credited"), credits: rapid.Int64Range(1, 50).Draw(t, "credits")}
			h.topUp(i, tu.customer, tu.user, tu.credits)
			m.topUps = append(m.topUps, tu)
		}
	}
	return h.events, m
}

// The identity check converges: folding an identity history in any order,
// with any duplicates, gives the wallets the independent model expects
// (each top-up held for a mismatch exactly when the latest links of its
// customer name another user) and byte-identical stores.
func TestIdentityCheckAnyOrderMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		events, m := genIdentityHistory(t)
		want := fold(t, DefaultOptions(), events)
		got := fold(t, DefaultOptions(), shuffleWithDuplicates(t, events))
		require.Equal(t, len(want), len(got), "same entries")
		for k, v := range want {
			require.JSONEq(t, string(v), string(got[k]), "entry %s", k)
		}
		available, pending := map[string]int64{}, map[string]int64{}
		for u, c := range m.credits {
			available[u] += c
		}
		for _, tu := range m.topUps {
			w := record[domain.WalletRecord](t, got, WalletKey(tu.user))
			i := slices.IndexFunc(w.Entries, func(e domain.WalletEntry) bool { return e.Reference == "top_up:"+tu.pi })
			require.GreaterOrEqual(t, i, 0, "top-up %s in %s's wallet", tu.pi, tu.user)
			e := w.Entries[i]
			switch {
			case m.held(tu):
				require.Equal(t, domain.HeldIdentityMismatch, e.HeldReason, "top-up %+v", tu)
				pending[tu.user] += tu.credits
			case !m.known[tu.user]:
				require.Equal(t, domain.HeldUserUnknown, e.HeldReason, "top-up %+v", tu)
				pending[tu.user] += tu.credits
			default:
				require.False(t, e.Held, "top-up %+v: %+v", tu, e)
				available[tu.user] += tu.credits
			}
		}
		for _, u := range []string{"user_0", "user_1", "user_2"} {
			if _, ok := got[WalletKey(u)]; !ok {
				require.Zero(t, available[u]+pending[u], "%s has no wallet", u)
				continue
			}
			w := record[domain.WalletRecord](t, got, WalletKey(u))
			require.Equal(t, available[u], w.Available, "%s available", u)
			require.Equal(t, pending[u], w.Pending, "%s pending", u)
		}
	})
}
