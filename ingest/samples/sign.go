package samples

import (
	"fmt"
	"strconv"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/stripe"
)

// Signed is a delivery ready to send: headers and the exact body.
type Signed struct {
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"-"`
}

// Sign signs body for provider with secret at now, as the provider would.
func Sign(provider domain.Provider, secret string, body []byte, now time.Time) (Signed, error) {
	switch provider {
	case domain.Stripe:
		t := now.Unix()
		return Signed{Headers: map[string]string{
			stripe.SignatureHeader: "t=" + strconv.FormatInt(t, 10) + ",v1=" + stripe.Sign(secret, t, body),
			"Content-Type":         "application/json",
		}, Body: body}, nil
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
	}
	return nil, fmt.Errorf("no samples for provider %q", provider)
}

// Types lists the sample event types by provider.
func Types() map[domain.Provider][]string {
	return map[domain.Provider][]string{domain.Stripe: StripeTypes()}
}
