package access

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzSessionFlows: whatever labels and vias an access brings (hostile
// names included), a scope keeps each label once, with the first access
// that touched it, and scopes never mix.
func FuzzSessionFlows(f *testing.F) {
	f.Add("private_data,untrusted_content", "MCPServer/fs tools/call read", "s1", "private_data")
	f.Add("a,a,,\u202e,"+strings.Repeat("x", 300), "via\nnewline", "", "\x00")
	f.Fuzz(func(t *testing.T, labels, via, session, second string) {
		var s sessionFlows
		ls := strings.Split(labels, ",")
		keys := []string{"session:" + session}
		s.touch(keys, ls, via, time.Unix(1, 0))
		s.touch(keys, []string{second}, "later", time.Unix(2, 0))
		got := s.get(keys)
		var names []string
		for _, fl := range got {
			if slices.Contains(names, fl.Label) {
				t.Fatalf("label %q kept twice: %+v", fl.Label, got)
			}
			names = append(names, fl.Label)
			if slices.Contains(ls, fl.Label) && fl.Via != via {
				t.Fatalf("label %q lost its first via: %+v", fl.Label, fl)
			}
		}
		for _, l := range append(ls, second) {
			if !slices.Contains(names, l) {
				t.Fatalf("label %q not kept: %v", l, names)
			}
		}
		if other := s.get([]string{"session:" + session + "x"}); len(other) != 0 {
			t.Fatalf("another scope sees %v", other)
		}
	})
}
