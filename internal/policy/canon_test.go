package policy

import (
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/resource"
)

func TestCanonicalPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"", "/"},
		{"/v1/secret", "/v1/secret"},
		{"/v1/secret/", "/v1/secret"},
		{"/v1/secret//", "/v1/secret"},
		{"/v1//secret", "/v1/secret"},
		{"//v1/secret", "/v1/secret"},
		{"/v1/./secret", "/v1/secret"},
		{"/v1/secret/.", "/v1/secret"},
		{"/v1/secret/x/..", "/v1/secret"},
		{"/v1/public/../secret", "/v1/secret"},
		{"/../../v1/secret", "/v1/secret"},
		{"/..", "/"},
		{"//", "/"},
		{"/./", "/"},
		{"v1/secret", "/v1/secret"},
		{"/v1/%2e%2e/secret", "/v1/%2e%2e/secret"}, // decoded paths: "%" is not interpreted
		{"/a/...", "/a/..."},
		{"/a/.b/c.", "/a/.b/c."},
	} {
		if got := CanonicalPath(tc.in); got != tc.want {
			t.Errorf("CanonicalPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCanonicalMethod(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"GET", "GET", true},
		{"delete", "DELETE", true},
		{"Delete", "DELETE", true},
		{"PROPFIND", "PROPFIND", true},
		{"m-search", "M-SEARCH", true},
		{"", "", false},
		{"DEL ETE", "", false},
		{"GET\r\n", "", false},
		{"GET/", "", false},
		{"G\x00T", "", false},
		{"GÉT", "", false},
	} {
		got, ok := CanonicalMethod(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CanonicalMethod(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCanonicalURI(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"file:///secret/key", "file:///secret/key"},
		{"file:///pub/../secret/key", "file:///secret/key"},
		{"file:///pub/./../secret//key/", "file:///secret/key"},
		{"file:////secret/key", "file:///secret/key"},
		{"file:///../../secret/key", "file:///secret/key"},
		{"file:///%73ecret/key", "file:///secret/key"},
		{"file:///%73%65%63%72%65%74/%6B%65%79", "file:///secret/key"},
		{"file:///pub%2F..%2Fsecret/key", "file:///secret/key"},
		{"file:///pub%2f%2e%2e%2fsecret/key", "file:///secret/key"},
		{"FILE:///secret/key", "file:///secret/key"},
		{"File://LOCALHOST/secret/key", "file:///secret/key"},
		{"file://localhost/secret/key", "file:///secret/key"},
		{"file://server/Secret/Key", "file://server/Secret/Key"}, // the path keeps its case
		{"MAIL://InBox/A", "mail://inbox/A"},
		{"mail://inbox/", "mail://inbox/"},
		{"mail://inbox", "mail://inbox"},
		{"https://User@Example.COM:8443/a//b/?q=%7e%2f#F", "https://User@example.com:8443/a/b?q=~%2F#F"},
		{"file:///a%20b", "file:///a%20b"},
		{"file:///a%2fb", "file:///a/b"},
		{"file:///a%zz", "file:///a%25zz"},
		{"file:///a%", "file:///a%25"},
		{"file:///a/b?x=/../y", "file:///a/b?x=/../y"}, // the query is not a path
		{"mail:inbox/../drafts/x", "mail:drafts/x"},
		{"urn:isbn:0451450523", "urn:isbn:0451450523"},
		{"notes/../secret/key", "secret/key"},
		{"../secret", "../secret"},
		{"/secret//key/", "/secret/key"},
		{"1/../A:b", "./A:b"},
		{"", ""},
	} {
		got := CanonicalURI(tc.in)
		if got != tc.want {
			t.Errorf("CanonicalURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again := CanonicalURI(got); again != got {
			t.Errorf("CanonicalURI(%q) = %q, not canonical: again %q", tc.in, got, again)
		}
	}
}

func TestCanonicalFastPathsDoNotAllocate(t *testing.T) {
	for _, f := range []func(){
		func() { CanonicalPath("/v1/customers/42") },
		func() { CanonicalMethod("GET") },
		func() { CanonicalURI("file:///pub/docs/a.txt") },
		func() { CanonicalURI("mail://inbox/msg-1") },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("canonical input: %v allocations", n)
		}
	}
}

// TestCanonicalEdges decides the spellings the attack run used, and more,
// against deny rules written for one spelling, with Decide and Explain.
func TestCanonicalEdges(t *testing.T) {
	snap := compileSrc(t, policyDoc("p", `
subjects: [spiffe://writ.local/agent/**]
rules:
  - {name: all-v1, effect: allow, targets: [{http: {service: api, methods: ["*"], paths: ["/v1/**"]}}]}
  - {name: no-secret, effect: deny, targets: [{http: {service: api, paths: ["/v1/secret"]}}]}
  - {name: no-admin, effect: deny, targets: [{http: {service: api, paths: ["/v1/admin/"]}}]}
  - {name: no-delete, effect: deny, targets: [{http: {service: api, methods: [DELETE]}}]}
  - {name: files, effect: allow, targets: [{mcp: {server: files, resources: ["file:///**", "mail://inbox/**"]}}]}
  - {name: no-secret-files, effect: deny, targets: [{mcp: {server: files, resources: ["file:///secret/**", "FILE:///Private//**"]}}]}
  - {name: no-spam, effect: deny, targets: [{mcp: {server: files, resources: ["mail://INBOX/spam"]}}]}
  - {name: cel-sees-canonical, effect: deny, targets: [{http: {service: api}}], when: 'request.path.startsWith("/v1/cel") || request.method == "PATCH"'}
`))
	res := func(u string) *Request {
		r := mcpReq("files", "")
		r.MCP = MCPRequest{Server: "files", Resource: u}
		return r
	}
	for _, tc := range []struct {
		name   string
		req    *Request
		effect Effect
		rule   string
	}{
		{"secret", httpReq("api", "GET", "/v1/secret"), Deny, "no-secret"},
		{"secret trailing slash", httpReq("api", "GET", "/v1/secret/"), Deny, "no-secret"},
		{"secret double slash", httpReq("api", "GET", "/v1/secret//"), Deny, "no-secret"},
		{"secret inner double slash", httpReq("api", "GET", "/v1//secret"), Deny, "no-secret"},
		{"secret dot", httpReq("api", "GET", "/v1/./secret/."), Deny, "no-secret"},
		{"secret dot dot", httpReq("api", "GET", "/v1/secret/x/.."), Deny, "no-secret"},
		{"secret climbing", httpReq("api", "GET", "/v1/public/../secret"), Deny, "no-secret"},
		{"below secret is not secret", httpReq("api", "GET", "/v1/secret/x"), Allow, "all-v1"},
		{"pattern with trailing slash", httpReq("api", "GET", "/v1/admin"), Deny, "no-admin"},
		{"pattern with trailing slash, request too", httpReq("api", "GET", "/v1/admin/"), Deny, "no-admin"},
		{"public", httpReq("api", "GET", "/v1/public/"), Allow, "all-v1"},
		{"DELETE", httpReq("api", "DELETE", "/v1/x"), Deny, "no-delete"},
		{"delete", httpReq("api", "delete", "/v1/x"), Deny, "no-delete"},
		{"Delete", httpReq("api", "Delete", "/v1/x"), Deny, "no-delete"},
		{"get is GET", httpReq("api", "get", "/v1/x"), Allow, "all-v1"},
		{"not a token", httpReq("api", "GET /v1/x HTTP/1.1\r\nX:", "/v1/x"), Deny, ""},
		{"empty method", httpReq("api", "", "/v1/x"), Deny, ""},
		{"CEL sees the canonical path", httpReq("api", "GET", "//v1/./cel"), Deny, "cel-sees-canonical"},
		{"CEL sees the canonical method", httpReq("api", "patch", "/v1/x"), Deny, "cel-sees-canonical"},
		{"file secret", res("file:///secret/key"), Deny, "no-secret-files"},
		{"file dot dot", res("file:///pub/../secret/key"), Deny, "no-secret-files"},
		{"file double slash", res("file:////secret//key"), Deny, "no-secret-files"},
		{"file escaped letter", res("file:///%73ecret/key"), Deny, "no-secret-files"},
		{"file escaped slash", res("file:///pub%2F..%2Fsecret/key"), Deny, "no-secret-files"},
		{"file upper scheme", res("FILE:///secret/key"), Deny, "no-secret-files"},
		{"file localhost", res("file://localhost/secret/key"), Deny, "no-secret-files"},
		{"file climbing above root", res("file:///../secret/key"), Deny, "no-secret-files"},
		{"pattern in other case", res("file:///Private/x"), Deny, "no-secret-files"},
		{"path case matters", res("file:///private/x"), Allow, "files"},
		{"file public", res("file:///pub/key"), Allow, "files"},
		{"host case", res("mail://InBox/spam"), Deny, "no-spam"},
		{"host case, pattern upper", res("mail://inbox/spam/"), Deny, "no-spam"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := *tc.req
			d := snap.Decide(tc.req)
			if d.Effect != tc.effect || d.Rule != tc.rule {
				t.Fatalf("Decide = %s by %q (%v), want %s by %q", d.Effect, d.Rule, d.Reasons, tc.effect, tc.rule)
			}
			ex := snap.Explain(tc.req)
			if ex.Decision.Effect != d.Effect || ex.Decision.Rule != d.Rule {
				t.Fatalf("Explain = %s by %q, Decide %s by %q", ex.Decision.Effect, ex.Decision.Rule, d.Effect, d.Rule)
			}
			if tc.req.HTTP.Method != orig.HTTP.Method || tc.req.HTTP.Path != orig.HTTP.Path || tc.req.MCP.Resource != orig.MCP.Resource {
				t.Fatalf("the caller's request was changed: %+v", tc.req)
			}
		})
	}
}

func TestCanonicalPatterns(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{`{http: {service: a, paths: ["/v1/../secret"]}}`, `spec.rules[0].targets[0].http.paths[0]: bad path pattern: pattern "/v1/../secret": "." and ".." segments are not allowed`},
		{`{http: {service: a, paths: ["/v1/./x"]}}`, `spec.rules[0].targets[0].http.paths[0]: bad path pattern: pattern "/v1/./x": "." and ".." segments`},
		{`{mcp: {server: f, resources: ["file:///pub/../secret/**"]}}`, `spec.rules[0].targets[0].mcp.resources[0]: bad resource pattern: pattern "file:///pub/../secret/**": "." and ".."`},
		{`{mcp: {server: f, resources: ["file:///pub/%2e%2e/x"]}}`, `spec.rules[0].targets[0].mcp.resources[0]: bad resource pattern`},
	} {
		docs, err := resource.Parse("p.yaml", []byte(policyDoc("p", "subjects: [user:a]\nrules:\n  - {name: r, effect: deny, targets: ["+tc.target+"]}\n")))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Compile(docs, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v\nwant %q", tc.target, err, tc.want)
		}
	}
}

func TestValidateRefusesBadMethod(t *testing.T) {
	r := httpReq("api", "DEL ETE", "/x")
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "request.method") {
		t.Fatalf("Validate = %v", err)
	}
	r.HTTP.Method = "delete"
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate(delete) = %v", err)
	}
}

