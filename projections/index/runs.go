package index

import (
	"slices"
	"sort"
)

// sortedSlots is an ordered set of slots, kept in sorted runs of at most
// maxRun slots so that an insert or a removal moves one run, not the
// whole set, and a seek is two binary searches (a B+-tree of height two).
// The runs are []uint32, which the garbage collector does not scan; only
// the run headers (one per up to 1024 slots) are pointers.
//
// The order is the caller's: every operation takes cmp, a total order of
// slots.
type sortedSlots struct {
	runs [][]uint32
	n    int
}

const maxRun = 1024

func (l *sortedSlots) len() int { return l.n }

// seekRun returns the first run whose last slot is at or after the
// position (at(slot) >= 0), len(runs) if none.
func (l *sortedSlots) seekRun(at func(slot uint32) bool) int {
	return sort.Search(len(l.runs), func(i int) bool { r := l.runs[i]; return at(r[len(r)-1]) })
}

// build replaces the set with sorted, in runs half full so that the
// inserts that follow split few of them. Each run is clipped to its own
// part of sorted, so growing one never writes into the next.
func (l *sortedSlots) build(sorted []uint32) {
	l.runs, l.n = nil, len(sorted)
	for run := range slices.Chunk(slices.Clone(sorted), maxRun/2) {
		l.runs = append(l.runs, slices.Clip(run))
	}
}

func (l *sortedSlots) insert(slot uint32, cmp func(a, b uint32) int) {
	if len(l.runs) == 0 {
		l.runs = [][]uint32{{slot}}
		l.n = 1
		return
	}
	at := func(o uint32) bool { return cmp(o, slot) >= 0 }
	ri := l.seekRun(at)
	if ri == len(l.runs) {
		ri--
	}
	r := l.runs[ri]
	i := sort.Search(len(r), func(i int) bool { return at(r[i]) })
	if i < len(r) && r[i] == slot {
		return
	}
	r = slices.Insert(r, i, slot)
	l.n++
	if len(r) > maxRun {
		half := len(r) / 2
		right := slices.Clone(r[half:])
		l.runs[ri] = slices.Clip(r[:half])
		l.runs = slices.Insert(l.runs, ri+1, right)
		return
	}
	l.runs[ri] = r
}

func (l *sortedSlots) remove(slot uint32, cmp func(a, b uint32) int) {
	at := func(o uint32) bool { return cmp(o, slot) >= 0 }
	ri := l.seekRun(at)
	if ri == len(l.runs) {
		return
	}
	r := l.runs[ri]
	i := sort.Search(len(r), func(i int) bool { return at(r[i]) })
	if i == len(r) || r[i] != slot {
		return
	}
	r = slices.Delete(r, i, i+1)
	l.n--
	switch {
	case len(r) == 0:
		l.runs = slices.Delete(l.runs, ri, ri+1)
	case ri+1 < len(l.runs) && len(r)+len(l.runs[ri+1]) <= maxRun/2:
		// Merge small neighbours, so that deletions do not leave many
		// tiny runs behind.
		l.runs[ri] = append(r, l.runs[ri+1]...)
		l.runs = slices.Delete(l.runs, ri+1, ri+2)
	default:
		l.runs[ri] = r
	}
}

// ascend calls fn with the slots from the first one at which from(slot)
// is true on, in order, until fn returns false. from must be monotone in
// the order (false, then true).
func (l *sortedSlots) ascend(from func(slot uint32) bool, fn func(slot uint32) bool) {
	ri := l.seekRun(from)
	if ri == len(l.runs) {
		return
	}
	r := l.runs[ri]
	i := sort.Search(len(r), func(i int) bool { return from(r[i]) })
	for ; ri < len(l.runs); ri, i = ri+1, 0 {
		for _, s := range l.runs[ri][i:] {
			if !fn(s) {
				return
			}
		}
	}
}

func (l *sortedSlots) bytes() int {
	n := 24 * cap(l.runs)
	for _, r := range l.runs {
		n += 4 * cap(r)
	}
	return n
}
