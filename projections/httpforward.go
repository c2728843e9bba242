package projections

import (
	"net/http"

	"github.com/billfold/billfold/projections/httpapi"
)

// WriteJSON, WriteError and APIError are httpapi's, under their old names
// for the query room's files and tests (query*.go, accountlists.go), which
// were being changed while the other rooms moved; they go when that room
// moves. Everything else calls httpapi.

// WriteJSON writes v as a JSON answer with status (httpapi.WriteJSON).
func WriteJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }

// WriteError answers err as an httpapi.APIError (httpapi.WriteError).
func WriteError(w http.ResponseWriter, err error) { httpapi.WriteError(w, err) }

// APIError is httpapi.APIError, for the query room's tests.
type APIError = httpapi.APIError
