package reducers

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/braintree"
)

// braintreeNotification adds a signed Braintree subscription notification.
func (h *history) braintree(kind, status string, trial bool, charged bool) {
	tx := ""
	if charged {
		tx = `<transaction><id>tx_1</id><status>settled</status><amount>49.99</amount><customer><id>bt_cus_1</id></customer></transaction>`
	}
	xml := fmt.Sprintf(`<notification><timestamp type="datetime">%s</timestamp><kind>%s</kind><subject><subscription>
<id>bt_sub_1</id><status>%s</status><plan-id>gold</plan-id><price>49.99</price>
<billing-period-end-date type="date">2026-02-01</billing-period-end-date><trial-period type="boolean">%t</trial-period>
<transactions type="array">%s</transactions></subscription></subject></notification>`, h.now.Format(time.RFC3339), kind, status, trial, tx)
	body := braintree.Sign(braintree.KeyPair{PublicKey: "pub", PrivateKey: "priv"}, braintree.EncodePayload([]byte(xml)))
	h.n++
	h.events = append(h.events, &domain.Envelope{Provider: domain.Braintree, Endpoint: "braintree",
		EventID: fmt.Sprintf("%s:bt_sub_1:%s", kind, h.now.Format(time.RFC3339)), EventType: kind, Created: h.now, Body: body})
}

func TestBraintreeSubscriptions(t *testing.T) {
	h := newHistory(t)
	h.braintree("subscription_went_active", "Active", true, false)
	h.tick(14 * 24 * time.Hour)
	h.braintree("subscription_charged_successfully", "Active", true, true)
	h.tick(30 * 24 * time.Hour)
	h.braintree("subscription_charged_unsuccessfully", "Past Due", false, true)
	h.braintree("subscription_went_past_due", "Past Due", false, true)
	key := SubscriptionKey("braintree", "bt_sub_1")
	for _, order := range [][]*domain.Envelope{h.events, reversed(h.events)} {
		s := record[domain.SubscriptionRecord](t, fold(t, DefaultOptions(), order), key)
		assert.Equal(t, domain.StatePastDue, s.State)
		assert.Equal(t, "Past Due", s.ProviderStatus)
		assert.Equal(t, "gold", s.PlanID)
		assert.Equal(t, "bt_cus_1", s.CustomerID)
		assert.Equal(t, "failed", s.LastPayment.Outcome)
		assert.Equal(t, "2026-02-01", s.CurrentPeriodEnd.Format(time.DateOnly))
		var path []domain.LifecycleState
		for _, tr := range s.Transitions {
			path = append(path, tr.To)
		}
		assert.Equal(t, []domain.LifecycleState{domain.StateTrialing, domain.StateActive, domain.StatePastDue}, path)
	}
	h.tick(time.Hour)
	h.braintree("subscription_canceled", "Canceled", false, true)
	assert.Equal(t, domain.StateEnded, record[domain.SubscriptionRecord](t, fold(t, DefaultOptions(), reversed(h.events)), key).State)
}
