package index

// chains relates keys (integer pairs) to owners (slot numbers), many to
// many, without pointers: each relation is a node, in a doubly linked
// chain of its key's nodes (so that removing one does not walk a key
// shared by many owners) and in a singly linked chain of its owner's
// nodes (an owner has few, all removed at once).
type chains struct {
	heads map[uint64]uint32 // key → its first node
	nodes []chainNode
	free  []uint32
}

type chainNode struct {
	key         uint64
	owner       uint32
	prev, next  uint32 // in the key's chain; none at its ends
	nextOfOwner uint32
}

func newChains() chains { return chains{heads: map[uint64]uint32{}} }

// add relates key to owner, whose chain of nodes starts at ownerHead
// (none for an owner without any), and returns the owner's new first
// node.
func (c *chains) add(key uint64, owner, ownerHead uint32) uint32 {
	n := takeSlot(&c.nodes, &c.free)
	next, ok := c.heads[key]
	if !ok {
		next = none
	} else {
		c.nodes[next].prev = n
	}
	c.heads[key] = n
	c.nodes[n] = chainNode{key: key, owner: owner, prev: none, next: next, nextOfOwner: ownerHead}
	return n
}

// removeOwner removes every node of the owner chain that starts at head.
func (c *chains) removeOwner(head uint32) {
	for n := head; n != none; {
		e := c.nodes[n]
		if e.prev == none {
			if e.next == none {
				delete(c.heads, e.key)
			} else {
				c.heads[e.key] = e.next
			}
		} else {
			c.nodes[e.prev].next = e.next
		}
		if e.next != none {
			c.nodes[e.next].prev = e.prev
		}
		c.nodes[n] = chainNode{}
		c.free = append(c.free, n)
		n = e.nextOfOwner
	}
}

// each calls fn with every owner related to key.
func (c *chains) each(key uint64, fn func(owner uint32)) {
	n, ok := c.heads[key]
	for ok && n != none {
		fn(c.nodes[n].owner)
		n = c.nodes[n].next
	}
}

// ownerKeys calls fn with the key of every node of the owner chain that
// starts at head.
func (c *chains) ownerKeys(head uint32, fn func(key uint64)) {
	for n := head; n != none; n = c.nodes[n].nextOfOwner {
		fn(c.nodes[n].key)
	}
}

func (c *chains) bytes() int {
	return 24*cap(c.nodes) + 4*cap(c.free) + 32*len(c.heads)
}
