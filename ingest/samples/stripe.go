// Package samples builds realistic provider payloads and signs them the way
// each provider does: the sample events of `billfold sign --list-samples`,
// and the workloads of the demo, the benchmark and the end-to-end tests.
//
// It owns sample data only. It must never be used on the intake path.
package samples

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// StripeAPIVersion is the API version sample events claim.
const StripeAPIVersion = "2025-03-31.basil"

// Stripe describes one Stripe event to build. Zero fields get plausible
// values; set the ones a scenario depends on.
type Stripe struct {
	EventID string
	Type    string
	Created time.Time
	// Livemode marks the event live.
	Livemode bool
	// Account makes it a Connect event of that connected account.
	Account string

	CustomerID     string
	SubscriptionID string
	// Status is the object's status (subscription, invoice, session,
	// payment intent).
	Status string
	// Object overrides or adds data.object fields.
	Object map[string]any
	// Previous is data.previous_attributes.
	Previous map[string]any
}

// StripeTypes lists the event types Stripe samples exist for.
func StripeTypes() []string {
	return slices.Sorted(maps.Keys(stripeObjects))
}

// stripeObjects builds data.object for each sample type.
var stripeObjects = map[string]func(s *Stripe) map[string]any{
	"customer.created":                         stripeCustomer,
	"customer.updated":                         stripeCustomer,
	"customer.deleted":                         stripeCustomer,
	"customer.subscription.created":            stripeSubscription,
	"customer.subscription.updated":            stripeSubscription,
	"customer.subscription.deleted":            stripeSubscription,
	"customer.subscription.trial_will_end":     stripeSubscription,
	"customer.subscription.paused":             stripeSubscription,
	"customer.subscription.resumed":            stripeSubscription,
	"invoice.paid":                             stripeInvoice,
	"invoice.payment_succeeded":                stripeInvoice,
	"invoice.payment_failed":                   stripeInvoice,
	"checkout.session.completed":               stripeCheckout,
	"checkout.session.async_payment_succeeded": stripeCheckout,
	"checkout.session.async_payment_failed":    stripeCheckout,
	"checkout.session.expired":                 stripeCheckout,
	"payment_intent.succeeded":                 stripePaymentIntent,
	"payment_intent.payment_failed":            stripePaymentIntent,
	"charge.refunded":                          stripeCharge,
	"refund.created":                           stripeRefund,
	"refund.updated":                           stripeRefund,
}

