package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/store"
)

// sameSnapshot fails t unless got holds exactly what want holds: the
// entries in name order, and the same entries under each first selector.
func sameSnapshot(t *testing.T, what string, got, want *snapshot) {
	t.Helper()
	if !reflect.DeepEqual(got.all, want.all) {
		t.Fatalf("%s: entries differ:\n got  %v\n want %v", what, names(got.all), names(want.all))
	}
	if len(got.bySelector) != len(want.bySelector) {
		t.Fatalf("%s: %d selector keys, want %d", what, len(got.bySelector), len(want.bySelector))
	}
	if !reflect.DeepEqual(got.bySpiffe, want.bySpiffe) {
		t.Fatalf("%s: entries by SPIFFE ID differ", what)
	}
	if !reflect.DeepEqual(got.labels, want.labels) {
		t.Fatalf("%s: merged labels differ:\n got  %v\n want %v", what, got.labels, want.labels)
	}
	for k, w := range want.bySelector {
		g := slices.Clone(got.bySelector[k])
		w = slices.Clone(w)
		for _, l := range [][]store.Entry{g, w} {
			slices.SortFunc(l, func(a, b store.Entry) int { return strings.Compare(a.Name, b.Name) })
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: under %s: got %v, want %v", what, k, names(g), names(w))
		}
	}
}

func names(l []store.Entry) string {
	var n []string
	for _, e := range l {
		n = append(n, e.Name)
	}
	return strings.Join(n, ",")
}

// TestIncrementalMatchesReload: after any sequence of creates, upserts
// (changing the first selector or not) and deletes through the registry,
// its snapshot is the one a reload of every entry from the store builds,
// and Match, Get and List answer as they would from it. Another server's
// write is seen after Reload, and a later write here keeps it.
func TestIncrementalMatchesReload(t *testing.T) {
	r, _, db := newRegistry(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(19, 10000))
	pool := []string{"unix:uid:1", "unix:uid:2", "unix:gid:7", "unix:path:/bin/a", "unix:path:/bin/b", "unix:user:x"}
	pick := func() []store.Selector {
		var ss []string
		for _, s := range pool {
			if rng.IntN(3) == 0 {
				ss = append(ss, s)
			}
		}
		if len(ss) == 0 {
			ss = []string{pool[rng.IntN(len(pool))]}
		}
		return sel(ss...)
	}
	reload := func() *snapshot {
		all, err := db.ListEntries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return newSnapshot(all)
	}
	other, err := New(ctx, Config{TrustDomain: spiffeid.RequireTrustDomainFromString("writ.local"), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	for step := range 250 {
		name := fmt.Sprintf("e-%d", rng.IntN(40))
		if rng.IntN(2) == 0 {
			name = strings.ReplaceAll(name, "-", "_") // '_' sorts after digits, '-' before
		}
		e := store.Entry{Name: name, SpiffeID: fmt.Sprintf("spiffe://writ.local/agent/%d", rng.IntN(8)), Selectors: pick()}
		if rng.IntN(4) == 0 {
			e.Labels = map[string]string{"team": fmt.Sprint(rng.IntN(3)), name: "x"}
		}
		var what string
		switch op := rng.IntN(10); {
		case op < 4:
			what = "create " + name
			_, err = r.Create(ctx, "admin:test", e)
			if err != nil && !strings.Contains(err.Error(), "exists") {
				t.Fatal(err)
			}
		case op < 7:
			what = "upsert " + name
			if _, _, _, err = r.Upsert(ctx, "admin:test", e); err != nil {
				t.Fatal(err)
			}
		case op < 9:
			what = "delete " + name
			if err = r.Delete(ctx, "admin:test", name); err != nil && !strings.Contains(err.Error(), "not found") {
				t.Fatal(err)
			}
		default:
			// Another server writes; this one learns at Reload.
			what = "another server upserts " + name + ", then Reload"
			if _, _, _, err = other.Upsert(ctx, "admin:other", e); err != nil {
				t.Fatal(err)
			}
			if err := r.Reload(ctx); err != nil {
				t.Fatal(err)
			}
		}
		want := reload()
		sameSnapshot(t, fmt.Sprintf("step %d (%s)", step, what), r.snap.Load(), want)
		if !reflect.DeepEqual(r.List(), want.all) && len(want.all) > 0 {
			t.Fatalf("step %d: List differs", step)
		}
		for _, w := range want.all {
			if g, ok := r.Get(w.Name); !ok || !reflect.DeepEqual(g, w) {
				t.Fatalf("step %d: Get(%s) = %v, %v", step, w.Name, g, ok)
			}
		}
		if _, ok := r.Get("absent"); ok {
			t.Fatal("Get found an absent entry")
		}
		// Merged labels by brute force: every entry in name order.
		brute := map[string]map[string]string{}
		for _, e := range want.all {
			for k, v := range e.Labels {
				if brute[e.SpiffeID] == nil {
					brute[e.SpiffeID] = map[string]string{}
				}
				brute[e.SpiffeID][k] = v
			}
		}
		if !reflect.DeepEqual(brute, want.labels) && !(len(brute) == 0 && len(want.labels) == 0) {
			t.Fatalf("step %d: merged labels %v, brute force %v", step, want.labels, brute)
		}
		for id, w := range want.labels {
			if g := r.Labels(id); !reflect.DeepEqual(g, w) {
				t.Fatalf("step %d: Labels(%s) = %v, want %v", step, id, g, w)
			}
		}
		for id, w := range want.bySpiffe {
			if g := r.BySpiffeID(id); !reflect.DeepEqual(g, w) {
				t.Fatalf("step %d: BySpiffeID(%s) = %v, want %v", step, id, names(g), names(w))
			}
		}
		attested := pick()
		if got, exp := r.Match(attested), matchAll(want.all, attested); !reflect.DeepEqual(got, exp) {
			t.Fatalf("step %d: Match(%v) = %v, want %v", step, attested, names(got), names(exp))
		}
	}
}

// matchAll is Match by brute force: every entry whose selectors are all
// attested, most specific first.
func matchAll(all []store.Entry, attested []store.Selector) []store.Entry {
	var out []store.Entry
	for _, e := range all {
		if len(e.Selectors) > 0 && !slices.ContainsFunc(e.Selectors, func(s store.Selector) bool { return !slices.Contains(attested, s) }) {
			out = append(out, e)
		}
	}
	sortSpecificFirst(out)
	return out
}

// FuzzSnapshot: any sequence of puts and deletes applied to a snapshot
// one by one gives the snapshot built from the resulting set at once, and
// never changes a snapshot a reader may hold.
func FuzzSnapshot(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x81, 0x42, 5, 0xff})
	f.Add([]byte{7, 7, 7, 0x87, 0x87})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		sels := []string{"unix:uid:1", "unix:uid:2", "unix:gid:3", ""}
		cur := newSnapshot(nil)
		set := map[string]store.Entry{}
		for i, op := range ops {
			name := fmt.Sprintf("n%c%d", "-_."[op%3], op&0x0f%5)
			old := cur
			before := slices.Clone(old.all)
			beforeIdx := map[string][]store.Entry{}
			for k, l := range old.bySelector {
				beforeIdx[k] = slices.Clone(l)
			}
			if op&0x80 != 0 {
				cur = cur.without(name)
				delete(set, name)
			} else {
				e := store.Entry{Name: name, Revision: int64(i), SpiffeID: fmt.Sprintf("spiffe://writ.local/%d", op%3)}
				if op&0x08 != 0 {
					e.Labels = map[string]string{"k": name, fmt.Sprint(op % 2): "v"}
				}
				if s := sels[(op>>4)&3]; s != "" {
					e.Selectors = sel(s)
					if op&0x40 != 0 {
						e.Selectors = append(e.Selectors, sel("unix:path:/x")...)
					}
				}
				cur = cur.with(e)
				set[name] = e
			}
			if !reflect.DeepEqual(old.all, before) || len(old.bySelector) != len(beforeIdx) {
				t.Fatalf("op %d changed the snapshot a reader holds", i)
			}
			for k, l := range beforeIdx {
				if !reflect.DeepEqual(old.bySelector[k], l) {
					t.Fatalf("op %d changed the index of a snapshot a reader holds (%s)", i, k)
				}
			}
		}
		var all []store.Entry
		for _, e := range set {
			all = append(all, e)
		}
		sameSnapshot(t, "after the ops", cur, newSnapshot(all))
	})
}

