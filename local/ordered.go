package local

import "math/rand/v2"

// ordered is a skip list of keys in byte order, so that the keys sharing a
// prefix can be visited without scanning the rest. It is not safe for
// concurrent use: each orderedShard guards its own.
type ordered struct {
	head  node
	level int
}

const maxLevel = 24 // enough for 2^48 keys per set at p = 1/4

type node struct {
	key  string
	next []*node
}

func (o *ordered) init() {
	o.head.next = make([]*node, maxLevel)
	o.level = 1
}

func randomLevel() int {
	l := 1
	for l < maxLevel && rand.Uint32()&3 == 0 {
		l++
	}
	return l
}

// seek fills update with the last node before key at every level and
// returns the first node whose key is >= key.
func (o *ordered) seek(key string, update *[maxLevel]*node) *node {
	x := &o.head
	for i := o.level - 1; i >= 0; i-- {
		for x.next[i] != nil && x.next[i].key < key {
			x = x.next[i]
		}
		if update != nil {
			update[i] = x
		}
	}
	return x.next[0]
}

// insert adds key; adding a key already present does nothing.
func (o *ordered) insert(key string) {
	var update [maxLevel]*node
	if n := o.seek(key, &update); n != nil && n.key == key {
		return
	}
	l := randomLevel()
	for i := o.level; i < l; i++ {
		update[i] = &o.head
	}
	o.level = max(o.level, l)
	n := &node{key: key, next: make([]*node, l)}
	for i := 0; i < l; i++ {
		n.next[i] = update[i].next[i]
		update[i].next[i] = n
	}
}

// remove deletes key if present.
func (o *ordered) remove(key string) {
	var update [maxLevel]*node
	n := o.seek(key, &update)
	if n == nil || n.key != key {
		return
	}
	for i := 0; i < len(n.next); i++ {
		if update[i].next[i] == n {
			update[i].next[i] = n.next[i]
		}
	}
	for o.level > 1 && o.head.next[o.level-1] == nil {
		o.level--
	}
}

// ascendPrefix calls fn for every key that starts with prefix, in order,
// until fn returns false. fn must not modify the list.
func (o *ordered) ascendPrefix(prefix string, fn func(key string) bool) {
	for n := o.seek(prefix, nil); n != nil && len(n.key) >= len(prefix) && n.key[:len(prefix)] == prefix; n = n.next[0] {
		if !fn(n.key) {
			return
		}
	}
}
