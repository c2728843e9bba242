package reducers

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify/btfixtures"
	"github.com/billfold/billfold/ingest/braintree"
)

// braintreeCharge adds a Braintree subscription_charged_successfully of
// subscription sub whose one transaction carries customer (the XML inside
// <transaction>).
func (h *history) braintreeCharge(sub, customer string) {
	xml := fmt.Sprintf(`<notification><timestamp type="datetime">%s</timestamp><kind>subscription_charged_successfully</kind><subject><subscription>
<id>%s</id><status>Active</status><plan-id>gold</plan-id><transactions type="array"><transaction><id>tx_%d</id><status>settled</status><amount>9.00</amount>
%s</transaction></transactions></subscription></subject></notification>`, h.now.Format(time.RFC3339), sub, h.n, customer)
	body := braintree.Sign(braintree.KeyPair{PublicKey: "pub", PrivateKey: "priv"}, braintree.EncodePayload([]byte(xml)))
	h.n++
	h.events = append(h.events, &domain.Envelope{Provider: domain.Braintree, Endpoint: "braintree",
		EventID: fmt.Sprintf("subscription_charged_successfully:%s:%s", sub, h.now.Format(time.RFC3339)), EventType: "subscription_charged_successfully", Created: h.now, Body: body})
}

// The customer the library's subscription histories charge (bt_cus_1, in
// paid/* and canceled/*) becomes a Braintree customer record made of
// exactly the notifications whose transactions name it, in every order.
// The library's transactions carry no email and no custom fields, so it
// has no links.
func TestBraintreeCustomerFromLibraryHistories(t *testing.T) {
	set := btfixtures.Load()
	var want []string
	for _, name := range []string{"paid/charged_successfully", "paid/charged_unsuccessfully", "paid/went_past_due", "paid/charged_successfully_retry",
		"canceled/went_active", "canceled/charged_unsuccessfully", "canceled/canceled"} {
		n := set.Named(name)
		want = append(want, n.Kind+":"+n.ID+":"+n.At)
	}
	slices.Sort(want)
	events := libraryEnvelopes(t)
	for _, order := range [][]*domain.Envelope{events, reversed(events)} {
		c := record[domain.CustomerRecord](t, fold(t, DefaultOptions(), order), CustomerKey("braintree", "bt_cus_1"))
		assert.Equal(t, domain.Braintree, c.Provider)
		assert.Equal(t, "bt_cus_1", c.ID)
		assert.Empty(t, c.Email)
		assert.Empty(t, c.Links)
		got := slices.Clone(c.EventIDs)
		slices.Sort(got)
		assert.Equal(t, want, got)
	}
}

// A Braintree customer links like a Stripe customer: its custom fields by
// the configured link keys, and its email (lower case). The details are
// the latest notification's, in every delivery order.
func TestBraintreeCustomerLinksByCustomFieldsAndEmail(t *testing.T) {
	h := newHistory(t)
	h.braintreeCharge("bt_sub_9", `<customer><id>bt_cus_9</id><email>Ana@Example.COM</email><first-name>Ana</first-name><last-name>Silva</last-name>
<custom-fields><user-id>user_ana</user-id><plan-tier>pro</plan-tier></custom-fields></customer>`)
	h.tick(time.Hour)
	h.braintreeCharge("bt_sub_10", `<customer><id>bt_cus_9</id><email>Ana@Example.COM</email><first-name>Ana</first-name><last-name>Silva</last-name></customer>
<custom-fields><user_id>user_ana</user_id><deal-id>deal_7</deal-id></custom-fields>`)
	key := CustomerKey("braintree", "bt_cus_9")
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		c := record[domain.CustomerRecord](t, fold(t, DefaultOptions(), order), key)
		assert.Equal(t, "Ana@Example.COM", c.Email)
		assert.Equal(t, "Ana Silva", c.Name)
		assert.Equal(t, map[string]string{"user_id": "user_ana", "deal_id": "deal_7"}, c.Metadata, "the latest notification's custom fields")
		assert.Equal(t, []domain.Link{{Kind: "deal_id", Value: "deal_7"}, {Kind: "email", Value: "ana@example.com"}, {Kind: "user_id", Value: "user_ana"}}, c.Links)
	}

	// A later transaction without email or custom fields leaves no link.
	h.tick(time.Hour)
	h.braintreeCharge("bt_sub_9", `<customer-details><id>bt_cus_9</id></customer-details>`)
	c := record[domain.CustomerRecord](t, fold(t, DefaultOptions(), reversed(h.events)), key)
	assert.Empty(t, c.Links)
	require.Equal(t, 3, c.Version)
}
