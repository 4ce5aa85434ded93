package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// RunLineage runs the conformance tests of [store.Lineage].
func RunLineage(t *testing.T, open Opener) {
	t.Run("Lineage", func(t *testing.T) { testLineage(t, open(t)) })
	t.Run("LineageCursor", func(t *testing.T) { testLineageCursor(t, open(t)) })
	t.Run("LineageCursorRace", func(t *testing.T) { testLineageCursorRace(t, open(t)) })
	t.Run("LineageAllTime", func(t *testing.T) { testLineageAllTime(t, open(t)) })
	t.Run("LineageDaily", func(t *testing.T) { testLineageDaily(t, open(t)) })
	t.Run("LineagePaths", func(t *testing.T) { testLineagePaths(t, open(t)) })
}

// testLineageAllTime: the all-time rollup's facts (Hour
// store.LineageAllTime) are read by AllTime queries only, summed by
// AddLineage like any hour's, and left out of every other query.
func testLineageAllTime(t *testing.T, s store.Store) {
	ctx := context.Background()
	h0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	hourly := store.LineageFact{Hour: h0, Identity: "spiffe://writ.local/agent/a", Instance: "inst_1", Via: "process",
		TargetKind: store.TargetService, Target: "mail", Allowed: 3, Denied: 1, FirstSeen: h0.Add(time.Minute), LastSeen: h0.Add(2 * time.Minute)}
	rollup := hourly
	rollup.Hour = store.LineageAllTime
	if err := s.AddLineage(ctx, 0, 4, []store.LineageFact{hourly, rollup}); err != nil {
		t.Fatal(err)
	}
	later := hourly
	later.Hour, later.Allowed, later.Denied, later.FirstSeen, later.LastSeen = h0.Add(time.Hour), 2, 0, h0.Add(61*time.Minute), h0.Add(62*time.Minute)
	rollup2 := later
	rollup2.Hour = store.LineageAllTime
	if err := s.AddLineage(ctx, 4, 6, []store.LineageFact{later, rollup2}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []store.LineageFilter{{}, {AllTime: true}, {Identity: "spiffe://writ.local/agent/a", AllTime: true}, {Since: h0}, {Until: h0.Add(3 * time.Hour)}} {
		got, err := s.ListLineage(ctx, f)
		if err != nil {
			t.Fatalf("ListLineage(%+v): %v", f, err)
		}
		if len(got) != 1 || got[0].Allowed != 5 || got[0].Denied != 1 || !got[0].FirstSeen.Equal(h0.Add(time.Minute)) ||
			!got[0].LastSeen.Equal(h0.Add(62*time.Minute)) || got[0].Instance != "inst_1" {
			t.Errorf("ListLineage(%+v) = %+v, want one path of 5 allowed and 1 denied", f, got)
		}
	}
	if got, err := s.ListLineage(ctx, store.LineageFilter{AllTime: true, Target: "other"}); err != nil || len(got) != 0 {
		t.Errorf("AllTime with another target = %+v, %v", got, err)
	}
}

func testLineage(t *testing.T, s store.Store) {
	ctx := context.Background()
	h0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	mail := store.LineageFact{Hour: h0, User: "ann@example.com", Identity: "spiffe://writ.local/agent/mail", Instance: "inst_1",
		Task: "task_1", Via: "process", TargetKind: store.TargetService, Target: "mail", Credential: "mail-key",
		Allowed: 3, Denied: 1, FirstSeen: h0.Add(time.Minute), LastSeen: h0.Add(50 * time.Minute)}
	tool := store.LineageFact{Hour: h0, Identity: "spiffe://writ.local/agent/mailx", Instance: "inst_2", Via: "token",
		TargetKind: store.TargetMCPServer, Target: "files", Tool: "read_file", Denied: 2, Held: 1, ApprovedBy: "admin:bob",
		FirstSeen: h0.Add(2 * time.Minute), LastSeen: h0.Add(3 * time.Minute)}
	if err := s.AddLineage(ctx, 0, 10, []store.LineageFact{mail, tool}); err != nil {
		t.Fatalf("AddLineage: %v", err)
	}
	// The same path again in the same hour sums; in the next hour it is
	// a row of its own that a window can leave out.
	again := mail
	again.Allowed, again.Denied, again.FirstSeen, again.LastSeen = 2, 0, h0.Add(30*time.Second), h0.Add(40*time.Minute)
	later := mail
	later.Hour, later.Allowed, later.Denied, later.FirstSeen, later.LastSeen = h0.Add(time.Hour), 5, 0, h0.Add(70*time.Minute), h0.Add(80*time.Minute)
	if err := s.AddLineage(ctx, 10, 25, []store.LineageFact{again, later}); err != nil {
		t.Fatalf("AddLineage again: %v", err)
	}
	c, err := s.GetCursor(ctx, store.CursorLineage)
	if err != nil || c.Next != 25 {
		t.Fatalf("GetCursor = %+v, %v; want next 25", c, err)
	}

	all, err := s.ListLineage(ctx, store.LineageFilter{})
	if err != nil {
		t.Fatalf("ListLineage: %v", err)
	}
	if len(all) != 2 {
		t.Fatalf("ListLineage = %+v, want two paths", all)
	}
	m := all[0]
	if m.Target != "mail" || m.Allowed != 10 || m.Denied != 1 || !m.FirstSeen.Equal(h0.Add(30*time.Second)) || !m.LastSeen.Equal(h0.Add(80*time.Minute)) ||
		m.User != mail.User || m.Instance != "inst_1" || m.Task != "task_1" || m.Via != "process" || m.Credential != "mail-key" || !m.Hour.IsZero() {
		t.Errorf("mail path = %+v", m)
	}
	if f := all[1]; f.Tool != "read_file" || f.TargetKind != store.TargetMCPServer || f.Held != 1 || f.Denied != 2 || f.ApprovedBy != "admin:bob" {
		t.Errorf("tool path = %+v", f)
	}
	for _, tc := range []struct {
		name string
		f    store.LineageFilter
		want int64 // allowed+denied
	}{
		{"first hour", store.LineageFilter{Since: h0, Until: h0.Add(time.Hour)}, 6 + 2},
		{"window widened to whole hours", store.LineageFilter{Since: h0.Add(65 * time.Minute), Until: h0.Add(66 * time.Minute)}, 5},
		{"identity exact", store.LineageFilter{Identity: "spiffe://writ.local/agent/mail"}, 11},
		{"identity prefix is a path", store.LineageFilter{Identity: "spiffe://writ.local/agent"}, 13},
		{"identity prefix is not a string prefix", store.LineageFilter{Identity: "spiffe://writ.local/agent/mai"}, 0},
		{"task", store.LineageFilter{Task: "task_1"}, 11},
		{"credential", store.LineageFilter{Credential: "mail-key"}, 11},
		{"target", store.LineageFilter{Target: "files"}, 2},
		{"user", store.LineageFilter{User: "ann@example.com"}, 11},
		{"instance", store.LineageFilter{Instance: "inst_2"}, 2},
		{"nothing", store.LineageFilter{Task: "task_nope"}, 0},
		{"hostile identity", store.LineageFilter{Identity: "%' OR 1=1 --"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListLineage(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, f := range got {
				n += f.Allowed + f.Denied
			}
			if n != tc.want {
				t.Errorf("ListLineage(%+v) counts %d accesses, want %d: %+v", tc.f, n, tc.want, got)
			}
		})
	}
	if got, err := s.ListLineage(ctx, store.LineageFilter{Limit: 1}); err != nil || len(got) != 1 {
		t.Errorf("ListLineage with limit 1 = %d facts, %v", len(got), err)
	}
}

func testLineageCursor(t *testing.T, s store.Store) {
	ctx := context.Background()
	if c, err := s.GetCursor(ctx, store.CursorLineage); err != nil || c.Next != 0 || c.State != nil {
		t.Fatalf("fresh cursor = %+v, %v", c, err)
	}
	f := store.LineageFact{Hour: time.Unix(3600, 0), Identity: "x", TargetKind: store.TargetService, Target: "s", Allowed: 1,
		FirstSeen: time.Unix(3601, 0), LastSeen: time.Unix(3601, 0)}
	if err := s.AddLineage(ctx, 0, 5, []store.LineageFact{f}); err != nil {
		t.Fatal(err)
	}
	// A second writer that read the cursor at 0 stores nothing.
	if err := s.AddLineage(ctx, 0, 5, []store.LineageFact{f}); !errors.Is(err, store.ErrCursorMoved) {
		t.Fatalf("AddLineage from a stale cursor: %v, want ErrCursorMoved", err)
	}
	if err := s.AddLineage(ctx, 5, 4, nil); err == nil {
		t.Fatal("AddLineage moving the cursor back succeeded")
	}
	got, err := s.ListLineage(ctx, store.LineageFilter{})
	if err != nil || len(got) != 1 || got[0].Allowed != 1 {
		t.Fatalf("after a refused stale write: %+v, %v", got, err)
	}
	if c, err := s.GetCursor(ctx, store.CursorLineage); err != nil || c.Next != 5 {
		t.Fatalf("cursor = %+v, %v", c, err)
	}
}

// testLineageCursorRace: writers that read the cursor at the same place
// (servers folding the same events in) race; exactly one stores its
// facts, every other gets ErrCursorMoved, and nothing is counted twice.
func testLineageCursorRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	f := store.LineageFact{Hour: time.Unix(7200, 0), Identity: "x", TargetKind: store.TargetService, Target: "s", Allowed: 1,
		FirstSeen: time.Unix(7201, 0), LastSeen: time.Unix(7201, 0)}
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.AddLineage(ctx, 0, 3, []store.LineageFact{f})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrCursorMoved):
			t.Errorf("racing AddLineage: %v, want nil or ErrCursorMoved", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d racing writers stored their facts, want exactly 1", won)
	}
	got, err := s.ListLineage(ctx, store.LineageFilter{})
	if err != nil || len(got) != 1 || got[0].Allowed != 1 {
		t.Fatalf("after the race: %+v, %v; want one path counted once", got, err)
	}
}