// Event returns the event's JSON body. An unknown type gets an empty
// object, as a future Stripe type would.
func (s Stripe) Event() []byte {
	if s.Created.IsZero() {
		s.Created = time.Unix(1767225600, 0) // 2026-01-01
	}
	if s.EventID == "" {
		s.EventID = "evt_" + idSuffix(s.Type, s.Created)
	}
	if s.CustomerID == "" {
		s.CustomerID = "cus_Q8wXr3SampleA1"
	}
	if s.SubscriptionID == "" {
		s.SubscriptionID = "sub_1Q8wXrSampleB2"
	}
	obj := map[string]any{}
	if build, ok := stripeObjects[s.Type]; ok {
		obj = build(&s)
	}
	maps.Copy(obj, s.Object)
	data := map[string]any{"object": obj}
	if s.Previous != nil {
		data["previous_attributes"] = s.Previous
	}
	ev := map[string]any{
		"id":               s.EventID,
		"object":           "event",
		"api_version":      StripeAPIVersion,
		"created":          s.Created.Unix(),
		"data":             data,
		"livemode":         s.Livemode,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": "req_" + idSuffix(s.EventID, s.Created), "idempotency_key": "b7e3c9a2-5f1d-4e8a-9c3b-2d6f8a1e4c7b"},
		"type":             s.Type,
	}
	if s.Account != "" {
		ev["account"] = s.Account
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

func idSuffix(seed string, t time.Time) string {
	h := uint64(14695981039346656037)
	for i := 0; i < len(seed); i++ {
		h = (h ^ uint64(seed[i])) * 1099511628211
	}
	return fmt.Sprintf("%x%x", uint32(h), uint32(t.UnixNano()))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

var sampleAddress = map[string]any{
	"city": "Lisbon", "country": "PT", "line1": "Rua Augusta 27", "line2": nil, "postal_code": "1100-048", "state": nil,
}

func stripeCustomer(s *Stripe) map[string]any {
	return map[string]any{
		"id": s.CustomerID, "object": "customer", "address": sampleAddress, "balance": 0,
		"created": s.Created.Add(-24 * time.Hour).Unix(), "currency": "eur", "default_source": nil,
		"delinquent": false, "description": "Sample customer", "discount": nil,
		"email":            "ana.silva@example.com",
		"invoice_prefix":   "A1B2C3D4",
		"invoice_settings": map[string]any{"custom_fields": nil, "default_payment_method": "pm_1Q8wXrSamplePM", "footer": nil, "rendering_options": nil},
		"livemode":         s.Livemode, "metadata": map[string]any{"user_id": "user_2abcSample"},
		"name": "Ana Silva", "next_invoice_sequence": 3, "phone": "+351210000000", "preferred_locales": []any{"pt-PT"},
		"shipping": nil, "tax_exempt": "none", "test_clock": nil,
	}
}

func stripeSubscription(s *Stripe) map[string]any {
	start := s.Created.Add(-15 * 24 * time.Hour).Unix()
	end := s.Created.Add(15 * 24 * time.Hour).Unix()
	status := or(s.Status, "active")
	if s.Type == "customer.subscription.deleted" && s.Status == "" {
		status = "canceled"
	}
	price := map[string]any{
		"id": "price_1Q8wXrPro", "object": "price", "active": true, "billing_scheme": "per_unit", "created": 1704067200,
		"currency": "eur", "livemode": s.Livemode, "lookup_key": "pro_monthly", "metadata": map[string]any{},
		"nickname": "Pro monthly", "product": "prod_Q8wXrPro",
		"recurring":    map[string]any{"aggregate_usage": nil, "interval": "month", "interval_count": 1, "usage_type": "licensed"},
		"tax_behavior": "exclusive", "type": "recurring", "unit_amount": 2900, "unit_amount_decimal": "2900",
	}
	obj := map[string]any{
		"id": s.SubscriptionID, "object": "subscription", "application": nil, "automatic_tax": map[string]any{"enabled": false, "liability": nil},
		"billing_cycle_anchor": start, "billing_thresholds": nil, "cancel_at": nil, "cancel_at_period_end": false,
		"canceled_at": nil, "cancellation_details": map[string]any{"comment": nil, "feedback": nil, "reason": nil},
		"collection_method": "charge_automatically", "created": start, "currency": "eur", "customer": s.CustomerID,
		"days_until_due": nil, "default_payment_method": "pm_1Q8wXrSamplePM", "description": nil, "discounts": []any{},
		"ended_at": nil, "invoice_settings": map[string]any{"account_tax_ids": nil, "issuer": map[string]any{"type": "self"}},
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_Q8wXrSampleItem", "object": "subscription_item", "created": start,
			"current_period_start": start, "current_period_end": end, "metadata": map[string]any{},
			"plan":  map[string]any{"id": "price_1Q8wXrPro", "object": "plan", "active": true, "amount": 2900, "currency": "eur", "interval": "month", "interval_count": 1, "product": "prod_Q8wXrPro"},
			"price": price, "quantity": 1, "subscription": s.SubscriptionID, "tax_rates": []any{},
		}}, "has_more": false, "total_count": 1, "url": "/v1/subscription_items?subscription=" + s.SubscriptionID},
		"latest_invoice": "in_1Q8wXrSampleInv", "livemode": s.Livemode, "metadata": map[string]any{"user_id": "user_2abcSample"},
		"next_pending_invoice_item_invoice": nil, "on_behalf_of": nil, "pause_collection": nil,
		"payment_settings":              map[string]any{"payment_method_options": nil, "payment_method_types": nil, "save_default_payment_method": "off"},
		"pending_invoice_item_interval": nil, "pending_setup_intent": nil, "pending_update": nil, "schedule": nil,
		"start_date": start, "status": status, "test_clock": nil, "transfer_data": nil,
		"trial_end": nil, "trial_settings": map[string]any{"end_behavior": map[string]any{"missing_payment_method": "create_invoice"}}, "trial_start": nil,
	}
	if status == "canceled" {
		obj["ended_at"] = s.Created.Unix()
		obj["canceled_at"] = s.Created.Unix()
	}
	if status == "trialing" {
		obj["trial_start"] = start
		obj["trial_end"] = end
	}
	if s.Type == "customer.subscription.paused" {
		obj["status"] = "paused"
	}
	return obj
}

func stripeInvoice(s *Stripe) map[string]any {
	paid := s.Type != "invoice.payment_failed"
	status := or(s.Status, map[bool]string{true: "paid", false: "open"}[paid])
	amountPaid := 0
	if paid {
		amountPaid = 2900
	}
	return map[string]any{
		"id": "in_" + idSuffix(s.EventID, s.Created), "object": "invoice", "account_country": "PT", "account_name": "Sample SaaS Lda",
		"amount_due": 2900, "amount_paid": amountPaid, "amount_remaining": 2900 - amountPaid, "attempt_count": 1, "attempted": true,
		"auto_advance": !paid, "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
		"created": s.Created.Unix(), "currency": "eur", "customer": s.CustomerID, "customer_email": "ana.silva@example.com",
		"customer_name": "Ana Silva", "hosted_invoice_url": "https://invoice.stripe.com/i/acct_sample/test_sample",
		"lines": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "il_Q8wXrSampleLine", "object": "line_item", "amount": 2900, "currency": "eur", "description": "1 × Pro (at €29.00 / month)",
			"period": map[string]any{"start": s.Created.Unix(), "end": s.Created.Add(30 * 24 * time.Hour).Unix()}, "quantity": 1,
		}}, "has_more": false, "total_count": 1},
		"livemode": s.Livemode, "metadata": map[string]any{}, "number": "A1B2C3D4-0003",
		"parent":     map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"metadata": map[string]any{}, "subscription": s.SubscriptionID}},
		"period_end": s.Created.Unix(), "period_start": s.Created.Add(-30 * 24 * time.Hour).Unix(),
		"status": status, "status_transitions": map[string]any{"finalized_at": s.Created.Unix(), "paid_at": nil},
		"subtotal": 2900, "total": 2900,
	}
}