// spellPath returns an equivalent spelling of the canonical path c (rooted
// when rooted is set): ops insert empty, "." and "x/.." segments, climb
// above the root, and add a trailing slash. lead allows an empty first
// segment (not after a scheme without authority, where "//" starts one).
func spellPath(c string, rooted, lead bool, ops []byte) string {
	body := c
	if rooted {
		body = strings.TrimPrefix(c, "/")
	}
	var segs []string
	if body != "" {
		segs = strings.Split(body, "/")
	}
	trailing := false
	for _, op := range ops {
		i := int(op>>3) % (len(segs) + 1)
		var ins []string
		switch op & 7 {
		case 0:
			if i == 0 && (!rooted || !lead) {
				continue // it would root the path, or start an authority
			}
			ins = []string{""}
		case 1:
			ins = []string{"."}
		case 2, 3:
			ins = []string{"x" + strings.Repeat("y", int(op&1)), ".."}
		case 4:
			if rooted && i == 0 {
				ins = []string{".."} // climbing above the root stays at it
			}
		case 5:
			trailing = true
		}
		segs = append(segs[:i], append(ins, segs[i:]...)...)
	}
	out := strings.Join(segs, "/")
	if trailing && len(segs) > 0 {
		out += "/"
	}
	if rooted {
		return "/" + out
	}
	return out
}

