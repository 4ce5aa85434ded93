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

// compareOrder orders facts as store.Lineage.ListLineage says: byte-wise
// by identity, target, tool, instance, task, user, via, credential,
// approved by and target kind.
func compareOrder(a, b *store.LineageFact) int {
	for _, p := range [][2]string{{a.Identity, b.Identity}, {a.Target, b.Target}, {a.Tool, b.Tool}, {a.Instance, b.Instance},
		{a.Task, b.Task}, {a.User, b.User}, {a.Via, b.Via}, {a.Credential, b.Credential}, {a.ApprovedBy, b.ApprovedBy},
		{a.TargetKind, b.TargetKind}} {
		if c := cmp.Compare(p[0], p[1]); c != 0 {
			return c
		}
	}
	return 0
}

// checkOrder fails t unless facts are in the order ListLineage promises,
// with no path twice.
func checkOrder(t *testing.T, what string, facts []store.LineageFact) {
	t.Helper()
	for i := 1; i < len(facts); i++ {
		if compareOrder(&facts[i-1], &facts[i]) >= 0 {
			t.Fatalf("%s: fact %d %+v is not after fact %d %+v", what, i, facts[i], i-1, facts[i-1])
		}
	}
}

// withAllTime returns batches with each batch's all-time rollup share
// added, as internal/graph writes it.
func withAllTime(batches [][]store.LineageFact) [][]store.LineageFact {
	out := make([][]store.LineageFact, len(batches))
	for i, b := range batches {
		idx := map[store.LineageFact]int{}
		var all []store.LineageFact
		for _, f := range b {
			all = store.RollUp(all, idx, f, store.LineageAllTime)
		}
		out[i] = append(slices.Clone(b), all...)
	}
	return out
}

// awkwardFacts are paths whose text orders differently byte-wise than by
// a locale's rules (case, accents, symbols, an empty column), so a store
// that sorted by its collation instead of bytes shows it.
func awkwardFacts(h time.Time) []store.LineageFact {
	var out []store.LineageFact
	for i, id := range []string{"spiffe://writ.local/B", "spiffe://writ.local/a", "spiffe://writ.local/é", "spiffe://writ.local/_z",
		"spiffe://writ.local/Z", "spiffe://writ.local/a b", "spiffe://writ.local/a-b", ""} {
		for _, kind := range []string{store.TargetService, store.TargetMCPServer} {
			out = append(out, store.LineageFact{Hour: h, Identity: id, Via: "process", TargetKind: kind, Target: "ü" + id,
				Allowed: int64(i + 1), FirstSeen: h.Add(time.Second), LastSeen: h.Add(time.Minute)})
		}
	}
	return out
}

// testLineagePaths: whole-graph queries (no path filter, read through
// the path dictionary of migration 0022) answer what summing every hour
// in SQL answers, the all-time rollup included, in the promised order,
// with Limit keeping the first paths of that order.
func testLineagePaths(t *testing.T, s store.Store) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	ctx := context.Background()
	const days = 4
	batches := randomFacts(r, 500, days)
	batches = append(batches, awkwardFacts(dailyBase.Add(5*time.Hour)))
	addBatches(t, s, withAllTime(batches))
	hourly, err := s.ListLineage(ctx, store.LineageFilter{HourlyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "hourly", hourly)
	for _, f := range []store.LineageFilter{{}, {AllTime: true}, {Since: dailyBase.Add(-time.Hour)}} {
		got, err := s.ListLineage(ctx, f)
		if err != nil {
			t.Fatalf("ListLineage(%+v): %v", f, err)
		}
		checkOrder(t, fmt.Sprintf("%+v", f), got)
		if !slices.EqualFunc(got, hourly, sameFact) {
			t.Fatalf("ListLineage(%+v): %d paths, summing hours %d; first difference at %d", f, len(got), len(hourly), firstDiff(got, hourly))
		}
	}
	for range 30 {
		f := randomWindow(r, days)
		f.Identity, f.Target, f.Credential, f.User, f.Task, f.Instance = "", "", "", "", "", ""
		sameAsHourly(t, s, f)
	}
	for _, n := range []int{1, 7, len(hourly) - 1, len(hourly) + 5} {
		for _, f := range []store.LineageFilter{{Limit: n}, {AllTime: true, Limit: n}} {
			got, err := s.ListLineage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if want := hourly[:min(n, len(hourly))]; !slices.EqualFunc(got, want, sameFact) {
				t.Errorf("ListLineage(%+v): %d paths, want the first %d of the whole answer", f, len(got), len(want))
			}
		}
	}
}

func sameFact(a, b store.LineageFact) bool {
	return a.Hour.Equal(b.Hour) && a.FirstSeen.Equal(b.FirstSeen) && a.LastSeen.Equal(b.LastSeen) && compareOrder(&a, &b) == 0 &&
		a.Allowed == b.Allowed && a.Denied == b.Denied && a.Held == b.Held
}

func firstDiff(a, b []store.LineageFact) int {
	for i := range min(len(a), len(b)) {
		if !sameFact(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// RunLineageShared checks two handles on one store (two servers, or a
// server and the CLI): paths one adds are named in the other's
// whole-graph answers, whichever added a path first, and both agree with
// summing every hour. open returns the two handles.
func RunLineageShared(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	a, b := open(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	add := func(s store.Store, batches [][]store.LineageFact) {
		t.Helper()
		addBatches(t, s, withAllTime(batches))
	}
	check := func(what string) {
		t.Helper()
		for _, s := range []store.Store{a, b} {
			want, err := s.ListLineage(ctx, store.LineageFilter{HourlyOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []store.LineageFilter{{}, {AllTime: true}} {
				got, err := s.ListLineage(ctx, f)
				if err != nil {
					t.Fatalf("%s: ListLineage(%+v): %v", what, f, err)
				}
				if !slices.EqualFunc(got, want, sameFact) {
					t.Fatalf("%s: ListLineage(%+v): %d paths, summing hours %d; first difference at %d", what, f, len(got), len(want), firstDiff(got, want))
				}
			}
		}
	}
	add(a, randomFacts(r, 100, 3))
	check("after a's first facts")
	add(b, randomFacts(r, 100, 3)) // b knows a's paths from its read only
	add(b, [][]store.LineageFact{awkwardFacts(dailyBase.Add(7 * time.Hour))})
	// a writes paths b added last, learning their ids (the highest) before
	// it has read the ones b added before them.
	add(a, [][]store.LineageFact{awkwardFacts(dailyBase.Add(30 * time.Hour))})
	check("after a's second facts")
}
