package ingest

import (
	"net/http"
	"strings"

	"github.com/billfold/billfold/domain"
)

// Challenger answers a provider's verification challenge: the proof that
// billfold holds the endpoint's key, which the provider asks for with a GET
// before it sends deliveries (Braintree's bt_challenge). The answer is
// computed with the endpoint's current key; an invalid challenge is a
// *domain.Error with code BILLFOLD-CHALLENGE-INVALID.
type Challenger interface {
	Challenge(challenge string) (string, error)
}

// ChallengeParam is the query parameter of a verification challenge.
const ChallengeParam = "bt_challenge"

var answerBadChallenge = []byte(`{"error":"invalid challenge","code":"` + string(domain.CodeChallengeInvalid) + `"}`)

// serveChallenge answers GET /webhooks/{endpoint}?bt_challenge=<hex> with
// the Challenger's text/plain answer. A GET without exactly one valid
// challenge is 400 BILLFOLD-CHALLENGE-INVALID. It is rate-limited like a
// delivery but is not one: it is logged, not recorded in the delivery log.
func (rc *Receiver) serveChallenge(w http.ResponseWriter, r *http.Request) {
	in := intakeOf(r)
	ep, source := in.ep, in.delivery.SourceAddr
	if ep.Misconfigured != nil {
		rc.log.Warn("verification challenge", "endpoint", ep.Name, "status", http.StatusInternalServerError,
			"code", domain.ErrorCode(ep.Misconfigured), "source", source)
		writeAnswer(w, http.StatusInternalServerError, answerNoSecret)
		return
	}
	values := r.URL.Query()[ChallengeParam]
	var answer string
	var err error = domain.Errorf(domain.CodeChallengeInvalid, "want exactly one %s query parameter, got %d", ChallengeParam, len(values))
	if len(values) == 1 {
		answer, err = ep.Challenger.Challenge(values[0])
	}
	if err != nil {
		rc.log.Info("verification challenge", "endpoint", ep.Name, "status", http.StatusBadRequest,
			"code", domain.ErrorCode(err), "reason", domain.ErrorMessage(err), "source", source)
		writeAnswer(w, http.StatusBadRequest, answerBadChallenge)
		return
	}
	rc.log.Info("verification challenge", "endpoint", ep.Name, "status", http.StatusOK, "source", source)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(answer))
}

// allowed is the Allow header of an endpoint's route.
func allowed(ep *Endpoint) string {
	methods := []string{http.MethodPost}
	if ep.Challenger != nil {
		methods = append(methods, http.MethodGet)
	}
	return strings.Join(methods, ", ")
}
