package query

import (
	"context"
	"maps"
	"slices"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
)

// DeadLetterCode sums up the open dead letters of one code: how many, in
// which projections, and the newest of them.
type DeadLetterCode struct {
	Code        domain.Code
	Count       int
	Projections map[string]int
	Newest      deadletter.Letter
}

// OpenDeadLetterCodes sums up the open dead letters by code, in code
// order, from the in-memory index: it reads one dead letter per code (the
// newest), however many are open.
func (q *Query) OpenDeadLetterCodes(ctx context.Context) ([]DeadLetterCode, error) {
	if err := waitLoaded(ctx, q.deadLetters.loaded); err != nil {
		return nil, err
	}
	byCode := map[domain.Code]*DeadLetterCode{}
	newest := map[domain.Code]openDeadLetter{}
	q.deadLetters.mu.RLock()
	for _, o := range q.deadLetters.open {
		c := byCode[o.code]
		if c == nil {
			c = &DeadLetterCode{Code: o.code, Projections: map[string]int{}}
			byCode[o.code] = c
		}
		c.Count++
		c.Projections[o.projection]++
		if n, ok := newest[o.code]; !ok || o.failedAt.After(n.failedAt) || o.failedAt.Equal(n.failedAt) && o.subject > n.subject {
			newest[o.code] = o
		}
	}
	q.deadLetters.mu.RUnlock()
	if len(byCode) == 0 {
		return nil, nil
	}
	subjects := make([]string, 0, len(newest))
	for _, o := range newest {
		subjects = append(subjects, o.subject)
	}
	read, err := deadletter.Letters{JS: q.js}.Latest(ctx, subjects)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetterCode, 0, len(byCode))
	for _, code := range slices.Sorted(maps.Keys(byCode)) {
		c := byCode[code]
		if dl := read[newest[code].subject]; dl != nil {
			c.Newest = *dl
		}
		out = append(out, *c)
	}
	return out, nil
}
