package policy

import (
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/resource"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		yes, no []string
	}{
		{"/v1/users", []string{"/v1/users"}, []string{"/v1/users/", "/v1/user", "/V1/users"}},
		{"/v1/*", []string{"/v1/a", "/v1/"}, []string{"/v1", "/v1/a/b", "/v2/a"}},
		{"/v1/**", []string{"/v1", "/v1/", "/v1/a", "/v1/a/b/c"}, []string{"/v2/a", "/v10"}},
		{"/**", []string{"/", "/a", "/a/b"}, []string{"a", "b/c"}},
		{"**", []string{"", "a", "/a/b"}, nil},
		{"*", []string{"a", "read_file", ""}, []string{"a/b"}},
		{"/a/**/z", []string{"/a/z", "/a/b/z", "/a/b/c/z"}, []string{"/a/z/y", "/a", "/b/z"}},
		{"/a/**/m/**/z", []string{"/a/m/z", "/a/1/m/2/3/z", "/a/m/m/z"}, []string{"/a/z", "/a/m"}},
		{"read_*", []string{"read_", "read_file"}, []string{"write_file", "xread_file"}},
		{"file:///docs/**", []string{"file:///docs", "file:///docs/a.md", "file:///docs/a/b"}, []string{"file:///etc/passwd", "file://docs/a"}},
		{"/r/v?/[abc]*.csv", []string{"/r/v1/a.csv", "/r/v2/cat.csv"}, []string{"/r/v10/a.csv", "/r/v1/d.csv"}},
		{`/x/\*`, []string{"/x/*"}, []string{"/x/a"}},
	} {
		g, err := ParseGlob(tc.pattern)
		if err != nil {
			t.Fatalf("ParseGlob(%q): %v", tc.pattern, err)
		}
		for _, s := range tc.yes {
			if !g.Match(s) {
				t.Errorf("%q should match %q", tc.pattern, s)
			}
		}
		for _, s := range tc.no {
			if g.Match(s) {
				t.Errorf("%q should not match %q", tc.pattern, s)
			}
		}
	}
}

func TestGlobErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty pattern"},
		{"/a**", "'**' must be a whole segment"},
		{"/a/[b", "is malformed"},
		{`/a\`, "is malformed"},
		{"/**/**/**/**/**", "more than 4"},
		{strings.Repeat("a", 1025), "at most 1024"},
	} {
		if _, err := ParseGlob(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseGlob(%.20q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestGlobCovers(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"/finance/**", "/finance/reports/**", true},
		{"/finance/**", "/finance", true},
		{"/finance/**", "/financex/a", false},
		{"/**", "/anything/*", true},
		{"**", "x", true},
		{"*", "read_*", true},
		{"*", "/a/*", false},
		{"read_*", "read_file", true},
		{"read_*", "write_*", false},
		{"/a/*", "/a/*", true},
		{"/a/*", "/a/**", false},
	} {
		a, _ := ParseGlob(tc.a)
		b, _ := ParseGlob(tc.b)
		if got := a.covers(b); got != tc.want {
			t.Errorf("%q covers %q = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSubjectPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		yes, no []string
	}{
		{"spiffe://writ.local/agent/x", []string{"spiffe://writ.local/agent/x"}, []string{"spiffe://writ.local/agent/x/y", "spiffe://writ.local/agent", "spiffe://other/agent/x"}},
		{"spiffe://writ.local/agent/*", []string{"spiffe://writ.local/agent/x"}, []string{"spiffe://writ.local/agent/x/y", "spiffe://writ.local/agent"}},
		{"spiffe://writ.local/*/x", []string{"spiffe://writ.local/agent/x"}, []string{"spiffe://writ.local/x"}},
		{"spiffe://writ.local/**", []string{"spiffe://writ.local/a", "spiffe://writ.local/a/b/c"}, []string{"spiffe://writ.local", "spiffe://writ.localx/a"}},
	} {
		p, err := parseSubject(tc.pattern)
		if err != nil {
			t.Fatalf("parseSubject(%q): %v", tc.pattern, err)
		}
		check := func(id string, want bool) {
			td, path, ok := splitID(id)
			got := ok && p.matchID(td, path)
			if got != want {
				t.Errorf("%q matching %q = %v, want %v", tc.pattern, id, got, want)
			}
			// The trie must agree with the pattern.
			x := buildSubjectIndex([]*cpolicy{{subjects: []subjectPattern{p}}})
			inIndex := ok && len(x.agent(td, path, nil, nil)) == 1
			if inIndex != want {
				t.Errorf("index for %q on %q = %v, want %v", tc.pattern, id, inIndex, want)
			}
		}
		for _, id := range tc.yes {
			check(id, true)
		}
		for _, id := range tc.no {
			check(id, false)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"user:", "names no user"},
		{"user:a*", "match exactly"},
		{"group:", "exact group name"},
		{"label:", "names no label"},
		{"label:a=1,a=2", "twice"},
		{"label:a=", "not KEY=VALUE"},
		{"spiffe://Writ.Local/a", "not valid"},
		{"spiffe://writ.local/a/./b", "not valid in a SPIFFE ID"},
		{"spiffe://writ.local/a//b", "not valid in a SPIFFE ID"},
		{"role:admin", "is not a subject"},
	} {
		if _, err := parseSubject(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSubject(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseGlob(f *testing.F) {
	for _, s := range []string{"/v1/**", "read_*", "/a/**/b", "[a-", `\`, "**", "/a/*/c/?", "file:///x/**"} {
		f.Add(s, "/v1/a/b")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		g, err := ParseGlob(pattern)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		m := g.Match(name) // must not panic
		if g.IsLiteral() && m != (pattern == name) {
			t.Fatalf("literal %q matching %q = %v", pattern, name, m)
		}
		if g.IsLiteral() && !g.Match(pattern) {
			t.Fatalf("literal %q does not match itself", pattern)
		}
		if g.covers(g) != true {
			t.Fatalf("%q does not cover itself", pattern)
		}
	})
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"spiffe://writ.local/agent/*", "spiffe://a/**", "user:alice", "group:x", "label:a=b,c=d", "spiffe://", "user:*"} {
		f.Add(s, "spiffe://writ.local/agent/x")
	}
	f.Fuzz(func(t *testing.T, pattern, id string) {
		p, err := parseSubject(pattern)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if p.kind != subjSPIFFE {
			return
		}
		td, path, ok := splitID(id)
		if !ok {
			return
		}
		x := buildSubjectIndex([]*cpolicy{{subjects: []subjectPattern{p}}})
		if got, want := len(x.agent(td, path, nil, nil)) == 1, p.matchID(td, path); got != want {
			t.Fatalf("index and pattern disagree on %q / %q: %v vs %v", pattern, id, got, want)
		}
	})
}

// FuzzCompile feeds arbitrary YAML through the loader and compiler: it
// must never panic, and every error must carry a position.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		policyDoc("p", "subjects: [spiffe://writ.local/a/*]\nrules:\n  - {name: r, effect: allow, targets: [{mcp: {server: s, tools: [\"a*\"]}}], when: 'mcp.args.x == 1', rate: {limit: 5/1m}}\n"),
		policyDoc("p", "subjects: [user:a, \"label:x=y\"]\nlabels: [pii]\nrules:\n  - {name: r, effect: escalate, targets: [{labels: [pii]}], flow: {touched_any: [pii]}, approval: {approvers: [group:g]}}\n"),
		policyDoc("p", "subjects: [group:g]\nrules:\n  - {name: r, effect: deny, targets: [{http: {service: s, methods: [GET], paths: [/a/**]}}, {token: {scopes: [x]}}, {task: {purposes: [p]}}]}\n"),
		"apiVersion: writ.dev/v1\nkind: AccessPolicy\nmetadata: {name: p}\nspec: {subjects: [1], rules: [{name: [x]}]}\n",
		"apiVersion: writ.dev/v1\nkind: AccessPolicy\nmetadata: {name: p}\nspec:\n  rules:\n    - when: \"(\"\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := resource.Parse("f.yaml", data)
		if err != nil {
			return
		}
		for _, d := range docs {
			if d.Kind != resource.KindAccessPolicy {
				continue
			}
			if err := ValidateDocument(d); err != nil {
				if !strings.HasPrefix(err.Error(), "f.yaml:") {
					t.Fatalf("error without a position: %v", err)
				}
				continue
			}
			// What validates must round-trip through the stored form.
			b, err := EncodeSpec(d)
			if err != nil {
				t.Fatalf("EncodeSpec after ValidateDocument: %v", err)
			}
			if _, err := CompileStored([]Stored{{Name: d.Name, Version: 1, Spec: b}}); err != nil {
				t.Fatalf("stored spec does not compile: %v\n%s", err, b)
			}
		}
		snap, err := Compile(docs, nil)
		if err != nil {
			return
		}
		r := mcpReq("s", "a")
		r.Task = Task{ID: "t", OnBehalfOf: "a", Groups: []string{"g"}, LabelsSeen: []string{"pii"}}
		d, ex := snap.Decide(r), snap.Explain(r)
		if d.Effect != ex.Decision.Effect || d.Rule != ex.Decision.Rule {
			t.Fatalf("Decide %s/%s, Explain %s/%s", d.Effect, d.Rule, ex.Decision.Effect, ex.Decision.Rule)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"kind":"mcp","subject":{"spiffe_id":"spiffe://a/b"},"mcp":{"server":"s","tool":"t","args":{"x":[1,{"y":null}]}}}`))
	f.Add([]byte(`{"kind":"http","subject":{"spiffe_id":"spiffe://a/b"},"request":{"service":"s","method":"GET","path":"/a/../b"}}`))
	f.Add([]byte(`{"now":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest("r.json", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		snap := compileSrc(t, policyDoc("p", "subjects: [spiffe://a/**]\nrules:\n  - {name: r, effect: allow, targets: [{http: {service: s, paths: [/b/**]}}, {mcp: {server: s}}], when: 'kind != \"\" && size(mcp.args) >= 0'}\n"))
		d := snap.Decide(r)
		if d.Effect == "" || len(d.Reasons) == 0 {
			t.Fatalf("empty decision %+v", d)
		}
	})
}
