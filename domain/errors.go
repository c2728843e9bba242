package domain

import (
	"errors"
	"fmt"
)

// Code is a stable error code. Codes appear in logs, metric labels, the
// delivery log and docs/troubleshooting.md, where each has its own row.
// A code never changes meaning once released.
type Code string

// Error codes. Keep docs/troubleshooting.md in step: every code here has a row.
const (
	// Signature verification.
	CodeSigMissing   Code = "BILLFOLD-SIG-MISSING"   // no signature header or field
	CodeSigMalformed Code = "BILLFOLD-SIG-MALFORMED" // signature header present but unparsable
	CodeSigMismatch  Code = "BILLFOLD-SIG-MISMATCH"  // no configured secret produces the signature
	CodeSigTooOld    Code = "BILLFOLD-SIG-TOO-OLD"   // signed timestamp older than the tolerance
	CodeSigTooNew    Code = "BILLFOLD-SIG-TOO-NEW"   // signed timestamp further in the future than the tolerance

	// Intake.
	CodeEventMalformed   Code = "BILLFOLD-EVENT-MALFORMED"   // verified body is not an event billfold can journal
	CodeBodyTooLarge     Code = "BILLFOLD-BODY-TOO-LARGE"    // body over the endpoint's limit
	CodeLivemodeMismatch Code = "BILLFOLD-LIVEMODE-MISMATCH" // event's livemode differs from the endpoint's
	// CodeAccountMismatch: a Stripe Connect event (one with an account)
	// reached an endpoint not configured connect: true.
	CodeAccountMismatch Code = "BILLFOLD-ACCOUNT-MISMATCH"
	// CodeEventTooOld: a verified body's own time (PactaPay's timestamp,
	// which its signature covers) is older than the endpoint's tolerance.
	CodeEventTooOld Code = "BILLFOLD-EVENT-TOO-OLD"
	// CodeEventTooNew: a verified body's own time is further in the future
	// than the endpoint's tolerance.
	CodeEventTooNew        Code = "BILLFOLD-EVENT-TOO-NEW"
	CodeEndpointUnknown    Code = "BILLFOLD-ENDPOINT-UNKNOWN"    // no endpoint with that name
	CodeMethodNotAllowed   Code = "BILLFOLD-METHOD-NOT-ALLOWED"  // wrong HTTP method
	CodeJournalUnavailable Code = "BILLFOLD-JOURNAL-UNAVAILABLE" // journal did not acknowledge the append
	CodeRateLimited        Code = "BILLFOLD-RATE-LIMITED"        // source address over its rate limit
	CodeIntakeBusy         Code = "BILLFOLD-INTAKE-BUSY"         // the bytes-in-flight budget for bodies being read is spent
	// CodeChallengeInvalid: a GET on a webhook endpoint that answers
	// verification challenges without exactly one well-formed challenge.
	CodeChallengeInvalid Code = "BILLFOLD-CHALLENGE-INVALID"

	// Configuration.
	CodeConfigNoSecret Code = "BILLFOLD-CONFIG-NO-SECRET" // endpoint has no usable secret
	CodeConfigInvalid  Code = "BILLFOLD-CONFIG-INVALID"   // config file or flag value is wrong
	// CodeConfigExposed: a listener is bound beyond loopback without the
	// credentials that would guard it.
	CodeConfigExposed Code = "BILLFOLD-CONFIG-EXPOSED"
	// CodeConfigPayload: an endpoint's max_body_bytes cannot fit in a
	// journal message under the NATS server's max_payload.
	CodeConfigPayload Code = "BILLFOLD-CONFIG-PAYLOAD"

	// Operations.
	// CodeClockSkew: billfold's clock and the NATS server's disagree by
	// more than billfold doctor's threshold, a sign that billfold's clock
	// is off and signature timestamps will be judged wrongly.
	CodeClockSkew Code = "BILLFOLD-CLOCK-SKEW"

	// Reducers and projectors.
	CodeReducerDecode    Code = "BILLFOLD-REDUCER-DECODE"    // a journaled payload cannot be decoded for a projection
	CodeReducerInvalid   Code = "BILLFOLD-REDUCER-INVALID"   // a payload decodes but its content is invalid (for example top-up metadata)
	CodeReducerFailed    Code = "BILLFOLD-REDUCER-FAILED"    // a switch-simulated or otherwise unexpected reducer failure
	CodeStoreUnavailable Code = "BILLFOLD-STORE-UNAVAILABLE" // a projection store kept failing; the event went to the dead letters

	// Query and admin API.
	CodeNotFound Code = "BILLFOLD-NOT-FOUND" // no such record or event
	// CodeProjectionReadOnly: something tried to write a projection record
	// other than its reducer.
	CodeProjectionReadOnly Code = "BILLFOLD-PROJECTION-READ-ONLY"
	CodeBadRequest         Code = "BILLFOLD-BAD-REQUEST"      // a query parameter is invalid
	CodeUnauthorized       Code = "BILLFOLD-UNAUTHORIZED"     // missing or wrong bearer token
	CodeConfirmRequired    Code = "BILLFOLD-CONFIRM-REQUIRED" // a large replay or bulk requeue needs --yes (force)
	CodeConflict           Code = "BILLFOLD-CONFLICT"         // the resource changed or is busy (a rebuild is running)
	CodeBusy               Code = "BILLFOLD-BUSY"             // a bounded read (change-feed clients, fold jobs) is at its cap
	// CodeConsoleSessionsFull: the operator console holds as many signed-in
	// sessions as it may.
	CodeConsoleSessionsFull Code = "BILLFOLD-CONSOLE-SESSIONS-FULL"
	// CodeIndexLoading: a list or count was asked of a process whose query
	// indexes are still loading the stored records (just started).
	CodeIndexLoading Code = "BILLFOLD-INDEX-LOADING"

	// Rebuild, replay and verify.
	CodeRebuildInterrupted Code = "BILLFOLD-REBUILD-INTERRUPTED" // the process running a rebuild stopped before it switched
	CodeRebuildCancelled   Code = "BILLFOLD-REBUILD-CANCELLED"   // an operator cancelled a rebuild
	CodeVerifyMismatch     Code = "BILLFOLD-VERIFY-MISMATCH"     // a live record differs from the clean fold of the journal

	// CodeInternal is what any error without a code of its own maps to.
	CodeInternal Code = "BILLFOLD-INTERNAL"
)

// Error is an error with a stable code. Message is safe to show to the
// operator; Err, when set, is the underlying cause kept for logs.
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Error implements error.
func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	case e.Message != "":
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return string(e.Code)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with code and message whose cause is err.
func Wrap(code Code, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, the empty
// code for a nil error, and CodeInternal for any other error.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Permanent reports whether err is a reducer's verdict on the event itself
// (retrying cannot help) rather than a failure of the stores around it.
func Permanent(err error) bool {
	switch ErrorCode(err) {
	case CodeReducerDecode, CodeReducerInvalid, CodeReducerFailed, CodeEventMalformed:
		return true
	}
	return false
}

// ErrorMessage returns the operator-facing message of err: the Message of
// its first *Error, or a generic text for foreign errors so that internals
// (addresses, file paths) are not shown to API callers.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}
