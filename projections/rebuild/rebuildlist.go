package rebuild

import (
	"context"
	"slices"
	"strings"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
)

// ListPage returns at most limit rebuilds and replays, newest first,
// starting after the one named after ("" for the newest), and the id to
// continue from ("" when none is older). It lists the bucket's keys, the
// ids, which sort by start time (to the second, then by their random
// part), and reads only the page's records, so a page costs the same
// however many rebuilds the bucket remembers.
func (rs *Rebuilds) ListPage(ctx context.Context, limit int, after string) ([]Rebuild, string, error) {
	if limit < 1 || limit > httpapi.MaxListLimit {
		return nil, "", domain.Errorf(domain.CodeBadRequest, "limit %d: want 1 to %d", limit, httpapi.MaxListLimit)
	}
	lister, err := rs.kv.ListKeys(ctx)
	if err != nil {
		return nil, "", domain.Wrap(domain.CodeStoreUnavailable, err, "rebuilds")
	}
	var ids []string
	for id := range lister.Keys() {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return compareRebuildIDs(b, a) })
	if after != "" {
		i, found := slices.BinarySearchFunc(ids, after, func(id, target string) int { return compareRebuildIDs(target, id) })
		if found {
			i++
		}
		ids = ids[i:]
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]Rebuild, 0, len(ids))
	for _, id := range ids {
		rb, _, err := rs.load(ctx, id)
		if domain.ErrorCode(err) == domain.CodeNotFound {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, *rb)
	}
	return out, next, nil
}

// compareRebuildIDs orders ids by start time: an id is "<kind>_<start
// time>_<random>", the kind ("re" or "rp") aside.
func compareRebuildIDs(a, b string) int {
	_, ta, _ := strings.Cut(a, "_")
	_, tb, _ := strings.Cut(b, "_")
	if c := strings.Compare(ta, tb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}
