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

// EventNamespace is the scope in which an event id is deduplicated: its
// Namespace for a signed event, and for input that no signature vouches for
// a namespace of its own per trust level, "<namespace>~unsigned" or
// "<namespace>~bypass". Unsigned input can so never make a signed event a
// duplicate (nor one of the other level), whatever id it claims. No
// endpoint name or provider contains "~", so no other namespace is spelled
// the same. It is the {provider} segment of the event ledger's paths.
func EventNamespace(p Provider, endpoint string, v Verification) string {
	ns := Namespace(p, endpoint)
	if v == VerifiedUnsigned || v == VerifiedBypass {
		return ns + "~" + string(v)
	}
	return ns
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

// Trusted reports whether a configured secret verified the event's
// signature.
func (v Verification) Trusted() bool { return v == VerifiedSignature }

// trustRank orders verifications from the most trusted: what a record
// built from several events reports is its least trusted input.
var trustRank = map[Verification]int{VerifiedSignature: 0, VerifiedUnsigned: 1, VerifiedBypass: 2}

// LeastTrusted returns the less trusted of a and b; "" counts as signed
// (an event journaled before the flag existed was verified).
func LeastTrusted(a, b Verification) Verification {
	if a == "" {
		return b
	}
	if b == "" || trustRank[a] >= trustRank[b] {
		return a
	}
	return b
}

// Verification values. Only VerifiedSignature counts as verified anywhere
// (metrics, ledger, docs); the other two are flagged on every record.
const (
	VerifiedSignature Verification = "signature" // a configured secret verified the signature
	VerifiedUnsigned  Verification = "unsigned"  // the endpoint is explicitly configured unsigned
	VerifiedBypass    Verification = "bypass"    // serve --insecure-test-bypass let it through
	VerifyFailed      Verification = "failed"    // verification failed; never journaled
)
