package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// dailyBase is the first hour of the random facts: a Tuesday, so windows
// cross day (and week) boundaries.
var dailyBase = time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)

// randomFacts returns n hourly facts over days days from dailyBase, with
// paths drawn from a few values per column so that paths repeat across
// hours and days, in batches as a builder would add them (the same path
// and hour may come again in a later batch).
func randomFacts(r *rand.Rand, n, days int) [][]store.LineageFact {
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	var batches [][]store.LineageFact
	var batch []store.LineageFact
	for range n {
		hour := dailyBase.Add(time.Duration(r.IntN(days*24)) * time.Hour)
		first := hour.Add(time.Duration(r.Int64N(int64(time.Hour))))
		last := first.Add(time.Duration(r.Int64N(int64(hour.Add(time.Hour).Sub(first)))))
		f := store.LineageFact{Hour: hour, User: pick("", "ann@example.com", "bob@example.com"),
			Identity: pick("spiffe://writ.local/agent/a", "spiffe://writ.local/agent/a/x", "spiffe://writ.local/agent/b"),
			Instance: pick("", "inst_1", "inst_2"), Task: pick("", "task_1"), Via: pick("process", "token", "mtls"),
			TargetKind: pick(store.TargetService, store.TargetMCPServer), Target: pick("mail", "files", "db"),
			Tool: pick("", "read"), Credential: pick("", "mail-key"), ApprovedBy: pick("", "admin:bob"),
			Allowed: r.Int64N(5), Denied: r.Int64N(3), Held: r.Int64N(2), FirstSeen: first, LastSeen: last}
		batch = append(batch, f)
		if r.IntN(40) == 0 {
			batches = append(batches, batch)
			batch = nil
		}
	}
	return append(batches, batch)
}

// addBatches adds batches with a moving cursor, each batch with its
// all-time rollup share as internal/graph writes it.
func addBatches(t *testing.T, s store.Store, batches [][]store.LineageFact) {
	t.Helper()
	ctx := context.Background()
	cur, err := s.GetCursor(ctx, store.CursorLineage)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		next := cur.Next + int64(len(b))
		if err := s.AddLineage(ctx, cur.Next, next, b); err != nil {
			t.Fatalf("AddLineage: %v", err)
		}
		cur.Next = next
	}
}

