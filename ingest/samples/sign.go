package samples

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/braintree"
	"github.com/billfold/billfold/ingest/hmacsig"
	"github.com/billfold/billfold/ingest/stripe"
	"github.com/billfold/billfold/ingest/svix"
)

// Signed is a delivery ready to send: headers and the exact body.
type Signed struct {
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"-"`
}

// Sign signs body for provider with secret at now, as the provider would.
// For Braintree, secret is "public_key:private_key" and body the
// notification XML; the signed body is the form Braintree posts.
func Sign(provider domain.Provider, secret string, body []byte, now time.Time) (Signed, error) {
	switch provider {
	case domain.Stripe:
		t := now.Unix()
		return Signed{Headers: map[string]string{
			stripe.SignatureHeader: "t=" + strconv.FormatInt(t, 10) + ",v1=" + stripe.Sign(secret, t, body),
			"Content-Type":         "application/json",
		}, Body: body}, nil
	case domain.Clerk, domain.Standard:
		id := svixID(body)
		sig, err := svix.Sign(secret, id, now, body)
		if err != nil {
			return Signed{}, err
		}
		prefix := map[domain.Provider]string{domain.Clerk: "svix", domain.Standard: "webhook"}[provider]
		return Signed{Headers: map[string]string{
			prefix + "-id": id, prefix + "-timestamp": strconv.FormatInt(now.Unix(), 10), prefix + "-signature": sig,
			"Content-Type": "application/json",
		}, Body: body}, nil
	case domain.PactaPay:
		h := hmacsig.Sign(hmacsig.PactaPay(), secret, now, body)
		h["Content-Type"] = "application/json"
		return Signed{Headers: h, Body: body}, nil
	case domain.Braintree:
		k, err := braintree.ParseKeyPair(secret)
		if err != nil {
			return Signed{}, err
		}
		return Signed{Headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			Body: braintree.Sign(k, braintree.EncodePayload(body))}, nil
	}
	return Signed{}, fmt.Errorf("no signer for provider %q", provider)
}

// Sample returns the sample event of eventType for provider.
func Sample(provider domain.Provider, eventType string, now time.Time) ([]byte, error) {
	switch provider {
	case domain.Stripe:
		if _, ok := stripeObjects[eventType]; !ok {
			return nil, fmt.Errorf("no Stripe sample of type %q (billfold sign --list-samples)", eventType)
		}
		return Stripe{Type: eventType, Created: now}.Event(), nil
	case domain.Clerk:
		if slices.Contains(clerkTypes, eventType) {
			return ClerkUser(eventType, "user_2abcSample", now), nil
		}
	case domain.PactaPay:
		if slices.Contains(pactaPayTypes, eventType) {
			return PactaPayPayment(eventType, "pay_sample_42", 4200, now), nil
		}
	case domain.Braintree:
		if _, ok := braintreeKinds[eventType]; ok {
			return BraintreeSubscription(eventType, "bt_sub_sample", now), nil
		}
	default:
		return nil, fmt.Errorf("no samples for provider %q", provider)
	}
	return nil, fmt.Errorf("no %s sample of type %q (billfold sign --list-samples)", provider, eventType)
}

// Types lists the sample event types by provider.
func Types() map[domain.Provider][]string {
	return map[domain.Provider][]string{
		domain.Stripe:    StripeTypes(),
		domain.Clerk:     clerkTypes,
		domain.PactaPay:  pactaPayTypes,
		domain.Braintree: slices.Sorted(maps.Keys(braintreeKinds)),
	}
}
