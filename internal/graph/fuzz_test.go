package graph

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// FuzzFold feeds hostile stored events to the builder and queries the
// result: records may be skipped, nothing may panic, and every access
// folded appears once in the counts.
func FuzzFold(f *testing.F) {
	f.Add([]byte(`{"id":"e1","time":"2026-05-01T00:00:00Z","type":"access.allowed","spiffe_id":"spiffe://writ.local/a","target":"MCPServer/x","details":{"tool":"t","via":"token","approval":"a1"}}`))
	f.Add([]byte(`{"id":"e2","time":"0001-01-01T00:00:00Z","type":"access.denied","target":"/","details":{"service":"","resource":"r"}}`))
	f.Add([]byte(`{"id":"e3","time":"9999-12-31T23:59:59Z","type":"access.denied","task":"t\u0000","on_behalf_of":"\u2028"}`))
	f.Add([]byte(`{"type":"access.allowed"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tl := newTestLog(t)
		l := &Lineage{Builder: &Builder{Log: memRecords{data, data}, Facts: tl.db}}
		g, err := l.Query(context.Background(), Query{})
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		var reached int64
		for _, e := range g.Edges {
			if e.Kind == EdgeReached {
				reached += e.Allowed + e.Denied
			}
		}
		if reached != 0 && reached != 2 {
			t.Fatalf("%d accesses reached, want 0 or 2", reached)
		}
	})
}

// FuzzQueryCheck: any query Check accepts runs against a store without
// error.
func FuzzQueryCheck(f *testing.F) {
	f.Add("spiffe://writ.local/a", "task_1", "service:x", int64(0), int64(3600), 0)
	f.Add("%' OR 1=1 --", "", "credential:a:b", int64(-1), int64(-2), -1)
	f.Add("", "\xff", "x", int64(1<<40), int64(1<<41), 1<<30)
	f.Fuzz(func(t *testing.T, identity, task, to string, since, until int64, maxPaths int) {
		q := Query{Identity: identity, Task: task, To: to, MaxPaths: maxPaths}
		if since != 0 {
			q.Since = time.Unix(since, 0)
		}
		if until != 0 {
			q.Until = time.Unix(until, 0)
		}
		if q.Check() != nil {
			return
		}
		tl := newTestLog(t)
		tl.db.AddLineage(context.Background(), 0, 0, []store.LineageFact{{Hour: t0, Identity: identity, Task: task, TargetKind: store.TargetService, Target: "x"}})
		if _, err := tl.lineage().Query(context.Background(), q); err != nil {
			t.Fatalf("Query(%+v): %v", q, err)
		}
	})
}
