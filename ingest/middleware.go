package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/billfold/billfold/domain"
)

// The intake limits are net/http middleware, composed around the receiver
// in NewReceiver: a delivery is opened (its record started), then rate
// limited per source, refused when its endpoint has no secret, and read up
// to its endpoint's body limit; only then does the receiver verify, parse
// and append it. The bytes budget of all bodies being read at once
// (IntakeBudget) wraps the whole listener. Whichever step answers, it
// answers through intake.conclude, the one place a delivery's outcome is
// set, and openDelivery records it.

// intake is one request's state on its way through the middleware: its
// endpoint, the delivery's record, and the body once read.
type intake struct {
	ep       *Endpoint
	delivery domain.Delivery
	body     []byte
	status   int
}

type intakeKey struct{}

func withIntake(r *http.Request, in *intake) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), intakeKey{}, in))
}

func intakeOf(r *http.Request) *intake {
	in, _ := r.Context().Value(intakeKey{}).(*intake)
	return in
}

// verdict is how a delivery ends: the answer, and the outcome with its
// reason. An empty code keeps the reason already recorded (the test
// bypass's).
type verdict struct {
	status  int
	answer  []byte
	outcome domain.Outcome
	code    domain.Code
	reason  string
}

// refusal is the verdict of a delivery refused for err.
func refusal(status int, answer []byte, outcome domain.Outcome, err error) verdict {
	return verdict{status: status, answer: answer, outcome: outcome, code: domain.ErrorCode(err), reason: domain.ErrorMessage(err)}
}

// conclude records v as the delivery's outcome and writes its answer.
func (in *intake) conclude(w http.ResponseWriter, v verdict) {
	in.delivery.Outcome = v.outcome
	if v.code != "" {
		in.delivery.ReasonCode, in.delivery.Reason = v.code, v.reason
	}
	in.status = v.status
	switch v.status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", RetryAfter)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	writeAnswer(w, v.status, v.answer)
}

// limitRate refuses a request whose source address is over its rate
// (429 BILLFOLD-RATE-LIMITED). Verification challenges pass it too.
func (rc *Receiver) limitRate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := intakeOf(r)
		if !rc.limiter.allow(in.delivery.SourceAddr, in.delivery.Received) {
			in.conclude(w, verdict{status: http.StatusTooManyRequests, answer: answerRateLimited,
				outcome: domain.OutcomeRateLimited, code: domain.CodeRateLimited})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireSecret refuses a delivery to an endpoint configured without its
// secret (500 BILLFOLD-CONFIG-NO-SECRET), unless the test bypass is on.
func (rc *Receiver) requireSecret(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := intakeOf(r)
		if in.ep.Misconfigured != nil && !rc.bypass {
			in.conclude(w, verdict{status: http.StatusInternalServerError, answer: answerNoSecret, outcome: domain.OutcomeMisconfigured,
				code: domain.ErrorCode(in.ep.Misconfigured), reason: in.ep.Misconfigured.Error()})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody reads the body up to the endpoint's max_body_bytes for the
// handlers after it (413 BILLFOLD-BODY-TOO-LARGE past it). Nothing parses
// it before the receiver has verified it.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := intakeOf(r)
		body, err := readBody(r, in.ep.MaxBody)
		if err != nil {
			in.conclude(w, refusal(http.StatusRequestEntityTooLarge, answerTooLarge, domain.OutcomeTooLarge, err))
			return
		}
		in.body = body
		next.ServeHTTP(w, r)
	})
}

// readBody reads at most limit bytes of the body; a longer body is
// BILLFOLD-BODY-TOO-LARGE.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, domain.Errorf(domain.CodeBodyTooLarge, "Content-Length %d over the limit of %d bytes", r.ContentLength, limit)
	}
	// A known length is read into one buffer of that size, so a body
	// costs what the intake budget reserved for it, not the doubling
	// growth of io.ReadAll.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return nil, domain.Wrap(domain.CodeBodyTooLarge, err, "body could not be read")
	}
	body := buf.Bytes()
	if int64(len(body)) > limit {
		return nil, domain.Errorf(domain.CodeBodyTooLarge, "body over the limit of %d bytes", limit)
	}
	return body, nil
}
