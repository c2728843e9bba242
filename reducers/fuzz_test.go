package reducers_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/reducers"
)

// fuzzProviders are the providers whose verified bodies the reducers fold;
// the fuzz input picks one by index.
var fuzzProviders = []domain.Provider{domain.Stripe, domain.Clerk, domain.PactaPay, domain.Braintree, domain.Standard, domain.HMAC}

// fuzzStore is a Lookup over a map that never fails, so every error a
// reducer returns is its own.
type fuzzStore map[string][]byte

func (s fuzzStore) Get(key string) ([]byte, error) { return s[key], nil }

// FuzzReducers feeds arbitrary verified bodies, for every provider and
// event type (ids and types as intake admits them), to every projection's
// reducer, on top of a store that
// already holds records (a paid top-up and its wallet), as a journal event
// would reach them after the signature check. Whatever the body:
//
//   - no reducer panics;
//   - a reducer that refuses the event says why with a *domain.Error whose
//     code is a BILLFOLD-REDUCER-* code (the permanent kind: the event goes
//     to the dead letters; any other error would be retried for ever);
//   - what it stores is a JSON record;
//   - applying the same event again changes nothing;
//   - no wallet ends with a negative balance.
//
// The seeds are the sample events of ingest/samples, one per provider and
// type, and hostile variants of the top-up (negative, huge and non-numeric
// credits).
func FuzzReducers(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range fuzzProviders {
		for _, typ := range samples.Types()[p] {
			body, err := samples.Sample(p, typ, now)
			if err != nil {
				f.Fatal(err)
			}
			if p == domain.Braintree { // the journal holds the form Braintree posts
				s, err := samples.Sign(p, "fuzz_public:fuzz_private", body, now)
				if err != nil {
					f.Fatal(err)
				}
				body = s.Body
			}
			f.Add(uint8(i), typ, "evt_fuzz_seed", body)
		}
	}
	for _, credits := range []string{"-100", "0", "9223372036854775807", "-9223372036854775808", "1e9", "ten", ""} {
		body := samples.Stripe{EventID: "evt_fuzz_credits", Type: "checkout.session.completed", Created: now, CustomerID: "cus_fuzz",
			Object: map[string]any{"id": "cs_fuzz_2", "payment_intent": "pi_fuzz_2", "metadata": map[string]any{"user_id": "user_fuzz", "credits": credits}}}.Event()
		f.Add(uint8(0), "checkout.session.completed", "evt_fuzz_credits", body)
	}
	refund := samples.Stripe{EventID: "evt_fuzz_refund", Type: "charge.refunded", Created: now.Add(time.Hour), CustomerID: "cus_fuzz",
		Object: map[string]any{"payment_intent": "pi_fuzz_1", "amount": 1000, "amount_refunded": 1000}}.Event()
	f.Add(uint8(0), "charge.refunded", "evt_fuzz_refund", refund)

	projs := reducers.All(reducers.DefaultOptions())
	f.Fuzz(func(t *testing.T, provider uint8, eventType, eventID string, body []byte) {
		p := fuzzProviders[int(provider)%len(fuzzProviders)]
		// The body is anything; the id and type are what intake lets
		// through to the journal.
		if domain.CheckEventID("id", eventID) != nil || domain.CheckEventType("type", eventType) != nil {
			return
		}
		store := fuzzStore{}
		// An earlier paid top-up of 100 credits for user_fuzz, folded first.
		topUp := samples.Stripe{EventID: "evt_fuzz_topup", Type: "checkout.session.completed", Created: now.Add(-time.Hour), CustomerID: "cus_fuzz",
			Object: map[string]any{"id": "cs_fuzz_1", "payment_intent": "pi_fuzz_1", "amount_total": 1000,
				"metadata": map[string]any{"user_id": "user_fuzz", "credits": "100"}}}
		apply(t, projs, store, envelope(domain.Stripe, topUp.Type, topUp.EventID, now.Add(-time.Hour), topUp.Event()), true)
		if w := wallets(t, store)[reducers.WalletKey("user_fuzz")]; w.Balance != 100 {
			t.Fatalf("the seed top-up credits 100: wallet %+v", w)
		}

		ev := envelope(p, eventType, eventID, now, body)
		apply(t, projs, store, ev, false)
		again := apply(t, projs, store, ev, false)
		for name, changed := range again {
			if len(changed) > 0 {
				t.Errorf("%s: applying %s %q again changed %d records", name, p, eventType, len(changed))
			}
		}
		for key, w := range wallets(t, store) {
			if w.Balance < 0 || w.Available < 0 {
				t.Errorf("wallet %s: balance %d, available %d after %s %q", key, w.Balance, w.Available, p, eventType)
			}
		}
	})
}

// wallets decodes every wallet record in store, by key.
func wallets(t *testing.T, store fuzzStore) map[string]domain.WalletRecord {
	t.Helper()
	sample := reducers.WalletKey("user_fuzz")
	prefix := sample[:strings.Index(sample, ".")+1] // the wallet kind's part of every wallet key
	out := map[string]domain.WalletRecord{}
	for key, raw := range store {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		var stored struct {
			Record domain.WalletRecord `json:"record"`
		}
		if err := json.Unmarshal(raw, &stored); err != nil {
			t.Fatalf("wallet %s is not a stored record: %v", key, err)
		}
		out[key] = stored.Record
	}
	return out
}

// envelope is a journal event of provider as intake would hand it on: a
// verified body with its id, type and provider time.
func envelope(p domain.Provider, eventType, eventID string, created time.Time, body []byte) *domain.Envelope {
	return &domain.Envelope{Provider: p, Endpoint: string(p), EventID: eventID, EventType: eventType, Created: created,
		Received: created, Verification: domain.VerifiedSignature, Sequence: 1, Body: body}
}

// apply folds ev with every projection that handles it into store and
// returns each projection's changes; with mustApply a refusal fails the
// test, otherwise it must be a coded reducer error.
func apply(t *testing.T, projs []reducers.Projection, store fuzzStore, ev *domain.Envelope, mustApply bool) map[string]reducers.Changes {
	t.Helper()
	out := map[string]reducers.Changes{}
	for _, p := range projs {
		if !p.Handles(ev.Provider, ev.EventType) {
			continue
		}
		changes, err := p.Apply(ev, store)
		if err != nil {
			var de *domain.Error
			switch {
			case mustApply:
				t.Fatalf("%s refused the seed history's %s: %v", p.Name(), ev.EventType, err)
			case !errors.As(err, &de):
				t.Fatalf("%s: %s %q: an error without a code: %v", p.Name(), ev.Provider, ev.EventType, err)
			case !strings.HasPrefix(string(de.Code), "BILLFOLD-REDUCER-"):
				t.Fatalf("%s: %s %q: code %s is not a reducer's permanent code: %v", p.Name(), ev.Provider, ev.EventType, de.Code, err)
			}
			continue
		}
		for key, raw := range changes {
			if !json.Valid(raw) {
				t.Fatalf("%s stored %s as %q: not JSON", p.Name(), key, raw)
			}
			store[key] = raw
		}
		out[p.Name()] = changes
	}
	return out
}
