package attest

import (
	"fmt"
	"testing"
)

func TestLRU(t *testing.T) {
	type op struct {
		add    bool
		remove bool
		key    string
		val    int
		want   int // for gets: -1 means absent
	}
	tests := []struct {
		name string
		max  int
		ops  []op
		len  int
	}{
		{"evicts least recently added", 2, []op{
			{add: true, key: "a", val: 1}, {add: true, key: "b", val: 2}, {add: true, key: "c", val: 3},
			{key: "a", want: -1}, {key: "b", want: 2}, {key: "c", want: 3},
		}, 2},
		{"get refreshes", 2, []op{
			{add: true, key: "a", val: 1}, {add: true, key: "b", val: 2}, {key: "a", want: 1},
			{add: true, key: "c", val: 3}, {key: "b", want: -1}, {key: "a", want: 1},
		}, 2},
		{"add replaces and refreshes", 2, []op{
			{add: true, key: "a", val: 1}, {add: true, key: "b", val: 2}, {add: true, key: "a", val: 10},
			{add: true, key: "c", val: 3}, {key: "a", want: 10}, {key: "b", want: -1},
		}, 2},
		{"remove", 3, []op{
			{add: true, key: "a", val: 1}, {remove: true, key: "a"}, {remove: true, key: "zz"}, {key: "a", want: -1},
		}, 0},
		{"size below one holds one", 0, []op{
			{add: true, key: "a", val: 1}, {add: true, key: "b", val: 2}, {key: "b", want: 2}, {key: "a", want: -1},
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLRU[string, int](tt.max)
			for i, o := range tt.ops {
				switch {
				case o.add:
					l.add(o.key, o.val)
				case o.remove:
					l.remove(o.key)
				default:
					v, ok := l.get(o.key)
					got := -1
					if ok {
						got = v
					}
					if got != o.want {
						t.Errorf("op %d: get(%q) = %d, want %d", i, o.key, got, o.want)
					}
				}
			}
			if l.len() != tt.len || len(l.m) != tt.len {
				t.Errorf("len = %d (map %d), want %d", l.len(), len(l.m), tt.len)
			}
		})
	}
}

func TestLRUBoundUnderChurn(t *testing.T) {
	l := newLRU[string, int](16)
	for i := range 10000 {
		l.add(fmt.Sprint(i), i)
	}
	if l.len() != 16 || len(l.m) != 16 {
		t.Fatalf("len = %d, map %d; want 16", l.len(), len(l.m))
	}
	if v, ok := l.get("9999"); !ok || v != 9999 {
		t.Errorf("newest entry missing: %d %v", v, ok)
	}
}
