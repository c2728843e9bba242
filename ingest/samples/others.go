package samples

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// clerkTypes are the Clerk user events the reducers fold.
var clerkTypes = []string{"user.created", "user.updated", "user.deleted"}

// ClerkUser returns a Clerk (Svix) user event of eventType for user at t.
func ClerkUser(eventType, user string, t time.Time) []byte {
	data := map[string]any{"id": user, "object": "user"}
	if eventType == "user.deleted" {
		data["deleted"] = true
	} else {
		data["first_name"], data["last_name"] = "Ana", "Silva"
		data["primary_email_address_id"] = "idn_2abcSample"
		data["email_addresses"] = []any{map[string]any{"id": "idn_2abcSample", "object": "email_address", "email_address": "ana.silva@example.com"}}
		data["created_at"], data["updated_at"] = t.Add(-time.Hour).UnixMilli(), t.UnixMilli()
		data["public_metadata"], data["private_metadata"] = map[string]any{}, map[string]any{}
	}
	return mustJSON(map[string]any{"type": eventType, "object": "event", "timestamp": t.UnixMilli(), "data": data})
}

// pactaPayTypes are the PactaPay payment events the reducers fold.
var pactaPayTypes = []string{"payment.completed", "payment.failed", "payment.refunded"}

// PactaPayPayment returns a PactaPay payment event of eventType at t.
func PactaPayPayment(eventType, paymentID string, amount int64, t time.Time) []byte {
	return mustJSON(map[string]any{
		"id": "ppevt_" + idSuffix(eventType+paymentID, t), "event": eventType, "payment_id": paymentID,
		"amount": amount, "currency": "usd", "timestamp": t.Unix(),
		"metadata": map[string]any{"deal_id": "deal_sample_42"},
	})
}

// braintreeKinds are the Braintree subscription notification kinds the
// reducers fold, with the subject status each reports.
var braintreeKinds = map[string]string{
	"subscription_went_active":            "Active",
	"subscription_charged_successfully":   "Active",
	"subscription_charged_unsuccessfully": "Past Due",
	"subscription_went_past_due":          "Past Due",
	"subscription_trial_ended":            "Active",
	"subscription_canceled":               "Canceled",
	"subscription_expired":                "Expired",
	"subscription_billing_skipped":        "Active",
}

// BraintreeSubscription returns the XML of a Braintree subscription
// notification of kind for subscription at t (before base64 and signing).
func BraintreeSubscription(kind, subscription string, t time.Time) []byte {
	tx := ""
	if kind == "subscription_charged_successfully" || kind == "subscription_charged_unsuccessfully" {
		status := map[bool]string{true: "settled", false: "processor_declined"}[kind == "subscription_charged_successfully"]
		tx = fmt.Sprintf(`<transaction><id>tx_%s</id><status>%s</status><amount>29.00</amount><currency-iso-code>USD</currency-iso-code>`+
			`<customer><id>bt_cus_sample</id></customer></transaction>`, idSuffix(kind, t), status)
	}
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<notification>
  <timestamp type="datetime">%s</timestamp>
  <kind>%s</kind>
  <subject>
    <subscription>
      <id>%s</id>
      <status>%s</status>
      <plan-id>gold_monthly</plan-id>
      <price>29.00</price>
      <billing-period-end-date type="date">%s</billing-period-end-date>
      <trial-period type="boolean">false</trial-period>
      <transactions type="array">%s</transactions>
    </subscription>
  </subject>
</notification>
`, t.UTC().Format(time.RFC3339), kind, subscription, braintreeKinds[kind], t.AddDate(0, 1, 0).Format(time.DateOnly), tx)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain maps only
	}
	return b
}

// svixID derives a stable message id from the body, so signing the same
// body twice gives the same id (and billfold answers the second "duplicate").
func svixID(body []byte) string {
	sum := sha256.Sum256(body)
	return "msg_" + hex.EncodeToString(sum[:12])
}
