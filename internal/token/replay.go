package token

import (
	"container/heap"
	"errors"
	"sync"
	"time"
)

// ErrReplayCacheFull reports that a [ReplayCache] holds its maximum of
// unexpired entries; the caller must refuse the token (fail closed).
var ErrReplayCacheFull = errors.New("replay cache full")

// ReplayCache remembers ids (access token jti, DPoP proof jti) until they
// expire, so that each is accepted once. It is bounded: when it holds Max
// unexpired ids it refuses new ones rather than forgetting a live one. It
// is safe for concurrent use.
type ReplayCache struct {
	max  int
	mu   sync.Mutex
	seen map[string]time.Time
	exp  expiryHeap
}

// NewReplayCache returns a cache holding at most max unexpired ids
// (default 1,000,000 when max <= 0).
func NewReplayCache(max int) *ReplayCache {
	if max <= 0 {
		max = 1_000_000
	}
	return &ReplayCache{max: max, seen: map[string]time.Time{}}
}

// Use records id as used until expires and reports whether this is its
// first use at now. It returns [ErrReplayCacheFull] when id is new but the
// cache has no room.
func (c *ReplayCache) Use(id string, expires, now time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.exp) > 0 && !c.exp[0].at.After(now) {
		e := heap.Pop(&c.exp).(expiryEntry)
		if at, ok := c.seen[e.id]; ok && !at.After(now) {
			delete(c.seen, e.id)
		}
	}
	if at, ok := c.seen[id]; ok && at.After(now) {
		return false, nil
	}
	if len(c.seen) >= c.max {
		return false, ErrReplayCacheFull
	}
	c.seen[id] = expires
	heap.Push(&c.exp, expiryEntry{id: id, at: expires})
	return true, nil
}

// Len returns the number of remembered ids.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiryEntry struct {
	id string
	at time.Time
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
