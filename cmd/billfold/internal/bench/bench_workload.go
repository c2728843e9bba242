package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
)

// Secrets of the bench's endpoints. The Clerk one is a Standard Webhooks
// secret: "whsec_" and base64.
const (
	benchStripeSecret = "whsec_billfold_bench"
	benchClerkSecret  = "whsec_YmlsbGZvbGQgYmVuY2ggY2xlcmsgc2VjcmV0IQ=="
)

// delivery is one bench delivery: an event body and what is needed to sign
// and send it. It is signed when sent, so a long run never trips the
// providers' five-minute timestamp tolerance.
type delivery struct {
	provider domain.Provider
	endpoint string // the path segment: /webhooks/<endpoint>
	// id is the event id billfold journals: the Stripe event id, or the
	// svix-id a Clerk delivery carries (derived from the body by
	// samples.Sign).
	id        string
	eventType string
	body      []byte
}

// sign signs d at now as its provider would.
func (d delivery) sign(now time.Time) map[string]string {
	secret := benchStripeSecret
	if d.provider == domain.Clerk {
		secret = benchClerkSecret
	}
	s, err := samples.Sign(d.provider, secret, d.body, now)
	if err != nil {
		panic(err) // fixed, valid secrets
	}
	return s.Headers
}

// request builds the signed POST of d to base.
func (d delivery) request(base string, now time.Time) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/"+d.endpoint, bytes.NewReader(d.body))
	for k, v := range d.sign(now) {
		req.Header.Set(k, v)
	}
	return req
}

// customerJourney is the order in which one customer's events arrive: a
// Clerk sign-up, the Stripe customer, a credits checkout, a subscription
// with its invoices, a failed renewal, profile updates. Each workload
// cycles through it customer by customer, so the mix of types is the same
// at any --events.
var customerJourney = []journeyStep{
	{domain.Clerk, "user.created"},
	{domain.Stripe, "customer.created"},
	{domain.Stripe, "checkout.session.completed"},
	{domain.Stripe, "customer.subscription.created"},
	{domain.Stripe, "invoice.paid"},
	{domain.Stripe, "invoice.payment_succeeded"},
	{domain.Stripe, "customer.subscription.updated"},
	{domain.Stripe, "invoice.payment_failed"},
	{domain.Stripe, "customer.updated"},
	{domain.Clerk, "user.updated"},
}

// journeyStep is one event of a journey: who sends it, of what type.
type journeyStep struct {
	provider  domain.Provider
	eventType string
}

// onboardingJourney is the end-to-end phase's mix: each customer is new and
// is seen once (a Clerk sign-up, the Stripe customer, a credits top-up, a
// subscription and its first invoice), so almost every event creates or
// changes a record no earlier event touched, as in a real onboarding.
var onboardingJourney = []journeyStep{
	{domain.Clerk, "user.created"},
	{domain.Stripe, "customer.created"},
	{domain.Stripe, "checkout.session.completed"},
	{domain.Stripe, "customer.subscription.created"},
	{domain.Stripe, "invoice.paid"},
}

// primaryProjection is the projection in which an event of a type is
// first of all visible: the one the lag phase watches for it.
func primaryProjection(eventType string) string {
	switch eventType {
	case "checkout.session.completed":
		return domain.ProjectionOrders
	case "user.created", "user.updated", "customer.created", "customer.updated":
		return domain.ProjectionCustomers
	}
	return domain.ProjectionSubscriptions
}

// workload builds n deliveries spread over customers, each with a distinct
// event id: run tells this workload apart from every other of the process
// and of earlier runs against the same server.
func workload(run string, n, customers int, start time.Time) []delivery {
	return journeyWorkload(customerJourney, run, n, customers, start)
}

// onboardingWorkload builds n deliveries of onboardingJourney, every
// customer new.
func onboardingWorkload(run string, n int, start time.Time) []delivery {
	return journeyWorkload(onboardingJourney, run, n, n/len(onboardingJourney)+1, start)
}

// journeyWorkload builds n deliveries of journey, customer by customer,
// cycling over customers.
func journeyWorkload(journey []journeyStep, run string, n, customers int, start time.Time) []delivery {
	return journeyRange(journey, run, 0, n, customers, start)
}

