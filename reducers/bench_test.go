package reducers_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/reducers"
)

// records is an in-memory Lookup, as a rebuild folds into.
type records map[string][]byte

func (m records) Get(key string) ([]byte, error) { return m[key], nil }

var benchT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// projection is the named projection with the documented default options.
func projection(name string) reducers.Projection {
	for _, p := range reducers.All(reducers.DefaultOptions()) {
		if p.Name() == name {
			return p
		}
	}
	panic("no projection " + name)
}

// stripeEnv is a journaled Stripe event built from the provider samples.
func stripeEnv(s samples.Stripe) *domain.Envelope {
	s.EventID = "evt_bench_" + s.Type
	return &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type,
		Created: s.Created, Verification: domain.VerifiedSignature, Body: s.Event()}
}

// clerkEnv is a journaled Clerk user event.
func clerkEnv(eventType, user string, at time.Time) *domain.Envelope {
	body := samples.ClerkUser(eventType, user, at)
	signed, _ := samples.Sign(domain.Clerk, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body, at)
	return &domain.Envelope{Provider: domain.Clerk, Endpoint: "clerk", EventID: signed.Headers["svix-id"], EventType: eventType,
		Created: at, Verification: domain.VerifiedSignature, Body: body}
}

// benchApply measures p.Apply of ev on a store that already holds the
// fold of history: the steady state of a live projector, where the record
// exists and the event is new. The store is not changed between
// iterations, so each one does the same work.
func benchApply(b *testing.B, p reducers.Projection, history []*domain.Envelope, ev *domain.Envelope) {
	m := records{}
	for _, h := range history {
		if !p.Handles(h.Provider, h.EventType) {
			continue
		}
		changes, err := p.Apply(h, m)
		if err != nil {
			b.Fatal(err)
		}
		maps.Copy(m, changes)
	}
	if !p.Handles(ev.Provider, ev.EventType) {
		b.Fatalf("%s does not handle %s", p.Name(), ev.EventType)
	}
	b.SetBytes(int64(len(ev.Body)))
	b.ReportAllocs()
	for b.Loop() {
		changes, err := p.Apply(ev, m)
		if err != nil {
			b.Fatal(err)
		}
		if len(changes) == 0 {
			b.Fatal("no change")
		}
	}
}

func BenchmarkCustomersApply(b *testing.B) {
	benchApply(b, projection(domain.ProjectionCustomers), []*domain.Envelope{
		stripeEnv(samples.Stripe{Type: "customer.created", Created: benchT0}),
		clerkEnv("user.created", "user_2abcSample", benchT0),
	}, stripeEnv(samples.Stripe{Type: "customer.updated", Created: benchT0.Add(time.Hour)}))
}

func BenchmarkSubscriptionsApply(b *testing.B) {
	benchApply(b, projection(domain.ProjectionSubscriptions), []*domain.Envelope{
		stripeEnv(samples.Stripe{Type: "customer.subscription.created", Status: "trialing", Created: benchT0}),
		stripeEnv(samples.Stripe{Type: "invoice.paid", Created: benchT0.Add(time.Minute)}),
	}, stripeEnv(samples.Stripe{Type: "customer.subscription.updated", Status: "active", Created: benchT0.Add(14 * 24 * time.Hour),
		Previous: map[string]any{"status": "trialing"}}))
}

func BenchmarkOrdersApply(b *testing.B) {
	benchApply(b, projection(domain.ProjectionOrders), []*domain.Envelope{
		stripeEnv(samples.Stripe{Type: "payment_intent.succeeded", Created: benchT0}),
	}, stripeEnv(samples.Stripe{Type: "checkout.session.completed", Created: benchT0}))
}

func BenchmarkWalletsApply(b *testing.B) {
	benchApply(b, projection(domain.ProjectionWallets), []*domain.Envelope{
		clerkEnv("user.created", "user_2abcSample", benchT0),
	}, stripeEnv(samples.Stripe{Type: "checkout.session.completed", Created: benchT0.Add(time.Hour)}))
}

// BenchmarkWalletsApplyLinkedTopUp is a top-up whose paying customer's
// links are known (its metadata names the credited user): the identity
// check reads and writes the customer's identity entry beside the top-up
// and the wallet.
func BenchmarkWalletsApplyLinkedTopUp(b *testing.B) {
	benchApply(b, projection(domain.ProjectionWallets), []*domain.Envelope{
		clerkEnv("user.created", "user_2abcSample", benchT0),
		stripeEnv(samples.Stripe{Type: "customer.created", Created: benchT0}),
	}, stripeEnv(samples.Stripe{Type: "checkout.session.completed", Created: benchT0.Add(time.Hour)}))
}

// BenchmarkWalletsApplyCustomerUpdate is a change of a customer's links
// after it paid a top-up: the identity entry and the credited wallet are
// written again.
func BenchmarkWalletsApplyCustomerUpdate(b *testing.B) {
	benchApply(b, projection(domain.ProjectionWallets), []*domain.Envelope{
		clerkEnv("user.created", "user_2abcSample", benchT0),
		stripeEnv(samples.Stripe{Type: "customer.created", Created: benchT0}),
		stripeEnv(samples.Stripe{Type: "checkout.session.completed", Created: benchT0.Add(time.Hour)}),
	}, stripeEnv(samples.Stripe{Type: "customer.updated", Created: benchT0.Add(2 * time.Hour)}))
}

// BenchmarkCustomersApplyLongLived is an update of a customer that has
// seen 1,000 events an hour apart: what a record remembers of its events
// is decoded and encoded with it on every fold.
func BenchmarkCustomersApplyLongLived(b *testing.B) {
	var history []*domain.Envelope
	for i := range 1000 {
		history = append(history, stripeEnv(samples.Stripe{Type: "customer.updated", EventID: fmt.Sprintf("evt_long_%04d", i), Created: benchT0.Add(time.Duration(i) * time.Hour)}))
	}
	benchApply(b, projection(domain.ProjectionCustomers), history, stripeEnv(samples.Stripe{Type: "customer.updated", Created: benchT0.Add(2000 * time.Hour)}))
}

// pactaEnv is a journaled PactaPay payment event built from the provider
// samples.
func pactaEnv(eventType, payment string, amount int64, at time.Time) *domain.Envelope {
	body := samples.PactaPayPayment(eventType, payment, amount, at)
	return &domain.Envelope{Provider: domain.PactaPay, Endpoint: "pactapay", EventID: "ppevt_bench_" + eventType, EventType: eventType,
		Created: at, Verification: domain.VerifiedSignature, Body: body, ObjectKind: "payment", ObjectID: payment}
}

// BenchmarkOrdersApplyPactaPay is a PactaPay refund of a completed
// payment: the order exists and the refund is new.
func BenchmarkOrdersApplyPactaPay(b *testing.B) {
	benchApply(b, projection(domain.ProjectionOrders), []*domain.Envelope{
		pactaEnv("payment.completed", "pay_bench_1", 4200, benchT0),
	}, pactaEnv("payment.refunded", "pay_bench_1", 4200, benchT0.Add(time.Hour)))
}
