package attest

import "container/list"

// lru is a bounded least-recently-used map. It is not safe for concurrent
// use; its owners guard it with their own mutex.
type lru[K comparable, V any] struct {
	max int
	ll  *list.List // front is most recently used; elements hold *lruItem
	m   map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	key K
	val V
}

// newLRU returns an lru holding at most max entries (at least one).
func newLRU[K comparable, V any](max int) *lru[K, V] {
	if max < 1 {
		max = 1
	}
	return &lru[K, V]{max: max, ll: list.New(), m: make(map[K]*list.Element)}
}

// get returns the value for k and marks it most recently used.
func (l *lru[K, V]) get(k K) (V, bool) {
	if e, ok := l.m[k]; ok {
		l.ll.MoveToFront(e)
		return e.Value.(*lruItem[K, V]).val, true
	}
	var zero V
	return zero, false
}

// add sets the value for k, evicting the least recently used entry when
// the map is full.
func (l *lru[K, V]) add(k K, v V) {
	if e, ok := l.m[k]; ok {
		e.Value.(*lruItem[K, V]).val = v
		l.ll.MoveToFront(e)
		return
	}
	l.m[k] = l.ll.PushFront(&lruItem[K, V]{key: k, val: v})
	for l.ll.Len() > l.max {
		last := l.ll.Back()
		l.ll.Remove(last)
		delete(l.m, last.Value.(*lruItem[K, V]).key)
	}
}

// remove deletes k if present.
func (l *lru[K, V]) remove(k K) {
	if e, ok := l.m[k]; ok {
		l.ll.Remove(e)
		delete(l.m, k)
	}
}

// len returns the number of entries.
func (l *lru[K, V]) len() int { return l.ll.Len() }
