package rowcodec

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// TestLineagePathsOrder: paths learnt in random batches, in random id
// order, come out of Facts in LineageOrder (as one sort of all of them
// would put them), with the sums of their rows.
func TestLineagePathsOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	var c LineagePaths
	var all []PathKey
	var sums Sums
	want := map[int64]pathSum{}
	known := map[PathKey]bool{}
	next := int64(1)
	for round := range 20 {
		var ids []int64
		var keys []PathKey
		for range r.IntN(50) {
			k := PathKey{pick("", "u"), pick("a", "B", "é", "a b"), pick("", "i1", "i2"), pick("", "t"), pick("process", "token"),
				pick(store.TargetService, store.TargetMCPServer), pick("mail", "Mail", "db"), pick("", "read"), pick("", "k"), pick("", "bob")}
			if known[k] {
				continue
			}
			known[k] = true
			ids, keys = append(ids, next), append(keys, k)
			all = append(all, k)
			next += 1 + int64(r.IntN(3)) // gaps, as a PostgreSQL sequence leaves
		}
		// Learnt in any order, some twice.
		perm := r.Perm(len(ids))
		pi, pk := make([]int64, len(ids)), make([]PathKey, len(ids))
		for i, j := range perm {
			pi[i], pk[i] = ids[j], keys[j]
		}
		c.Learn(pi, pk)
		c.Learn(pi[:len(pi)/2], pk[:len(pk)/2])
		for _, id := range ids {
			for range 1 + r.IntN(3) {
				a, f := r.Int64N(10), r.Int64N(1e9)+1
				sums.Add(id, a, 1, 0, f, f+5)
				w, ok := want[id]
				if !ok {
					w = pathSum{first: f, last: f + 5}
				}
				w.allowed, w.denied, w.first, w.last = w.allowed+a, w.denied+1, min(w.first, f), max(w.last, f+5)
				want[id] = w
			}
		}
		got, err := c.Facts(&sums, 0)
		if err != nil {
			t.Fatal(err)
		}
		sorted := slices.Clone(all)
		slices.SortFunc(sorted, func(a, b PathKey) int { return comparePaths(&a, &b) })
		if len(got) != len(sorted) {
			t.Fatalf("round %d: %d facts, want %d", round, len(got), len(sorted))
		}
		for i := range got {
			if k := KeyOf(&got[i]); k != sorted[i] {
				t.Fatalf("round %d: fact %d is %q, want %q", round, i, k, sorted[i])
			}
			id, _ := c.ID(KeyOf(&got[i]))
			if w := want[id]; got[i].Allowed != w.allowed || got[i].Denied != w.denied || got[i].FirstSeen.UnixNano() != w.first ||
				got[i].LastSeen.UnixNano() != w.last {
				t.Fatalf("round %d: fact %d = %+v, want sums %+v", round, i, got[i], w)
			}
		}
		if limited, _ := c.Facts(&sums, 3); len(got) >= 3 && !slices.EqualFunc(limited, got[:3], func(a, b store.LineageFact) bool { return KeyOf(&a) == KeyOf(&b) }) {
			t.Fatalf("round %d: Facts with limit 3 = %v, want the first 3", round, limited)
		}
	}
}

// TestLineagePathsUnknown: Facts refuses ids the cache does not hold,
// and Missing names them.
func TestLineagePathsUnknown(t *testing.T) {
	var c LineagePaths
	c.Learn([]int64{1}, []PathKey{{"", "a"}})
	var s Sums
	s.Add(1, 1, 0, 0, 1, 1)
	s.Add(7, 1, 0, 0, 1, 1)
	s.Add(1<<40, 1, 0, 0, 1, 1) // beyond the dense slots
	if m := c.Missing(&s); !slices.Equal(m, []int64{7, 1 << 40}) {
		t.Errorf("Missing = %v, want [7 %d]", m, int64(1<<40))
	}
	if _, err := c.Facts(&s, 0); err == nil {
		t.Error("Facts with unknown ids succeeded")
	}
	c.Learn([]int64{7, 1 << 40}, []PathKey{{"", "b"}, {"", "c"}})
	if got, err := c.Facts(&s, 0); err != nil || len(got) != 3 {
		t.Errorf("Facts = %v, %v; want 3 facts", got, err)
	}
}

// TestLineagePathsFull: past its limit the cache says it is full (the
// stores then sum in SQL) and learns nothing more.
func TestLineagePathsFull(t *testing.T) {
	c := LineagePaths{limit: 3}
	var ids []int64
	var keys []PathKey
	for i := range 5 {
		ids, keys = append(ids, int64(i+1)), append(keys, PathKey{"", fmt.Sprint(i)})
	}
	c.Learn(ids[:3], keys[:3])
	if c.Full() {
		t.Fatal("full at its limit")
	}
	c.Learn(ids[3:], keys[3:])
	if !c.Full() {
		t.Fatal("not full past its limit")
	}
	if _, ok := c.ID(keys[4]); ok {
		t.Error("learnt a path past its limit")
	}
}