// TestChangedSince: a watcher that keeps the change it last saw learns
// exactly the entries written since (created, replaced, deleted), and is
// told to compare everything after a Reload or once the log has moved on.
func TestChangedSince(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	_, g0, ok := r.ChangedSince(0)
	if ok {
		t.Fatal("a watcher that saw nothing was not told to compare everything")
	}
	mk := func(name, uid string) store.Entry {
		return store.Entry{Name: name, SpiffeID: "spiffe://writ.local/" + name, Selectors: sel("unix:uid:" + uid)}
	}
	for _, e := range []store.Entry{mk("a", "1"), mk("b", "2")} {
		if _, err := r.Create(ctx, "admin:t", e); err != nil {
			t.Fatal(err)
		}
	}
	names, g1, ok := r.ChangedSince(g0)
	if !ok || strings.Join(names, ",") != "a,b" || g1 != g0+2 {
		t.Fatalf("after two creates: %q, %d, %v", names, g1, ok)
	}
	if _, _, _, err := r.Upsert(ctx, "admin:t", mk("a", "3")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.Upsert(ctx, "admin:t", mk("a", "3")); err != nil { // unchanged: no change
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "admin:t", "b"); err != nil {
		t.Fatal(err)
	}
	names, g2, ok := r.ChangedSince(g1)
	if !ok || strings.Join(names, ",") != "a,b" || g2 != g1+2 {
		t.Fatalf("after an upsert and a delete: %q, %d, %v", names, g2, ok)
	}
	if names, _, ok := r.ChangedSince(g2); !ok || len(names) != 0 {
		t.Fatalf("nothing changed: %q, %v", names, ok)
	}
	if _, _, ok := r.ChangedSince(g2 + 5); ok {
		t.Fatal("a change from the future was answered")
	}
	if err := r.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r.ChangedSince(g2); ok {
		t.Fatal("after a Reload the watcher was not told to compare everything")
	}
	_, g3, _ := r.ChangedSince(g2)
	for i := range 2*changeLog + 1 {
		r.mu.Lock()
		r.logChange(fmt.Sprint("x", i))
		r.mu.Unlock()
	}
	if _, _, ok := r.ChangedSince(g3); ok {
		t.Fatal("a change older than the log was answered")
	}
	if names, _, ok := r.ChangedSince(r.gen - 1); !ok || len(names) != 1 {
		t.Fatalf("the newest change: %q, %v", names, ok)
	}
}
