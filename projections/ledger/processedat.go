package ledger

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// processedAt is when projection stored the first record write that the
// fold of env made: every write carries its event's journal sequence
// (kvstore.HeaderJournalSequence), and the store keeps each record's recent
// revisions (at most 64). It looks at the records the projection names for
// the event (reducers.KeyHinter); nil when none of them holds such a write (the fold changed nothing, or later writes pushed it
// out of the history).
func (l *Ledger) processedAt(ctx context.Context, projection string, env *domain.Envelope) *time.Time {
	hinter, ok := l.engine.Projection(projection).(reducers.KeyHinter)
	store := l.engine.Store(projection)
	if !ok || store == nil {
		return nil
	}
	stream, err := l.js.Stream(ctx, domain.BucketStream(store.Bucket()))
	if err != nil {
		return nil
	}
	var first *time.Time
	for _, key := range hinter.Keys(env) {
		history, err := store.History(ctx, key)
		if err != nil {
			continue
		}
		for _, rev := range slices.Backward(history) {
			m, err := stream.GetMsg(ctx, rev.Revision())
			if err != nil {
				break
			}
			// Writes are not in journal order (a requeue or a scheduled
			// retry writes late), so the whole history is looked at.
			seq, _ := strconv.ParseUint(m.Header.Get(kvstore.HeaderJournalSequence), 10, 64)
			if seq == env.Sequence && (first == nil || m.Time.Before(*first)) {
				t := m.Time.UTC()
				first = &t
			}
		}
	}
	return first
}