// spellURI returns an equivalent spelling of the canonical URI c.
func spellURI(c string, ops []byte) string {
	scheme, rest, hasScheme := splitScheme(c)
	var b strings.Builder
	if hasScheme {
		if len(ops) > 0 && ops[0]&1 == 1 {
			scheme = asciiUpper(scheme)
		}
		b.WriteString(scheme + ":")
	}
	hasAuth := false
	if auth, ok := strings.CutPrefix(rest, "//"); ok {
		hasAuth = true
		end := strings.IndexAny(auth, "/?#")
		if end < 0 {
			end = len(auth)
		}
		host := auth[:end]
		rest = auth[end:]
		at := strings.LastIndexByte(host, '@') + 1
		switch {
		case len(ops) > 0 && ops[0]&2 != 0:
			host = host[:at] + asciiUpper(host[at:])
		case len(ops) > 0 && ops[0]&4 != 0 && strings.EqualFold(scheme, "file") && host == "":
			host = "localhost"
		}
		b.WriteString("//" + host)
		if rest == "" || rest[0] != '/' {
			b.WriteString(rest)
			return b.String()
		}
	}
	path, tail := rest, ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		path, tail = rest[:i], rest[i:]
	}
	if strings.HasPrefix(path, "./") || path == "." {
		return c // a relative name kept from reading as a scheme: leave it
	}
	if len(ops) > 1 {
		path = spellPath(path, strings.HasPrefix(path, "/"), hasAuth, ops[1:])
	}
	// Percent-encode one unreserved character or slash of the path.
	if len(ops) > 2 && strings.IndexByte(c, '%') < 0 && path != "" {
		i := int(ops[2]) % len(path)
		if ch := path[i]; isUnreserved(ch) || (ch == '/' && i > 0) {
			path = path[:i] + "%" + strings.ToLower(string(upperHex[ch>>4])) + string(upperHex[ch&15]) + path[i+1:]
		}
	}
	b.WriteString(path)
	b.WriteString(tail)
	return b.String()
}