// journeyRange builds deliveries from to to of journeyWorkload's n: a
// long workload built a slice at a time.
func journeyRange(journey []journeyStep, run string, from, to, customers int, start time.Time) []delivery {
	customers = max(customers, 1)
	out := make([]delivery, to-from)
	for i := from; i < to; i++ {
		step := journey[i%len(journey)]
		c := (i / len(journey)) % customers
		at := start.Add(time.Duration(i) * time.Millisecond)
		ids := benchIDs{run: run, customer: c, seq: i}
		if step.provider == domain.Clerk {
			body := clerkUser(step.eventType, ids, at)
			signed, _ := samples.Sign(domain.Clerk, benchClerkSecret, body, at)
			out[i-from] = delivery{provider: domain.Clerk, endpoint: "clerk", id: signed.Headers["svix-id"], eventType: step.eventType, body: body}
			continue
		}
		ev := stripeEvent(step.eventType, ids, at)
		out[i-from] = delivery{provider: domain.Stripe, endpoint: "stripe", id: ev.EventID, eventType: step.eventType, body: ev.Event()}
	}
	return out
}

// benchIDs names the provider objects of one event.
type benchIDs struct {
	run      string
	customer int
	seq      int
}

func (b benchIDs) event() string      { return fmt.Sprintf("evt_bf%s%08d", b.run, b.seq) }
func (b benchIDs) customerID() string { return fmt.Sprintf("cus_bf%s%06d", b.run, b.customer) }
func (b benchIDs) user() string       { return fmt.Sprintf("user_bf%s%06d", b.run, b.customer) }
func (b benchIDs) sub() string        { return fmt.Sprintf("sub_bf%s%06d", b.run, b.customer) }

// stripeEvent is a Stripe event of eventType enriched the way production
// payloads are: metadata a CRM sets, tax ids, several subscription items,
// invoices with one line per item plus proration and tax lines. That makes
// bodies 2 to 5 KB, as real ones are, with the nesting the parsers and
// reducers meet in practice.
func stripeEvent(eventType string, ids benchIDs, at time.Time) samples.Stripe {
	s := samples.Stripe{
		EventID: ids.event(), Type: eventType, Created: at,
		CustomerID: ids.customerID(), SubscriptionID: ids.sub(),
	}
	md := map[string]any{
		"user_id": ids.user(), "plan_tier": []string{"starter", "pro", "team"}[ids.customer%3],
		"crm_account_id": fmt.Sprintf("0015g00000%07dAAA", ids.customer), "signup_source": "organic_search",
		"utm_campaign": "spring_launch_2026", "region": "eu-west",
	}
	switch eventType {
	case "customer.created", "customer.updated":
		s.Object = map[string]any{
			"metadata": md,
			"tax_ids": map[string]any{"object": "list", "has_more": false, "total_count": 1, "data": []any{map[string]any{
				"id": fmt.Sprintf("txi_bf%s%06d", ids.run, ids.customer), "object": "tax_id", "country": "PT", "type": "eu_vat",
				"value": fmt.Sprintf("PT%09d", 500000000+ids.customer), "verification": map[string]any{"status": "verified", "verified_address": nil, "verified_name": "Ana Silva"},
			}}},
			"shipping": map[string]any{"name": "Ana Silva", "phone": "+351210000000", "address": map[string]any{
				"city": "Lisbon", "country": "PT", "line1": "Rua Augusta 27", "line2": "3º Esq.", "postal_code": "1100-048", "state": nil}},
			"invoice_settings": map[string]any{"custom_fields": []any{map[string]any{"name": "PO number", "value": fmt.Sprintf("PO-%06d", ids.seq%1000000)}},
				"default_payment_method": "pm_1Q8wXrSamplePM", "footer": "Thank you for your business.", "rendering_options": map[string]any{"amount_tax_display": "include_inclusive_tax"}},
			"sources":       map[string]any{"object": "list", "data": []any{}, "has_more": false, "total_count": 0, "url": "/v1/customers/" + ids.customerID() + "/sources"},
			"subscriptions": map[string]any{"object": "list", "data": []any{}, "has_more": false, "total_count": 0, "url": "/v1/customers/" + ids.customerID() + "/subscriptions"},
		}
		if eventType == "customer.updated" {
			s.Previous = map[string]any{"metadata": map[string]any{"plan_tier": "starter"}, "email": "ana.old@example.com"}
		}
	case "customer.subscription.created", "customer.subscription.updated":
		s.Object = map[string]any{"metadata": md, "items": subscriptionItems(ids, at)}
		if eventType == "customer.subscription.updated" {
			s.Previous = map[string]any{"items": map[string]any{"data": []any{map[string]any{"quantity": 3}}}}
		}
	case "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed":
		s.Object = map[string]any{"metadata": md, "lines": invoiceLines(ids, at),
			"total_tax_amounts": []any{map[string]any{"amount": 1541, "inclusive": false, "tax_rate": "txr_1Q8wXrVAT23", "taxability_reason": "standard_rated", "taxable_amount": 6700}},
			"customer_address":  map[string]any{"city": "Lisbon", "country": "PT", "line1": "Rua Augusta 27", "line2": "3º Esq.", "postal_code": "1100-048", "state": nil},
			"customer_tax_ids":  []any{map[string]any{"type": "eu_vat", "value": fmt.Sprintf("PT%09d", 500000000+ids.customer)}},
			"payment_settings":  map[string]any{"default_mandate": nil, "payment_method_options": map[string]any{"card": map[string]any{"request_three_d_secure": "automatic"}}, "payment_method_types": []any{"card", "sepa_debit"}},
		}
	case "checkout.session.completed":
		s.Object = map[string]any{
			"metadata":                map[string]any{"user_id": ids.user(), "credits": "100", "campaign": "spring_launch_2026", "cart_id": fmt.Sprintf("cart_%08d", ids.seq)},
			"custom_fields":           []any{map[string]any{"key": "company", "label": map[string]any{"custom": "Company name", "type": "custom"}, "optional": true, "type": "text", "text": map[string]any{"value": "Silva & Filhos Lda"}}},
			"custom_text":             map[string]any{"shipping_address": nil, "submit": map[string]any{"message": "Credits are added to your workspace at once."}, "terms_of_service_acceptance": nil},
			"total_details":           map[string]any{"amount_discount": 0, "amount_shipping": 0, "amount_tax": 230, "breakdown": map[string]any{"discounts": []any{}, "taxes": []any{map[string]any{"amount": 230, "rate": map[string]any{"id": "txr_1Q8wXrVAT23", "object": "tax_rate", "percentage": 23, "country": "PT", "display_name": "VAT", "inclusive": false, "jurisdiction": "PT"}}}}},
			"consent":                 map[string]any{"promotions": "opt_in", "terms_of_service": "accepted"},
			"invoice_creation":        map[string]any{"enabled": true, "invoice_data": map[string]any{"account_tax_ids": nil, "custom_fields": nil, "description": "Credits top-up", "footer": nil, "metadata": map[string]any{}, "rendering_options": nil}},
			"phone_number_collection": map[string]any{"enabled": false},
			"payment_method_options":  map[string]any{"card": map[string]any{"request_three_d_secure": "automatic"}},
		}
	}
	return s
}

