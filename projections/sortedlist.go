package projections

import (
	"slices"
	"sort"
	"strings"
)

// pos is a subscription's place in the query order: provider, then id.
type pos struct{ provider, id string }

func comparePos(a, b pos) int {
	if c := strings.Compare(a.provider, b.provider); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// sortedList is an ordered set of subscription entries by pos, kept in
// blocks of at most maxBlock entries so an insert or a removal moves a
// block, not the whole set, and a seek is two binary searches. It is a
// small B+-tree of height two, enough for millions of entries.
type sortedList struct {
	blocks [][]*subEntry
	n      int
}

const maxBlock = 1024

func (l *sortedList) len() int { return l.n }

// block returns the index of the first block whose last entry is at or
// after p (inclusive) or strictly after p, and len(blocks) if none.
func (l *sortedList) block(p pos, strict bool) int {
	return sort.Search(len(l.blocks), func(i int) bool {
		b := l.blocks[i]
		c := comparePos(b[len(b)-1].pos(), p)
		if strict {
			return c > 0
		}
		return c >= 0
	})
}

func (l *sortedList) insert(e *subEntry) {
	p := e.pos()
	if len(l.blocks) == 0 {
		l.blocks = [][]*subEntry{{e}}
		l.n++
		return
	}
	bi := l.block(p, false)
	if bi == len(l.blocks) {
		bi--
	}
	b := l.blocks[bi]
	i, found := slices.BinarySearchFunc(b, p, func(x *subEntry, p pos) int { return comparePos(x.pos(), p) })
	if found {
		b[i] = e
		return
	}
	b = slices.Insert(b, i, e)
	l.n++
	if len(b) > maxBlock {
		half := len(b) / 2
		right := slices.Clone(b[half:])
		left := slices.Clip(b[:half])
		l.blocks[bi] = left
		l.blocks = slices.Insert(l.blocks, bi+1, right)
		return
	}
	l.blocks[bi] = b
}

func (l *sortedList) remove(e *subEntry) {
	p := e.pos()
	bi := l.block(p, false)
	if bi == len(l.blocks) {
		return
	}
	b := l.blocks[bi]
	i, found := slices.BinarySearchFunc(b, p, func(x *subEntry, p pos) int { return comparePos(x.pos(), p) })
	if !found {
		return
	}
	b = slices.Delete(b, i, i+1)
	l.n--
	if len(b) == 0 {
		l.blocks = slices.Delete(l.blocks, bi, bi+1)
		return
	}
	l.blocks[bi] = b
}

// ascend calls fn with the entries from p on (after p when strict), in
// order, until fn returns false.
func (l *sortedList) ascend(p pos, strict bool, fn func(*subEntry) bool) {
	bi := l.block(p, strict)
	if bi == len(l.blocks) {
		return
	}
	b := l.blocks[bi]
	i := sort.Search(len(b), func(i int) bool {
		c := comparePos(b[i].pos(), p)
		if strict {
			return c > 0
		}
		return c >= 0
	})
	for ; bi < len(l.blocks); bi, i = bi+1, 0 {
		for _, e := range l.blocks[bi][i:] {
			if !fn(e) {
				return
			}
		}
	}
}
