package query

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

// Braintree customers join the identities billfold already links: one by
// its email (the Clerk user whose primary email it is, whatever the case),
// one by its custom field user_id (the Clerk user, and the Stripe customer
// whose metadata names that user). A person's subscriptions then span the
// providers, folded from the journal by the real engine.
func TestBraintreeCustomersJoinLinkedIdentities(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	appendEvent := func(p domain.Provider, endpoint, id, typ string, body []byte) {
		at = at.Add(time.Second)
		_, err := j.Append(ctx, &domain.Envelope{Provider: p, Endpoint: endpoint, EventID: id, EventType: typ, Created: at,
			Received: time.Now(), Verification: domain.VerifiedSignature, Body: body})
		require.NoError(t, err)
	}
	clerkUser := func(id, email string) {
		body, err := json.Marshal(map[string]any{"type": "user.created", "object": "event", "timestamp": at.UnixMilli(), "data": map[string]any{
			"id": id, "object": "user", "primary_email_address_id": "idn_" + id,
			"email_addresses": []any{map[string]any{"id": "idn_" + id, "email_address": email}}}})
		require.NoError(t, err)
		appendEvent(domain.Clerk, "clerk", "msg_"+id, "user.created", body)
	}
	braintreeCharge := func(sub, customer string) {
		xml := fmt.Sprintf(`<notification><timestamp type="datetime">%s</timestamp><kind>subscription_charged_successfully</kind><subject><subscription>
<id>%s</id><status>Active</status><transactions type="array"><transaction><id>tx_%s</id><amount>9.00</amount>%s</transaction></transactions>
</subscription></subject></notification>`, at.Add(time.Second).Format(time.RFC3339), sub, sub, customer)
		body := braintree.Sign(braintree.KeyPair{PublicKey: "pub", PrivateKey: "priv"}, braintree.EncodePayload([]byte(xml)))
		appendEvent(domain.Braintree, "braintree", "subscription_charged_successfully:"+sub, "subscription_charged_successfully", body)
	}
	stripe := func(s samples.Stripe) {
		appendEvent(domain.Stripe, "stripe", s.EventID, s.Type, s.Event())
	}

	clerkUser("user_ana", "ana@example.com")
	clerkUser("user_ben", "ben@example.com")
	braintreeCharge("bt_sub_ana", `<customer><id>bt_cus_ana</id><email>ANA@example.com</email></customer>`)
	braintreeCharge("bt_sub_ben", `<customer><id>bt_cus_ben</id></customer><custom-fields><user-id>user_ben</user-id></custom-fields>`)
	braintreeCharge("bt_sub_zoe", `<customer><id>bt_cus_zoe</id><email>zoe@example.com</email></customer>`)
	stripe(samples.Stripe{EventID: "evt_cus_ben", Type: "customer.created", CustomerID: "cus_ben", Object: map[string]any{"email": "b@example.org", "metadata": map[string]any{"user_id": "user_ben"}}})
	stripe(samples.Stripe{EventID: "evt_sub_ben", Type: "customer.subscription.created", CustomerID: "cus_ben", SubscriptionID: "sub_ben", Status: "active"})

	projs := reducers.All(reducers.DefaultOptions())
	engine, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1})
	require.NoError(t, err)
	q := New(engine, projs, "")
	done := make(chan struct{}, 2)
	go func() { engine.Run(ctx); done <- struct{}{} }()
	go func() { q.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	subs := func(provider, id string) []string {
		p, err := q.CustomerSubscriptions(ctx, provider, id, 0, "")
		if err != nil {
			return nil
		}
		var out []string
		for _, raw := range p.Items {
			var r struct{ Provider, ID string }
			require.NoError(t, json.Unmarshal(raw, &r))
			out = append(out, r.Provider+"/"+r.ID)
		}
		return out
	}
	require.Eventually(t, func() bool { return len(subs("clerk", "user_ben")) == 2 }, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, []string{"braintree/bt_sub_ana"}, subs("clerk", "user_ana"), "linked by email")
	assert.Equal(t, []string{"braintree/bt_sub_ana"}, subs("braintree", "bt_cus_ana"))
	want := []string{"braintree/bt_sub_ben", "stripe/sub_ben"}
	for _, who := range [][2]string{{"clerk", "user_ben"}, {"braintree", "bt_cus_ben"}, {"stripe", "cus_ben"}} {
		assert.Equal(t, want, subs(who[0], who[1]), "linked by custom field user_id: %v", who)
	}
	assert.Equal(t, []string{"braintree/bt_sub_zoe"}, subs("braintree", "bt_cus_zoe"), "an email no Clerk user has links nobody")
}
