package domain

import (
	"crypto/sha256"
	"encoding/hex"
)

// Provider names a sender of webhooks and the signing scheme billfold uses
// for it. The name is also the namespace of provider ids: an event id is
// unique within its provider.
type Provider string

// The providers billfold knows. Standard and HMAC are generic schemes; an
// endpoint of theirs is its own namespace (see Namespace).
const (
	Stripe    Provider = "stripe"
	Braintree Provider = "braintree"
	Clerk     Provider = "clerk"
	PactaPay  Provider = "pactapay"
	Standard  Provider = "standard"
	HMAC      Provider = "hmac"
)

// Valid reports whether p is a provider billfold knows.
func (p Provider) Valid() bool {
	switch p {
	case Stripe, Braintree, Clerk, PactaPay, Standard, HMAC:
		return true
	}
	return false
}

// Generic reports whether p is a scheme rather than a company: its event ids
// are only unique per sender, so each endpoint is its own namespace.
func (p Provider) Generic() bool { return p == Standard || p == HMAC }

// Namespace is the scope in which an event id must be unique for dedupe and
// the {provider} segment of API paths: the provider's name for a named
// provider, the endpoint's name for a generic scheme.
func Namespace(p Provider, endpoint string) string {
	if p.Generic() {
		return endpoint
	}
	return string(p)
}

// UnsignedLabel is how an unsigned endpoint is shown wherever its name would
// appear to someone who is not its configurer: metric labels, logs, the
// delivery log and the event ledger. Its name is its only secret (whoever
// knows it can post events), so the label is a digest of it that cannot
// be turned back into it.
func UnsignedLabel(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "unsigned-" + hex.EncodeToString(sum[:4])
}

// Verification says how a journaled event was let in.
type Verification string

// Verification values. Only VerifiedSignature counts as verified anywhere
// (metrics, ledger, docs); the other two are flagged on every record.
const (
	VerifiedSignature Verification = "signature" // a configured secret verified the signature
	VerifiedUnsigned  Verification = "unsigned"  // the endpoint is explicitly configured unsigned
	VerifiedBypass    Verification = "bypass"    // serve --insecure-test-bypass let it through
	VerifyFailed      Verification = "failed"    // verification failed; never journaled
)
