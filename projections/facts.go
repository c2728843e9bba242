package projections

import (
	"sync"

	"github.com/billfold/billfold/domain"
)

// factsWindow is how many journal events' decoded payloads the projectors
// of one engine share. The projectors of the four projections read the
// same journal at about the same pace, each from its own consumer; the
// first to fold an event decodes its payload and the others, if within
// this many events, reuse it.
const factsWindow = 4096

// sharedFacts hands the projectors of one engine the same domain.Facts for
// the same journal event, so its payload is decoded once however many
// projections fold it. It holds the last factsWindow events' facts.
type sharedFacts struct {
	mu    sync.Mutex
	bySeq map[uint64]*domain.Facts
	ring  [factsWindow]uint64 // sequences in the order they were added
	next  int
}

func newSharedFacts() *sharedFacts {
	return &sharedFacts{bySeq: make(map[uint64]*domain.Facts, factsWindow)}
}

// of returns the facts of the journal event at seq.
func (s *sharedFacts) of(seq uint64) *domain.Facts {
	if s == nil {
		return new(domain.Facts)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.bySeq[seq]; ok {
		return f
	}
	if old := s.ring[s.next]; old != 0 {
		delete(s.bySeq, old)
	}
	f := new(domain.Facts)
	s.bySeq[seq], s.ring[s.next] = f, seq
	s.next = (s.next + 1) % factsWindow
	return f
}
