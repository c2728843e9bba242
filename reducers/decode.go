package reducers

import (
	"encoding/json"
	"strconv"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/stripewire"
)

// decodeObject decodes a provider object into v.
func decodeObject(ev *domain.Envelope, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return domain.Wrap(domain.CodeReducerDecode, err, string(ev.Provider)+" "+ev.EventType+" "+ev.EventID)
	}
	return nil
}

// metadata is Stripe-style metadata (stripewire.Metadata).
type metadata = stripewire.Metadata

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
