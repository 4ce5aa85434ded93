package nodeserver

import (
	"context"
	"sync"

	"github.com/writ-dev/writ/internal/store"
)

// hubRing is how many recent changes the hub keeps in memory: a node less
// than this far behind is served without reading the store.
const hubRing = 4096

// Hub fans the change feed out to every node stream of this server. It
// reads the store once per wake-up, however many nodes are connected, and
// keeps the latest changes in memory. Wake it with [Hub.Poke] after an
// append (the publisher does) or when another server announced one
// (PostgreSQL LISTEN/NOTIFY).
type Hub struct {
	store store.Changes

	mu    sync.Mutex
	ring  []store.Change // ascending Seq, at most hubRing: every change in (floor, last]
	floor int64
	last  int64         // highest Seq read
	wake  chan struct{} // closed and replaced when last moves
}

// NewHub starts a hub at the store's current end.
func NewHub(ctx context.Context, s store.Changes) (*Hub, error) {
	last, err := s.LastChange(ctx)
	if err != nil {
		return nil, err
	}
	return &Hub{store: s, floor: last, last: last, wake: make(chan struct{})}, nil
}

// Poke reads what was appended since the hub's last read and wakes the
// streams.
func (h *Hub) Poke(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		page, err := h.store.ChangesSince(ctx, h.last, 512)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		h.ring = append(h.ring, page...)
		if over := len(h.ring) - hubRing; over > 0 {
			h.floor = h.ring[over-1].Seq
			h.ring = append(h.ring[:0:0], h.ring[over:]...)
		}
		h.last = page[len(page)-1].Seq
		close(h.wake)
		h.wake = make(chan struct{})
	}
}

// Last returns the highest sequence the hub has read.
func (h *Hub) Last() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// since returns the changes after seq that the hub holds and a channel
// closed when more arrive; behind is set when the hub no longer holds
// the changes right after seq (the reader goes to the store).
func (h *Hub) since(seq int64) (out []store.Change, behind bool, wake <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq < h.floor {
		return nil, true, h.wake
	}
	i := 0
	for i < len(h.ring) && h.ring[i].Seq <= seq {
		i++
	}
	return append([]store.Change(nil), h.ring[i:]...), false, h.wake
}
