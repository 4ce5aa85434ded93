package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// TestSpool: events are durable before Emit returns, delivered in order,
// kept while the server fails, and never lost across a crash; the mark
// moves only after the server acknowledged a batch.
func TestSpool(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	s, err := OpenSpool(dir, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []audit.Type{"a", "b", "c"} {
		if err := s.Emit(ctx, audit.Event{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	// The link is down: nothing is acknowledged, nothing dropped.
	s2, err := OpenSpool(dir, func() time.Time { return t0 }) // as after a crash
	if err != nil {
		t.Fatal(err)
	}
	if s2.Pending() != s.Pending() || s.Pending() == 0 {
		t.Fatalf("pending after reopen %d, before %d", s2.Pending(), s.Pending())
	}
	s2.Close()

	var mu sync.Mutex
	var got []audit.Event
	failures := 2
	deliver := func(_ context.Context, es []audit.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, es...) // the server may record a batch and lose the answer
		if failures > 0 {
			failures--
			return errors.New("link down")
		}
		return nil
	}
	done := make(chan struct{})
	go func() { s.Send(ctx, slog.New(slog.DiscardHandler), deliver); close(done) }()
	for s.Pending() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	// Resent batches carry the same ids: the server deduplicates them.
	ids := map[string]int{}
	var order []audit.Type
	for _, e := range got {
		if ids[e.ID] == 0 {
			order = append(order, e.Type)
		}
		ids[e.ID]++
		if e.ID == "" || e.Time.IsZero() {
			t.Errorf("event without id or time: %+v", e)
		}
	}
	if len(ids) != 3 || len(order) != 3 || order[0] != "a" || order[2] != "c" {
		t.Errorf("delivered %v (ids %v), want a, b, c", order, ids)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "events")); fi.Size() != 0 {
		t.Errorf("the acknowledged spool was not truncated: %d bytes", fi.Size())
	}
}

// TestSpoolTornTail: a line cut by a crash mid-append (never acknowledged
// to its emitter) is dropped; the events before it are kept.
func TestSpoolTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	s.Emit(context.Background(), audit.Event{Type: "a"})
	s.Close()
	f, _ := os.OpenFile(filepath.Join(dir, "events"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"evt_torn","ty`)
	f.Close()
	s, err = OpenSpool(dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es, _, err := s.next(10)
	if err != nil || len(es) != 1 || es[0].Type != "a" {
		t.Errorf("after a torn tail: %+v, %v", es, err)
	}
	if err := s.Emit(context.Background(), audit.Event{Type: "b"}); err != nil {
		t.Fatal(err)
	}
	if es, _, _ := s.next(10); len(es) != 2 {
		t.Errorf("after appending to a trimmed spool: %d events", len(es))
	}
}