// FuzzCanonical checks that canonical forms are idempotent, that every
// equivalent spelling of a canonical path or URI has the same canonical
// form, and that deny (and allow) patterns decide every spelling as they
// decide the canonical one.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"/v1/secret", "/v1/secret/x", "/a/q/b", "/", "file:///secret/key", "file:///a/x/b", "mail://inbox/spam",
		"mail:inbox/x", "urn:x:y", "https://u@h.example:1/p?q#f", "a/b", "../x", "file:///%20x", "x%", "1/../A:b"} {
		f.Add(s, []byte{0, 9, 18, 27, 36, 45, 2, 11})
	}
	snap := compileSrc(f, policyDoc("p", `
subjects: [spiffe://writ.local/agent/**]
rules:
  - {name: any-path, effect: allow, targets: [{http: {service: api, paths: ["/**"]}}]}
  - {name: no-secret, effect: deny, targets: [{http: {service: api, paths: ["/v1/secret", "/a/*/b"]}}]}
  - {name: no-below, effect: deny, targets: [{http: {service: api, paths: ["/v1/secret/**/x"]}}]}
  - {name: any-resource, effect: allow, targets: [{mcp: {server: files, resources: ["**"]}}]}
  - {name: no-secret-files, effect: deny, targets: [{mcp: {server: files, resources: ["file:///secret/**", "file:///a/*/b", "mail://inbox/spam"]}}]}
`))
	f.Fuzz(func(t *testing.T, s string, ops []byte) {
		c := CanonicalPath(s)
		if again := CanonicalPath(c); again != c || !isCanonicalPath(c) {
			t.Fatalf("CanonicalPath(%q) = %q; again %q", s, c, again)
		}
		v := spellPath(c, true, true, ops)
		if got := CanonicalPath(v); got != c {
			t.Fatalf("CanonicalPath(%q) = %q, but the spelling %q of it gives %q", s, c, v, got)
		}
		a, b := snap.Decide(httpReq("api", "GET", c)), snap.Decide(httpReq("api", "GET", v))
		if a.Effect != b.Effect || a.Rule != b.Rule {
			t.Fatalf("path %q: %s by %q; spelled %q: %s by %q", c, a.Effect, a.Rule, v, b.Effect, b.Rule)
		}

		u := CanonicalURI(s)
		if again := CanonicalURI(u); again != u {
			t.Fatalf("CanonicalURI(%q) = %q; again %q", s, u, again)
		}
		if isCanonicalURI(s) && u != s {
			t.Fatalf("isCanonicalURI(%q) but CanonicalURI = %q", s, u)
		}
		w := spellURI(u, ops)
		if got := CanonicalURI(w); got != u {
			t.Fatalf("CanonicalURI(%q) = %q, but the spelling %q of it gives %q", s, u, w, got)
		}
		res := func(x string) *Request {
			r := mcpReq("files", "")
			r.MCP = MCPRequest{Server: "files", Resource: x}
			return r
		}
		if u == "" {
			return
		}
		a, b = snap.Decide(res(u)), snap.Decide(res(w))
		if a.Effect != b.Effect || a.Rule != b.Rule {
			t.Fatalf("resource %q: %s by %q; spelled %q: %s by %q", u, a.Effect, a.Rule, w, b.Effect, b.Rule)
		}
	})
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}
