package ingest

import (
	"net/http"
	"time"

	"github.com/billfold/billfold/domain"
)

// Verifier checks one delivery's signature on its raw bytes, before
// anything is parsed. It returns nil when the delivery is authentic, and
// otherwise a *domain.Error whose code says why (BILLFOLD-SIG-MISSING,
// -MALFORMED, -MISMATCH, -TOO-OLD, -TOO-NEW). now is the receiver's clock,
// passed in so verifiers stay pure.
type Verifier interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

// Parser reads the envelope of a verified delivery: event id, type,
// provider time, livemode and the object it is about. It returns a
// *domain.Error with code BILLFOLD-EVENT-MALFORMED naming the offending
// field when the body is not an event billfold can journal. Provider,
// Endpoint, Received, RequestID, Verification and Body are filled in by the
// receiver.
type Parser interface {
	Parse(h http.Header, body []byte) (domain.Envelope, error)
}
