package projections

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/billfold/billfold/domain"
)

// APIError is the JSON body of every admin API error: a short machine word,
// the stable code and a message for the person reading it.
type APIError struct {
	Error   string      `json:"error"`
	Code    domain.Code `json:"code"`
	Message string      `json:"message,omitempty"`
}

// WriteJSON writes v as a JSON answer with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers err as an APIError; the status and the machine word
// follow from its code.
func WriteError(w http.ResponseWriter, err error) {
	code := domain.ErrorCode(err)
	status, word := http.StatusInternalServerError, "internal"
	switch code {
	case domain.CodeNotFound:
		status, word = http.StatusNotFound, "not_found"
	case domain.CodeBadRequest:
		status, word = http.StatusBadRequest, "bad_request"
	case domain.CodeUnauthorized:
		status, word = http.StatusUnauthorized, "unauthorized"
	case domain.CodeJournalUnavailable:
		status, word = http.StatusServiceUnavailable, "unavailable"
	}
	var e *domain.Error
	msg := "internal error"
	if errors.As(err, &e) {
		msg = e.Message
	}
	WriteJSON(w, status, APIError{Error: word, Code: code, Message: msg})
}
