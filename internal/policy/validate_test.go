package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/resource"
)

// TestValidationErrors checks that every mistake is reported at its file,
// line, column and field with a message saying what to do.
func TestValidationErrors(t *testing.T) {
	const head = "apiVersion: writ.dev/v1\nkind: AccessPolicy\nmetadata: {name: p}\nspec:\n"
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"unknown field", "  subjects: [spiffe://writ.local/a]\n  rulez: []\n",
			"p.yaml:6:3: spec.rulez: unknown field"},
		{"unknown rule field", "  subjects: [spiffe://writ.local/a]\n  rules:\n    - name: r\n      effect: allow\n      target: []\n",
			"p.yaml:9:7: spec.rules[0].target: unknown field"},
		{"no subjects", "  rules: []\n", "spec.subjects: missing"},
		{"wrong type budget", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}], budget: lots}\n",
			`p.yaml:7:63: spec.rules[0].budget: want an integer (int), got "lots"`},
		{"fractional budget", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{task: {}}]\n      budget: 1.5\n",
			`p.yaml:10:15: spec.rules[0].budget: want an integer (int), got "1.5"`},
		{"wrong type required", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{task: {}}]\n      approval: {required: sometimes}\n",
			`p.yaml:10:28: spec.rules[0].approval.required: want true or false, got "sometimes"`},
		{"bad spiffe pattern", "  subjects: [spiffe://writ.local/agent/draft*]\n  rules: []\n",
			`p.yaml:5:14: spec.subjects[0]: "spiffe://writ.local/agent/draft*": segment "draft*": '*' must be a whole segment`},
		{"dstar not last", "  subjects: [spiffe://writ.local/**/x]\n  rules: []\n", "must be the last segment"},
		{"wildcard trust domain", "  subjects: [spiffe://*/x]\n  rules: []\n", `trust domain "*" is not valid`},
		{"no path", "  subjects: [spiffe://writ.local]\n  rules: []\n", "names no workload path; use spiffe://writ.local/**"},
		{"unknown subject form", "  subjects: [drafter]\n  rules: []\n", `spec.subjects[0]: "drafter" is not a subject`},
		{"bad label selector", "  subjects: [\"label:team\"]\n  rules: []\n", `"team" is not KEY=VALUE`},
		{"bad effect", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: permit\n      targets: [{task: {}}]\n",
			`p.yaml:8:15: spec.rules[0].effect: "permit" is not an effect; one of allow, deny, escalate`},
		{"missing effect", "  subjects: [user:a]\n  rules:\n    - name: r\n      targets: [{task: {}}]\n",
			"p.yaml:7:7: spec.rules[0].effect: missing"},
		{"missing name", "  subjects: [user:a]\n  rules:\n    - effect: allow\n      targets: [{task: {}}]\n", "spec.rules[0].name: missing"},
		{"duplicate rule", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}]}\n    - {name: r, effect: deny, targets: [{task: {}}]}\n",
			`p.yaml:8:14: spec.rules[1].name: rule "r" is already defined`},
		{"no targets", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow}\n", "spec.rules[0].targets: missing"},
		{"two target kinds", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets:\n        - {http: {service: a}, mcp: {server: b}}\n",
			"p.yaml:10:11: spec.rules[0].targets[0]: names more than one of http, mcp, token and task"},
		{"empty target", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{}]}\n", "spec.rules[0].targets[0]: empty"},
		{"lower-case method", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{http: {service: a, methods: [get]}}]\n",
			`p.yaml:9:47: spec.rules[0].targets[0].http.methods[0]: "get": write HTTP methods in upper case (GET)`},
		{"path without slash", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{http: {service: a, paths: [v1/*]}}]\n",
			`spec.rules[0].targets[0].http.paths[0]: "v1/*": paths start with /`},
		{"bad glob", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{mcp: {server: a, tools: [\"read_[\"]}}]\n",
			`spec.rules[0].targets[0].mcp.tools[0]: bad tool pattern: pattern "read_[": segment "read_[" is malformed`},
		{"half dstar", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{http: {service: a, paths: [\"/a**\"]}}]\n",
			"'**' must be a whole segment"},
		{"missing server", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{mcp: {tools: [x]}}]\n",
			"spec.rules[0].targets[0].mcp.server: missing"},
		{"empty tool list", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{mcp: {server: a, tools: []}}]\n",
			"spec.rules[0].targets[0].mcp.tools: empty list"},
		{"unknown label", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: deny\n      targets: [{labels: [public_sinks]}]\n",
			`p.yaml:9:27: spec.rules[0].targets[0].labels[0]: unknown label "public_sinks": use one of private_data, public_sink, untrusted_content, or declare it in spec.labels`},
		{"unknown flow label", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: deny\n      targets: [{labels: [public_sink]}]\n      flow: {touched_all: [pii]}\n",
			`p.yaml:10:28: spec.rules[0].flow.touched_all[0]: unknown label "pii"`},
		{"bad declared label", "  subjects: [user:a]\n  labels: [Customer-PII]\n  rules: []\n", `spec.labels[0]: "Customer-PII" is not a valid label name`},
		{"empty flow", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: deny, targets: [{task: {}}], flow: {}}\n", "spec.rules[0].flow: empty"},
		{"cel undeclared", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{task: {}}]\n      when: task.purpse == \"x\"\n",
			"p.yaml:10:17: spec.rules[0].when: condition does not compile: undeclared reference to 'task.purpse' (did you mean 'task.purpose'?)"},
		{"cel type error", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{task: {}}]\n      when: 'task.calls == \"3\"'\n",
			"p.yaml:10:25: spec.rules[0].when: condition does not compile: found no matching overload for '_==_' applied to '(int, string)'"},
		{"cel not bool", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{task: {}}]\n      when: task.purpose\n",
			"spec.rules[0].when: condition does not compile: the condition is a string; it must be a bool"},
		{"cel syntax in block", "  subjects: [user:a]\n  rules:\n    - name: r\n      effect: allow\n      targets: [{task: {}}]\n      when: |\n        task.calls > 1 &&\n        task.purpse == \"x\"\n",
			"p.yaml:12: spec.rules[0].when: condition does not compile: undeclared reference to 'task.purpse'"},
		{"bad rate", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}], rate: {limit: 60/minute}}\n",
			`p.yaml:7:69: spec.rules[0].rate.limit: parse rate "60/minute": "minute" is not a window`},
		{"bad rate key", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}], rate: {limit: 1/s, per: user}}\n",
			`spec.rules[0].rate.per: "user": a rate is counted per instance, subject or task`},
		{"bucket mismatch", "  subjects: [user:a]\n  rules:\n    - {name: a, effect: allow, targets: [{task: {}}], rate: {limit: 1/s, bucket: b}}\n    - {name: c, effect: allow, targets: [{task: {}}], rate: {limit: 2/s, bucket: b}}\n",
			`spec.rules[1].rate: bucket "b" is 1/1s per subject in rule "a"`},
		{"deny with obligations", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: deny, targets: [{task: {}}], max_ttl: 5m}\n",
			"spec.rules[0].max_ttl: a deny rule grants nothing, so it takes no max_ttl"},
		{"escalate with rate", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: escalate, targets: [{task: {}}], rate: {limit: 1/s}}\n",
			"spec.rules[0].rate: an escalate rule grants nothing"},
		{"escalate without approval", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: escalate, targets: [{task: {}}], approval: {required: false}}\n",
			"spec.rules[0].approval.required: an escalate rule always requires approval"},
		{"bad approver", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}], approval: {approvers: [bob]}}\n",
			`spec.rules[0].approval.approvers[0]: "bob": an approver is user:NAME, group:NAME or an exact SPIFFE ID`},
		{"bad timeout", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}], approval: {timeout: soon}}\n",
			`spec.rules[0].approval.timeout: "soon" is not a duration`},
		{"bad max_ttl", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}], max_ttl: -5m}\n", "spec.rules[0].max_ttl: must be positive"},
		{"negative budget", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{task: {}}], budget: -1}\n", "spec.rules[0].budget: must not be negative"},
		{"wildcard scope", "  subjects: [user:a]\n  rules:\n    - {name: r, effect: allow, targets: [{token: {scopes: [\"read*\"]}}]}\n",
			`spec.rules[0].targets[0].token.scopes[0]: "read*": scopes are exact names`},
		{"wrong type", "  subjects: spiffe://writ.local/a\n  rules: []\n", "p.yaml:5:13: spec.subjects: want a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := resource.Parse("p.yaml", []byte(head+tc.spec))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = ValidateDocument(docs[0])
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			if _, err := Compile(docs, nil); err == nil {
				t.Fatal("Compile accepted what ValidateDocument rejected")
			}
		})
	}
}

func TestErrorsAreAllReported(t *testing.T) {
	src := policyDoc("p", `
subjects: [nope, spiffe://writ.local/a]
rules:
  - {name: a, effect: maybe, targets: [{task: {}}]}
  - {name: b, effect: allow, targets: [{task: {}}], when: "x == 1"}
`)
	docs, err := resource.Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = ValidateDocument(docs[0])
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"spec.subjects[0]", "spec.rules[0].effect", "spec.rules[1].when"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %s:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("got %d errors, want 3:\n%v", n, err)
	}
}

func TestDuplicatePolicyAcrossFiles(t *testing.T) {
	a, _ := resource.Parse("a.yaml", []byte(policyDoc("p", "subjects: [user:a]\nrules: []\n")))
	b, _ := resource.Parse("b.yaml", []byte(policyDoc("p", "subjects: [user:b]\nrules: []\n")))
	_, err := Compile(append(a, b...), nil)
	if err == nil || !strings.Contains(err.Error(), `b.yaml:3:18: metadata.name: policy "p" is also defined at a.yaml:1`) {
		t.Fatalf("err = %v", err)
	}
}

func TestWarnings(t *testing.T) {
	src := policyDoc("p", `
subjects: [spiffe://writ.local/agent/x, spiffe://writ.local/agent/x]
labels: [private_data]
rules:
  - name: read-finance
    effect: allow
    targets: [{http: {service: share, methods: [GET], paths: [/finance/reports/**]}}]
  - name: no-finance
    effect: deny
    targets: [{http: {service: share, paths: [/finance/**]}}]
  - name: conditional-deny
    effect: deny
    targets: [{mcp: {server: mail}}]
    when: mcp.tool == "send"
  - name: mail
    effect: allow
    targets: [{mcp: {server: mail, tools: [send]}}]
  - name: never
    effect: allow
    targets: [{task: {}}]
    when: "false"
  - name: always
    effect: allow
    targets: [{task: {purposes: [x]}}]
    when: "true"
  - name: same-escalate
    effect: escalate
    targets: [{task: {purposes: [x]}}]
`)
	docs, err := resource.Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	warns, err := CheckDocument(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`p.yaml:5:43: spec.subjects[1]: subject "spiffe://writ.local/agent/x" is listed twice`,
		`p.yaml:6:12: spec.labels[0]: "private_data" is built in`,
		`p.yaml:8:7: spec.rules[0]: rule "read-finance" can never apply: deny rule "no-finance" (line 11) matches every call it covers`,
		`spec.rules[4].when: rule "never" never applies: its condition is always false`,
		`spec.rules[5].when: the condition is always true; remove it`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing warning %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, `"mail" can never apply`) {
		t.Errorf("a conditional deny was taken to shadow a rule:\n%s", all)
	}
	if len(got) != 5 {
		t.Errorf("got %d warnings, want 5:\n%s", len(got), all)
	}
}

func TestSpecJSONRoundTripAndStored(t *testing.T) {
	docs, err := resource.Load("../../examples/policy")
	if err != nil {
		t.Fatal(err)
	}
	var stored []Stored
	for i, d := range docs {
		if d.Kind != resource.KindAccessPolicy {
			continue
		}
		spec, err := DecodeSpec(d)
		if err != nil {
			t.Fatal(err)
		}
		b, err := EncodeSpec(d)
		if err != nil {
			t.Fatal(err)
		}
		var back Spec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*spec, back) {
			t.Fatalf("%s does not round-trip through JSON:\n%+v\n%+v", d.Ref(), *spec, back)
		}
		stored = append(stored, Stored{Name: d.Name, Version: int64(i + 3), Spec: b})
	}
	fromFiles, err := Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	fromStore, err := CompileStored(stored)
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunTests(docs, tNow)
	if err != nil {
		t.Fatal(err)
	}
	// The stored snapshot decides every example case like the files do,
	// naming the stored version.
	tests := docs[0]
	td, err := decodeTest(tests)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range td.spec.Cases {
		if tc.Repeat > 1 {
			continue
		}
		a, b := fromFiles.Decide(&tc.Request), fromStore.Decide(&tc.Request)
		if a.Effect != b.Effect || a.Rule != b.Rule {
			t.Fatalf("case %q: files %s/%s, store %s/%s", tc.Name, a.Effect, a.Rule, b.Effect, b.Rule)
		}
		if b.Policy != "" && !strings.Contains(b.Policy, "@") {
			t.Fatalf("stored decision names no version: %q", b.Policy)
		}
		_ = results[i]
	}

	// A stored spec that no longer compiles names the policy, its version
	// and the field; nothing points into a document nobody wrote.
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"when", `{"subjects":["user:a"],"rules":[{"name":"r","effect":"allow","targets":[{"task":{}}],"when":"nope"}]}`,
			"bad@7: spec.rules[0].when: condition does not compile: "},
		{"effect", `{"subjects":["user:a"],"rules":[{"name":"r","effect":"allow","targets":[{"task":{}}]},{"name":"s","effect":"maybe","targets":[{"task":{}}]}]}`,
			`bad@7: spec.rules[1].effect: "maybe" is not an effect`},
		{"broken JSON", `{`, "bad@7: spec: stored spec does not decode: "},
		{"unknown field", `{"subjects":["user:a"],"rulez":[]}`, `bad@7: spec: stored spec does not decode: json: unknown field "rulez"`},
		{"trailing value", `{"subjects":["user:a"]} {}`, "bad@7: spec: stored spec does not decode: more than one JSON value"},
		{"wrong type", `{"subjects":["user:a"],"rules":[{"name":"r","budget":"lots"}]}`, "bad@7: spec: stored spec does not decode: json: cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileStored([]Stored{{Name: "bad", Version: 7, Spec: []byte(tc.spec)}})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant prefix %q", err, tc.want)
			}
		})
	}
	if _, err := CompileStored([]Stored{{Name: "Not valid", Spec: []byte(`{}`)}}); err == nil {
		t.Fatal("invalid stored name accepted")
	}
	two := []Stored{{Name: "a", Version: 1, Spec: []byte(`{"subjects":["user:a"]}`)}, {Name: "a", Version: 2, Spec: []byte(`{"subjects":["user:a"]}`)}}
	if _, err := CompileStored(two); err == nil || !strings.Contains(err.Error(), "a@2: metadata.name: policy \"a\" is also defined at the store as a@1") {
		t.Fatalf("duplicate stored names: %v", err)
	}
}

// TestCompileAllMixesSources checks that documents and stored specs compile
// together: each error keeps its own kind of position, and a document and a
// stored spec may not share a name.
func TestCompileAllMixesSources(t *testing.T) {
	docs, err := resource.Parse("new.yaml", []byte(policyDoc("p", "subjects: [user:a]\nrules:\n  - {name: r, effect: allow, targets: [{task: {}}], when: 'nope'}\n")))
	if err != nil {
		t.Fatal(err)
	}
	old := Stored{Name: "q", Version: 3, Spec: []byte(`{"subjects":["user:a"],"rules":[{"name":"r","effect":"nah","targets":[{"task":{}}]}]}`)}
	_, err = CompileAll([]Input{FromDocument(docs[0], 2), FromStored(old)})
	if err == nil {
		t.Fatal("compiled")
	}
	for _, want := range []string{"new.yaml:7:", "spec.rules[0].when: condition does not compile", "q@3: spec.rules[0].effect: \"nah\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	same := Stored{Name: "p", Version: 1, Spec: []byte(`{"subjects":["user:a"]}`)}
	_, err = CompileAll([]Input{FromStored(same), FromDocument(docs[0], 2)})
	if err == nil || !strings.Contains(err.Error(), `new.yaml:3:`) || !strings.Contains(err.Error(), "also defined at the store as p@1") {
		t.Fatalf("duplicate across sources: %v", err)
	}
}

func TestRequestJSON(t *testing.T) {
	in := `{
  "kind": "mcp",
  "subject": {"spiffe_id": "spiffe://writ.local/agent/drafter", "labels": {"team": "mail"}},
  "instance": "inst_1",
  "task": {"id": "t1", "purpose": "reply", "on_behalf_of": "alice", "groups": ["staff"], "labels_seen": ["private_data"], "calls": 4},
  "mcp": {"server": "mail", "tool": "send_message", "args": {"to": ["bob@example.com"], "n": 3}},
  "target_labels": ["public_sink"],
  "source": {"ip": "10.0.0.1", "node": "node-1"},
  "now": "2026-03-02T09:30:00Z"
}`
	r, err := ParseRequest("req.json", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if r.Task.Calls != 4 || r.MCP.Args["n"] != 3.0 || !r.Now.Equal(tNow) || r.Subject.Labels["team"] != "mail" {
		t.Fatalf("decoded %+v", r)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ParseRequest("again", out)
	if err != nil || !reflect.DeepEqual(r, r2) {
		t.Fatalf("request does not round-trip: %v\n%s", err, out)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"kind": "mcp", "subjet": {}}`, `req.json:1:30: unknown field "subjet"`},
		{"{\n  \"kind\": 7}", "req.json:2:12: kind: want policy.Kind, got JSON number"},
		{`{"kind": "mcp"`, "req.json:1:15: unexpected EOF"},
		{``, "empty"},
		{`{} {}`, "more than one JSON value"},
		{`{"kind": "mcp", "subject": {"spiffe_id": "x"}}`, `subject.spiffe_id: "x" is not a SPIFFE ID`},
		{`{"kind": "smtp", "subject": {"spiffe_id": "spiffe://a/b"}}`, `kind: "smtp" is not one of`},
		{`{"kind": "mcp", "subject": {"spiffe_id": "spiffe://a/b"}, "mcp": {"server": "s", "tool": "t", "prompt": "p"}}`, "exactly one of tool, resource and prompt"},
		{`{"kind": "http", "subject": {"spiffe_id": "spiffe://a/b"}, "request": {"service": "s", "method": "GET", "path": "x"}}`, "must start with /"},
	} {
		_, err := ParseRequest("req.json", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRequest(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestPolicyTestRunner(t *testing.T) {
	src := policyDoc("p", `
subjects: [spiffe://writ.local/agent/x]
rules:
  - {name: r, effect: allow, targets: [{mcp: {server: s}}], when: now.getHours() < 12}
`) + `apiVersion: writ.dev/v1
kind: PolicyTest
metadata: {name: t}
spec:
  defaults: {kind: mcp, subject: {spiffe_id: spiffe://writ.local/agent/x}, mcp: {server: s, tool: a}}
  cases:
    - {name: morning, request: {now: "2026-03-02T09:00:00Z"}, expect: {effect: allow, rule: r, policy: p}}
    - {name: wrong, request: {now: 2026-03-02T13:00:00Z}, expect: {effect: allow, rule: r}}
    - {name: spec-now, request: {}, expect: {effect: deny}}
`
	docs, err := resource.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunTests(docs, time.Date(2026, 1, 1, 15, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || !res[0].Pass || res[1].Pass || !res[2].Pass {
		t.Fatalf("results = %+v", res)
	}
	if res[1].Line != 16 || !strings.Contains(strings.Join(res[1].Failures, "\n"), "effect: got deny, want allow") {
		t.Fatalf("failure = %+v", res[1])
	}
	for _, tc := range []struct{ spec, want string }{
		{"  cases: []\n", "t.yaml:5:10: spec.cases: missing"},
		{"  cases:\n    - {request: {kind: mcp}, expect: {effect: allow}}\n", "spec.cases[0].name: missing"},
		{"  cases:\n    - {name: a, request: {kind: mcp, subject: {spiffe_id: bad}}, expect: {effect: allow}}\n", `t.yaml:6:59: spec.cases[0].request.subject.spiffe_id: "bad" is not a SPIFFE ID`},
		{"  cases:\n    - {name: a, request: {kind: task, subject: {spiffe_id: spiffe://a/b}, task: {purpose: x}}, expect: {effect: maybe}}\n", `spec.cases[0].expect.effect: "maybe" is not an effect`},
		{"  cases:\n    - {name: a, request: {kind: task, now: yesterday}, expect: {effect: deny}}\n", "spec.cases[0].request.now: want a time"},
		{"  policies: [nope]\n  cases:\n    - {name: a, request: {kind: task, subject: {spiffe_id: spiffe://a/b}, task: {purpose: x}}, expect: {effect: deny}}\n", `spec.policies[0]: no AccessPolicy named "nope"`},
	} {
		docs, err := resource.Parse("t.yaml", []byte("apiVersion: writ.dev/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n"+tc.spec))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RunTests(docs, tNow); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RunTests(%q) = %v, want %q", tc.spec, err, tc.want)
		}
	}
}