func price(id, product, nickname string, amount int, interval string) map[string]any {
	return map[string]any{
		"id": id, "object": "price", "active": true, "billing_scheme": "per_unit", "created": 1704067200, "currency": "eur",
		"livemode": false, "lookup_key": nickname, "metadata": map[string]any{}, "nickname": nickname, "product": product,
		"recurring":    map[string]any{"aggregate_usage": nil, "interval": interval, "interval_count": 1, "usage_type": "licensed"},
		"tax_behavior": "exclusive", "type": "recurring", "unit_amount": amount, "unit_amount_decimal": fmt.Sprint(amount),
	}
}

// subscriptionItems is a base plan, per-seat pricing and an add-on.
func subscriptionItems(ids benchIDs, at time.Time) map[string]any {
	start, end := at.Add(-15*24*time.Hour).Unix(), at.Add(15*24*time.Hour).Unix()
	item := func(n int, p map[string]any, qty int) map[string]any {
		return map[string]any{
			"id": fmt.Sprintf("si_bf%s%06d%d", ids.run, ids.customer, n), "object": "subscription_item", "created": start,
			"current_period_start": start, "current_period_end": end, "metadata": map[string]any{},
			"price": p, "quantity": qty, "subscription": ids.sub(), "tax_rates": []any{}, "discounts": []any{},
		}
	}
	return map[string]any{"object": "list", "has_more": false, "total_count": 3, "url": "/v1/subscription_items?subscription=" + ids.sub(),
		"data": []any{
			item(1, price("price_1Q8wXrPro", "prod_Q8wXrPro", "pro_monthly", 2900, "month"), 1),
			item(2, price("price_1Q8wXrSeat", "prod_Q8wXrSeat", "seat_monthly", 900, "month"), 4),
			item(3, price("price_1Q8wXrAudit", "prod_Q8wXrAudit", "audit_log_addon", 200, "month"), 1),
		}}
}