func stripeCheckout(s *Stripe) map[string]any {
	paymentStatus := "paid"
	status := "complete"
	switch s.Type {
	case "checkout.session.async_payment_failed":
		paymentStatus = "unpaid"
	case "checkout.session.expired":
		paymentStatus, status = "unpaid", "expired"
	}
	if s.Status != "" {
		paymentStatus = s.Status
	}
	var pi any = "pi_" + idSuffix(s.CustomerID+"checkout", s.Created)
	if s.Type == "checkout.session.expired" {
		pi = nil
	}
	return map[string]any{
		"id": "cs_test_" + idSuffix(s.CustomerID+"session", s.Created), "object": "checkout.session", "amount_subtotal": 1000, "amount_total": 1000,
		"automatic_tax": map[string]any{"enabled": false}, "billing_address_collection": nil,
		"cancel_url": "https://app.example.com/credits", "client_reference_id": "user_2abcSample", "created": s.Created.Add(-time.Minute).Unix(),
		"currency": "eur", "customer": s.CustomerID, "customer_details": map[string]any{"email": "ana.silva@example.com", "name": "Ana Silva", "address": sampleAddress},
		"expires_at": s.Created.Add(24 * time.Hour).Unix(), "livemode": s.Livemode,
		"metadata": map[string]any{"user_id": "user_2abcSample", "credits": "100"}, "mode": "payment",
		"payment_intent": pi, "payment_method_types": []any{"card"}, "payment_status": paymentStatus,
		"status": status, "success_url": "https://app.example.com/credits?ok=1", "url": nil,
	}
}

func stripePaymentIntent(s *Stripe) map[string]any {
	status := or(s.Status, "succeeded")
	if s.Type == "payment_intent.payment_failed" && s.Status == "" {
		status = "requires_payment_method"
	}
	received := 0
	if status == "succeeded" {
		received = 1000
	}
	return map[string]any{
		"id": "pi_" + idSuffix(s.CustomerID+"checkout", s.Created), "object": "payment_intent", "amount": 1000, "amount_capturable": 0,
		"amount_received": received, "capture_method": "automatic", "client_secret": "pi_sample_secret_redacted",
		"confirmation_method": "automatic", "created": s.Created.Unix(), "currency": "eur", "customer": s.CustomerID,
		"description": "Credits top-up", "last_payment_error": nil, "latest_charge": "ch_" + idSuffix(s.CustomerID+"charge", s.Created),
		"livemode": s.Livemode, "metadata": map[string]any{}, "payment_method": "pm_1Q8wXrSamplePM", "payment_method_types": []any{"card"},
		"status": status,
	}
}

func stripeCharge(s *Stripe) map[string]any {
	return map[string]any{
		"id": "ch_" + idSuffix(s.CustomerID+"charge", s.Created), "object": "charge", "amount": 1000, "amount_captured": 1000,
		"amount_refunded": 1000, "captured": true, "created": s.Created.Unix(), "currency": "eur", "customer": s.CustomerID,
		"livemode": s.Livemode, "metadata": map[string]any{}, "paid": true,
		"payment_intent":  "pi_" + idSuffix(s.CustomerID+"checkout", s.Created),
		"payment_method":  "pm_1Q8wXrSamplePM",
		"receipt_url":     "https://pay.stripe.com/receipts/sample",
		"refunded":        true,
		"status":          "succeeded",
		"billing_details": map[string]any{"email": "ana.silva@example.com", "name": "Ana Silva"},
	}
}

func stripeRefund(s *Stripe) map[string]any {
	return map[string]any{
		"id": "re_" + idSuffix(s.EventID, s.Created), "object": "refund", "amount": 1000,
		"charge": "ch_" + idSuffix(s.CustomerID+"charge", s.Created), "created": s.Created.Unix(), "currency": "eur",
		"metadata": map[string]any{}, "payment_intent": "pi_" + idSuffix(s.CustomerID+"checkout", s.Created),
		"reason": "requested_by_customer", "status": or(s.Status, "succeeded"),
	}
}
