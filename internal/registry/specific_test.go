package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/store"
)

func TestChooseMostSpecific(t *testing.T) {
	e := func(name, id string, s ...string) store.Entry {
		return store.Entry{Name: name, SpiffeID: "spiffe://writ.local/" + id, Selectors: sel(s...)}
	}
	uid := e("uid", "a", "unix:uid:1000")
	uidPath := e("uid-path", "b", "unix:path:/bin/x", "unix:uid:1000")
	uidSum := e("uid-sum", "c", "unix:sha256:ab", "unix:uid:1000")
	all := e("all", "d", "unix:path:/bin/x", "unix:sha256:ab", "unix:uid:1000")
	sameAsUID := e("uid2", "e", "unix:uid:1000")
	sameID := e("uid3", "a", "unix:uid:1000")
	for _, tc := range []struct {
		name    string
		matches []store.Entry
		want    string // chosen entry; "" for ambiguous
		cands   string
	}{
		{"one", []store.Entry{uid}, "uid", "uid"},
		{"superset wins", []store.Entry{uidPath, uid}, "uid-path", "uid-path"},
		{"superset of all wins", []store.Entry{all, uidPath, uidSum, uid}, "all", "all"},
		{"incomparable", []store.Entry{uidPath, uidSum, uid}, "", "uid-path,uid-sum"},
		{"same selectors, other ids", []store.Entry{uid, sameAsUID}, "", "uid,uid2"},
		{"same selectors, same id", []store.Entry{uid, sameID}, "uid", "uid,uid3"},
		{"none", nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, cands, ok := Choose(tc.matches)
			var names []string
			for _, c := range cands {
				names = append(names, c.Name)
			}
			if ok != (tc.want != "") || got.Name != tc.want || strings.Join(names, ",") != tc.cands {
				t.Fatalf("Choose = %q, %v, %v; want %q, candidates %q", got.Name, names, ok, tc.want, tc.cands)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	for _, id := range []store.Entry{
		{Name: "uid", SpiffeID: "spiffe://writ.local/uid", Selectors: sel("unix:uid:1000")},
		{Name: "python", SpiffeID: "spiffe://writ.local/python", Selectors: sel("unix:uid:1000", "unix:path:/usr/bin/python3")},
		{Name: "node", SpiffeID: "spiffe://writ.local/node", Selectors: sel("unix:uid:1000", "unix:path:/usr/bin/node")},
		{Name: "other", SpiffeID: "spiffe://writ.local/other", Selectors: sel("unix:uid:2000")},
	} {
		if _, err := r.Create(ctx, "admin:test", id); err != nil {
			t.Fatal(err)
		}
	}
	ex := r.Explain(sel("unix:uid:1000", "unix:path:/usr/bin/python3"))
	if ex.Chosen.Name != "python" || !strings.Contains(ex.Reason, "most specific") {
		t.Fatalf("chosen %q (%s), want python as the most specific", ex.Chosen.Name, ex.Reason)
	}
	var got []string
	for _, m := range ex.Entries {
		s := m.Entry.Name
		if m.Matched {
			s += "+" + strings.Join(m.Outranks, "/")
		} else {
			for _, x := range m.Missing {
				s += " -" + x.String()
			}
		}
		got = append(got, s)
	}
	if want := "python+uid,uid+,node -unix:path:/usr/bin/node"; strings.Join(got, ",") != want {
		t.Errorf("entries %q, want %q", strings.Join(got, ","), want)
	}

	// Both python and node entries for a process that has both paths
	// cannot be: but two entries with the same selectors are ambiguous.
	if _, err := r.Create(ctx, "admin:test", store.Entry{Name: "python2", SpiffeID: "spiffe://writ.local/python2",
		Selectors: sel("unix:uid:1000", "unix:path:/usr/bin/python3")}); err != nil {
		t.Fatal(err)
	}
	ex = r.Explain(sel("unix:uid:1000", "unix:path:/usr/bin/python3"))
	if ex.Chosen.Name != "" || !strings.Contains(ex.Reason, "ambiguous: entries python (spiffe://writ.local/python), python2") || !strings.Contains(ex.Reason, "Writ-Identity") {
		t.Errorf("tie: chosen %q, reason %q", ex.Chosen.Name, ex.Reason)
	}
	if ex := r.Explain(sel("unix:uid:3000")); ex.Chosen.Name != "" || len(ex.Entries) != 0 || !strings.HasPrefix(ex.Reason, "no entry matches") {
		t.Errorf("no match: %+v", ex)
	}
}