// randomWindow returns a filter with a random window around dailyBase's
// days: open ends, instants inside hours, exact hour and day boundaries,
// windows inside one day, and a random path filter.
func randomWindow(r *rand.Rand, days int) store.LineageFilter {
	span := time.Duration(days+2) * 24 * time.Hour
	instant := func() time.Time {
		t := dailyBase.Add(-24*time.Hour + time.Duration(r.Int64N(int64(span))))
		switch r.IntN(4) {
		case 0:
			return t.Truncate(time.Hour)
		case 1:
			return t.Truncate(24 * time.Hour)
		}
		return t
	}
	var f store.LineageFilter
	if r.IntN(5) != 0 {
		f.Since = instant()
	}
	if r.IntN(5) != 0 {
		f.Until = instant()
		if r.IntN(3) == 0 && !f.Since.IsZero() {
			f.Until = f.Since.Add(time.Duration(r.Int64N(int64(30 * time.Hour))))
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		f.Since, f.Until = f.Until, f.Since.Add(time.Nanosecond)
	}
	switch r.IntN(8) {
	case 0:
		f.Identity = "spiffe://writ.local/agent/a"
	case 1:
		f.Target = "mail"
	case 2:
		f.Credential = "mail-key"
	case 3:
		f.User = "ann@example.com"
	case 4:
		f.Task, f.Instance = "task_1", "inst_2"
	}
	return f
}

// sortedFacts orders facts by every path column (the stores' order leaves
// ties between paths differing in target kind only).
func sortedFacts(fs []store.LineageFact) []store.LineageFact {
	fs = slices.Clone(fs)
	key := func(f store.LineageFact) string {
		return fmt.Sprintf("%q", []string{f.Identity, f.Target, f.TargetKind, f.Tool, f.Instance, f.Task, f.User, f.Via, f.Credential, f.ApprovedBy})
	}
	slices.SortFunc(fs, func(a, b store.LineageFact) int { return cmp.Compare(key(a), key(b)) })
	return fs
}

// sameAsHourly fails t unless f's answer equals the sum over every hour
// of its window (f.HourlyOnly).
func sameAsHourly(t *testing.T, s store.Store, f store.LineageFilter) {
	t.Helper()
	ctx := context.Background()
	got, err := s.ListLineage(ctx, f)
	if err != nil {
		t.Fatalf("ListLineage(%+v): %v", f, err)
	}
	h := f
	h.HourlyOnly = true
	want, err := s.ListLineage(ctx, h)
	if err != nil {
		t.Fatalf("ListLineage(%+v): %v", h, err)
	}
	checkOrder(t, fmt.Sprintf("ListLineage(%+v)", f), got)
	checkOrder(t, fmt.Sprintf("ListLineage(%+v)", h), want)
	got, want = sortedFacts(got), sortedFacts(want)
	if len(got) != len(want) {
		t.Fatalf("window %v – %v filter %+v: %d paths from the daily rollup, %d summing hours", f.Since, f.Until, f, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] || !got[i].FirstSeen.Equal(want[i].FirstSeen) || !got[i].LastSeen.Equal(want[i].LastSeen) {
			t.Fatalf("window %v – %v filter %+v: path %d is %+v from the daily rollup, %+v summing hours", f.Since, f.Until, f, i, got[i], want[i])
		}
	}
}

// testLineageDaily: every window's answer (whole days from the daily
// rollup, the hours at its ends from the hourly facts) equals the sum of
// the window's hourly facts, for random facts and random windows; and a
// window of whole days reads the days' sums.
func testLineageDaily(t *testing.T, s store.Store) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	const days = 6
	addBatches(t, s, randomFacts(r, 600, days))
	for range 60 {
		sameAsHourly(t, s, randomWindow(r, days))
	}
	for _, f := range []store.LineageFilter{{}, {Since: dailyBase}, {Until: dailyBase.Add(48 * time.Hour)},
		{Since: dailyBase.Add(24 * time.Hour), Until: dailyBase.Add(72 * time.Hour)},
		{Since: dailyBase.Add(23 * time.Hour), Until: dailyBase.Add(49 * time.Hour)},
		{Since: dailyBase.Add(25*time.Hour + time.Minute), Until: dailyBase.Add(47*time.Hour + time.Second)}} {
		sameAsHourly(t, s, f)
	}

	// Exact sums of a window of whole days, and the hours at its ends.
	ctx := context.Background()
	path := store.LineageFact{Identity: "spiffe://writ.local/agent/daily", Via: "process", TargetKind: store.TargetService, Target: "daily"}
	at := func(h int, allowed int64) store.LineageFact {
		f := path
		f.Hour = dailyBase.Add(time.Duration(h) * time.Hour)
		f.Allowed, f.FirstSeen, f.LastSeen = allowed, f.Hour.Add(time.Minute), f.Hour.Add(2*time.Minute)
		return f
	}
	addBatches(t, s, [][]store.LineageFact{{at(23, 1), at(24, 10), at(30, 100), at(47, 1000), at(48, 10000)}, {at(24, 20000)}})
	for _, tc := range []struct {
		since, until int
		want         int64
	}{{24, 48, 21110}, {23, 48, 21111}, {23, 49, 31111}, {0, 24, 1}, {25, 47, 100}, {47, 72, 11000}} {
		f := store.LineageFilter{Identity: path.Identity, Since: dailyBase.Add(time.Duration(tc.since) * time.Hour),
			Until: dailyBase.Add(time.Duration(tc.until) * time.Hour)}
		got, err := s.ListLineage(ctx, f)
		if err != nil || len(got) != 1 || got[0].Allowed != tc.want {
			t.Errorf("hours %d–%d: %+v, %v; want %d allowed", tc.since, tc.until, got, err, tc.want)
		}
	}
	if start, ok, err := s.LineageStart(ctx); err != nil || !ok || start.Before(dailyBase) || start.After(dailyBase.Add(days*24*time.Hour)) {
		t.Errorf("LineageStart = %v, %v, %v; want an hour of the facts", start, ok, err)
	}
}

// RunLineageBackfill checks migration 0016's backfill of the daily rollup,
// and 0022's of the path dictionary, on a store whose hourly facts were
// folded before they existed: open gives
// a fresh store, exec runs a statement on it (no arguments), reopen opens
// it again (applying pending migrations). The test drops lineage_daily and
// the record of migration 0016, so reopening runs the migration over the
// hourly facts; afterwards every window answers as summing the hours, and
// the hourly facts are unchanged.
func RunLineageBackfill(t *testing.T, open func(t *testing.T) (s store.Store, exec func(q string) error, reopen func() store.Store)) {
	s, exec, reopen := open(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	const days = 5
	addBatches(t, s, randomFacts(r, 400, days))
	hourly, err := s.ListLineage(ctx, store.LineageFilter{HourlyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	// Undo migrations 0022 (the path dictionary) and 0016, so reopening
	// applies both again.
	for _, q := range []string{`DROP INDEX lineage_facts_path_sums`, `ALTER TABLE lineage_facts DROP COLUMN path_id`,
		`DROP TABLE lineage_paths`, `DROP TABLE lineage_daily`, `DELETE FROM schema_migrations WHERE version IN (16, 22)`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s = reopen()
	after, err := s.ListLineage(ctx, store.LineageFilter{HourlyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(sortedFacts(hourly), sortedFacts(after), func(a, b store.LineageFact) bool { return a == b }) {
		t.Fatalf("hourly facts changed by the migration: %d paths before, %d after", len(hourly), len(after))
	}
	for range 40 {
		sameAsHourly(t, s, randomWindow(r, days))
	}
	sameAsHourly(t, s, store.LineageFilter{})
	// Later folds add to the backfilled days.
	addBatches(t, s, randomFacts(r, 200, days))
	for range 40 {
		sameAsHourly(t, s, randomWindow(r, days))
	}
}
