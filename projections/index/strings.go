package index

import (
	"hash/maphash"
	"unsafe"
)

// stringSet interns strings in one append-only byte arena. A string's id
// is its number in order of first interning; its bytes are
// arena[start(id):ends[id]]. Lookups go through an open-addressing hash
// table of ids, so no Go string header (a pointer) is kept per string.
//
// Interned strings are never removed: an index lives for one generation
// of the projection stores, and the strings it sees in that time (record
// ids, customer ids, providers) are bounded by the records it indexed.
type stringSet struct {
	arena []byte
	ends  []int
	table []uint32 // 0: empty; otherwise id+1
	seed  maphash.Seed
}

func newStringSet() *stringSet {
	return &stringSet{table: make([]uint32, 64), seed: maphash.MakeSeed()}
}

func (s *stringSet) len() int { return len(s.ends) }

// str returns the string with id. It shares the arena's bytes, which are
// never written again once appended (growing the arena copies them and
// leaves the old array as it was), so the string stays valid for as long
// as it is held.
func (s *stringSet) str(id uint32) string {
	start := 0
	if id > 0 {
		start = s.ends[id-1]
	}
	b := s.arena[start:s.ends[id]]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// lookup returns the id of str, if it is interned.
func (s *stringSet) lookup(str string) (uint32, bool) {
	mask := uint64(len(s.table) - 1)
	for i := maphash.String(s.seed, str) & mask; ; i = (i + 1) & mask {
		v := s.table[i]
		if v == 0 {
			return 0, false
		}
		if s.str(v-1) == str {
			return v - 1, true
		}
	}
}

// intern returns the id of str, adding it if it is new.
func (s *stringSet) intern(str string) uint32 {
	if id, ok := s.lookup(str); ok {
		return id
	}
	if 2*(len(s.ends)+1) > len(s.table) {
		s.grow()
	}
	id := uint32(len(s.ends))
	s.arena = append(s.arena, str...)
	s.ends = append(s.ends, len(s.arena))
	s.place(id)
	return id
}

func (s *stringSet) place(id uint32) {
	mask := uint64(len(s.table) - 1)
	i := maphash.String(s.seed, s.str(id)) & mask
	for s.table[i] != 0 {
		i = (i + 1) & mask
	}
	s.table[i] = id + 1
}

// grow doubles the hash table, keeping it at most half full.
func (s *stringSet) grow() {
	s.table = make([]uint32, 2*len(s.table))
	for id := range uint32(len(s.ends)) {
		s.place(id)
	}
}

// bytes is the memory the set holds, for the index's size report.
func (s *stringSet) bytes() int {
	return cap(s.arena) + 8*cap(s.ends) + 4*cap(s.table)
}