// invoiceLines is one line per subscription item and a proration credit.
func invoiceLines(ids benchIDs, at time.Time) map[string]any {
	period := map[string]any{"start": at.Unix(), "end": at.Add(30 * 24 * time.Hour).Unix()}
	line := func(n int, desc string, amount, qty int, proration bool) map[string]any {
		return map[string]any{
			"id": fmt.Sprintf("il_bf%s%08d%d", ids.run, ids.seq, n), "object": "line_item", "amount": amount, "currency": "eur",
			"description": desc, "discount_amounts": []any{}, "discountable": true, "livemode": false, "metadata": map[string]any{},
			"period": period, "quantity": qty, "proration": proration,
			"tax_amounts": []any{map[string]any{"amount": amount * 23 / 100, "inclusive": false, "tax_rate": "txr_1Q8wXrVAT23", "taxability_reason": "standard_rated"}},
			"parent":      map[string]any{"type": "subscription_item_details", "subscription_item_details": map[string]any{"subscription": ids.sub(), "proration": proration}},
		}
	}
	return map[string]any{"object": "list", "has_more": false, "total_count": 4, "url": "/v1/invoices/lines",
		"data": []any{
			line(1, "1 × Pro (at €29.00 / month)", 2900, 1, false),
			line(2, "4 × Seat (at €9.00 / month)", 3600, 4, false),
			line(3, "1 × Audit log add-on (at €2.00 / month)", 200, 1, false),
			line(4, "Unused time on 3 × Seat after 12 Mar 2026", -1350, 3, true),
		}}
}

// clerkUser is a Clerk user event as Clerk sends it: the full user object
// with verified email and phone, an OAuth account and metadata.
func clerkUser(eventType string, ids benchIDs, at time.Time) []byte {
	base := samples.ClerkUser(eventType, ids.user(), at)
	var ev map[string]any
	if err := json.Unmarshal(base, &ev); err != nil {
		panic(err)
	}
	data := ev["data"].(map[string]any)
	verification := map[string]any{"status": "verified", "strategy": "from_oauth_google", "attempts": nil, "expire_at": nil}
	emailID := fmt.Sprintf("idn_bf%s%06d", ids.run, ids.customer)
	data["email_addresses"] = []any{map[string]any{
		"id": emailID, "object": "email_address", "email_address": fmt.Sprintf("ana.silva+%d@example.com", ids.customer),
		"linked_to": []any{map[string]any{"id": "idn_bfgoogle" + ids.run, "type": "oauth_google"}}, "verification": verification,
		"reserved": false, "created_at": at.Add(-time.Hour).UnixMilli(), "updated_at": at.UnixMilli(),
	}}
	data["primary_email_address_id"] = emailID
	data["phone_numbers"] = []any{map[string]any{"id": "idn_bfphone" + ids.run, "object": "phone_number", "phone_number": "+351210000000",
		"reserved_for_second_factor": false, "default_second_factor": false, "verification": map[string]any{"status": "verified", "strategy": "phone_code", "attempts": 1, "expire_at": at.Add(10 * time.Minute).UnixMilli()}, "linked_to": []any{}}}
	data["external_accounts"] = []any{map[string]any{
		"id": "eac_bf" + ids.run, "object": "google_account", "provider": "oauth_google", "identification_id": "idn_bfgoogle" + ids.run,
		"provider_user_id": fmt.Sprintf("1098765432%08d", ids.customer), "approved_scopes": "email https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile openid profile",
		"email_address": fmt.Sprintf("ana.silva+%d@example.com", ids.customer), "first_name": "Ana", "last_name": "Silva",
		"image_url": "https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2xoMy5nb29nbGV1c2VyY29udGVudC5jb20vYS9BQ2c4b2NKIn0",
		"username":  nil, "public_metadata": map[string]any{}, "label": nil, "verification": verification,
	}}
	data["public_metadata"] = map[string]any{"plan": "pro", "workspace_id": fmt.Sprintf("ws_%06d", ids.customer), "onboarded": true}
	data["private_metadata"] = map[string]any{"stripe_customer_id": ids.customerID()}
	data["unsafe_metadata"] = map[string]any{"theme": "dark"}
	data["image_url"], data["profile_image_url"] = "https://img.clerk.com/eyJ0eXBlIjoicHJveHkifQ", "https://images.clerk.dev/oauth_google/img_2abc"
	data["two_factor_enabled"], data["totp_enabled"], data["backup_code_enabled"], data["password_enabled"] = false, false, false, false
	data["banned"], data["locked"], data["last_sign_in_at"], data["last_active_at"] = false, false, at.UnixMilli(), at.UnixMilli()
	data["external_id"], data["username"], data["web3_wallets"], data["saml_accounts"] = nil, nil, []any{}, []any{}
	ev["instance_id"] = "ins_2abcBenchInstance"
	ev["event_attributes"] = map[string]any{"http_request": map[string]any{"client_ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"}}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}
