package reducers

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/billfold/billfold/domain"
)

// stripeEvent is the part of a Stripe event the reducers read.
type stripeEvent struct {
	Data struct {
		Object             json.RawMessage            `json:"object"`
		PreviousAttributes map[string]json.RawMessage `json:"previous_attributes"`
	} `json:"data"`
}

func decodeStripe(ev *domain.Envelope) (stripeEvent, error) {
	var e stripeEvent
	if err := json.Unmarshal(ev.Body, &e); err != nil {
		return e, domain.Wrap(domain.CodeReducerDecode, err, "Stripe event "+ev.EventID)
	}
	if len(e.Data.Object) == 0 || e.Data.Object[0] != '{' {
		return e, domain.Errorf(domain.CodeReducerDecode, "Stripe event %s has no data.object", ev.EventID)
	}
	return e, nil
}

// decodeObject decodes a provider object into v.
func decodeObject(ev *domain.Envelope, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return domain.Wrap(domain.CodeReducerDecode, err, string(ev.Provider)+" "+ev.EventType+" "+ev.EventID)
	}
	return nil
}

// expandable is a Stripe field that is either an id or an expanded object
// with an id.
type expandable string

// UnmarshalJSON accepts "id", {"id": ...} and null.
func (x *expandable) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*x = ""
		return nil
	case b[0] == '"':
		var s string
		err := json.Unmarshal(b, &s)
		*x = expandable(s)
		return err
	}
	var o struct {
		ID string `json:"id"`
	}
	err := json.Unmarshal(b, &o)
	*x = expandable(o.ID)
	return err
}

// metadataValues reads Stripe-style metadata (string values; numbers and
// booleans are kept as their JSON text so nothing is silently dropped).
type metadata map[string]string

// UnmarshalJSON implements json.Unmarshaler.
func (m *metadata) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) == 0 {
		*m = nil
		return nil
	}
	out := make(metadata, len(raw))
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else if string(v) != "null" {
			out[k] = string(bytes.TrimSpace(v))
		}
	}
	*m = out
	return nil
}

// links surfaces the configured metadata keys as links, in key order.
func links(md metadata, keys []string) []domain.Link {
	var out []domain.Link
	for _, k := range keys {
		if v := md[k]; v != "" {
			out = append(out, domain.Link{Kind: k, Value: v})
		}
	}
	return out
}

// parsePositiveInt reads a positive integer written as a string (Stripe
// metadata values are strings).
func parsePositiveInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
