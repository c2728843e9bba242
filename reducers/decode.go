package reducers

import (
	"strconv"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/stripewire"
)

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
