package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

// policyDoc returns an AccessPolicy document with the given spec body
// (indented two spaces under spec:).
func policyDoc(name, spec string) string {
	return "apiVersion: writ.dev/v1\nkind: AccessPolicy\nmetadata: {name: " + name + "}\nspec:\n" + indent(spec) + "---\n"
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(strings.TrimLeft(s, "\n")) {
		b.WriteString("  " + line)
	}
	if !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	return b.String()
}

func compileSrc(t testing.TB, src string) *Snapshot {
	t.Helper()
	docs, err := resource.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	s, err := Compile(docs, nil)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

var tNow = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) // a Monday

const agentID = "spiffe://writ.local/agent/drafter"

func mcpReq(server, tool string) *Request {
	return &Request{Kind: KindMCP, Subject: Subject{SpiffeID: agentID}, Instance: "inst_1",
		MCP: MCPRequest{Server: server, Tool: tool}, Now: tNow}
}

func httpReq(service, method, path string) *Request {
	return &Request{Kind: KindHTTP, Subject: Subject{SpiffeID: agentID}, Instance: "inst_1",
		HTTP: HTTPRequest{Service: service, Method: method, Path: path}, Now: tNow}
}

type decideCase struct {
	name   string
	req    *Request
	effect Effect
	rule   string // "" checks that no rule decided (default deny) when effect is deny
	reason string // substring of a reason, optional
}

func runDecide(t *testing.T, snap *Snapshot, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := snap.Decide(tc.req)
			if d.Effect != tc.effect || d.Rule != tc.rule {
				t.Fatalf("decision = %s by %q (%v), want %s by %q", d.Effect, d.Rule, d.Reasons, tc.effect, tc.rule)
			}
			if len(d.Reasons) == 0 {
				t.Fatal("decision has no reason")
			}
			if tc.reason != "" && !strings.Contains(strings.Join(d.Reasons, "\n"), tc.reason) {
				t.Fatalf("reasons %q do not mention %q", d.Reasons, tc.reason)
			}
			// The unindexed explanation must always agree.
			ex := snap.Explain(tc.req)
			if ex.Decision.Effect != d.Effect || ex.Decision.Rule != d.Rule || ex.Decision.Policy != d.Policy {
				t.Fatalf("Explain decided %s by %q, Decide %s by %q", ex.Decision.Effect, ex.Decision.Rule, d.Effect, d.Rule)
			}
		})
	}
}

func TestDefaultDenyAndDenyWins(t *testing.T) {
	snap := compileSrc(t, policyDoc("drafter", `
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: mail
    effect: allow
    targets: [{mcp: {server: mail}}]
  - name: no-delete
    effect: deny
    targets: [{mcp: {server: mail, tools: [delete_*]}}]
`)+policyDoc("guard", `
subjects: [spiffe://writ.local/**]
rules:
  - name: no-admin-tools
    effect: deny
    targets: [{mcp: {server: "*", tools: ["admin_*"]}}]
`))
	runDecide(t, snap, []decideCase{
		{"allowed", mcpReq("mail", "read"), Allow, "mail", `allowed by rule "mail" of policy drafter`},
		{"deny in same policy wins", mcpReq("mail", "delete_all"), Deny, "no-delete", ""},
		{"deny in another policy wins", mcpReq("mail", "admin_reset"), Deny, "no-admin-tools", "guard"},
		{"other server: default deny", mcpReq("calendar", "read"), Deny, "", "no rule allows " + agentID + " to call tool read on MCP server calendar"},
		{"other subject: default deny", &Request{Kind: KindMCP, Subject: Subject{SpiffeID: "spiffe://writ.local/agent/other"}, MCP: MCPRequest{Server: "mail", Tool: "read"}}, Deny, "", "default deny"},
		{"other trust domain", &Request{Kind: KindMCP, Subject: Subject{SpiffeID: "spiffe://evil.example/agent/drafter"}, MCP: MCPRequest{Server: "mail", Tool: "read"}}, Deny, "", "default deny"},
		{"not a SPIFFE ID", &Request{Kind: KindMCP, Subject: Subject{SpiffeID: "drafter"}, MCP: MCPRequest{Server: "mail", Tool: "read"}}, Deny, "", "not a SPIFFE ID"},
		{"no subject", &Request{Kind: KindMCP, MCP: MCPRequest{Server: "mail", Tool: "read"}}, Deny, "", "not a SPIFFE ID"},
		{"incomplete request", &Request{Kind: KindMCP, Subject: Subject{SpiffeID: agentID}, MCP: MCPRequest{Server: "mail"}}, Deny, "", "incomplete"},
		{"unknown kind", &Request{Kind: "smtp", Subject: Subject{SpiffeID: agentID}}, Deny, "", "incomplete"},
		{"http to mcp rules", httpReq("mail", "GET", "/"), Deny, "", "default deny"},
	})
	if d := Empty().Decide(mcpReq("mail", "read")); d.Effect != Deny {
		t.Fatalf("empty snapshot allowed: %+v", d)
	}
}

func TestApproval(t *testing.T) {
	snap := compileSrc(t, policyDoc("drafter", `
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: read
    effect: allow
    targets: [{mcp: {server: mail, tools: [read, search]}}]
  - name: send
    effect: allow
    targets: [{mcp: {server: mail, tools: [send]}}]
    approval: {approvers: [group:leads, user:bob], timeout: 30m}
  - name: archive
    effect: allow
    targets: [{mcp: {server: mail, tools: [archive]}}]
    approval: {required: false}
  - name: search-needs-eyes
    effect: escalate
    targets: [{mcp: {server: mail, tools: [search]}}]
    when: has(mcp.args.query) && mcp.args.query.contains("password")
  - name: escalate-without-grant
    effect: escalate
    targets: [{mcp: {server: calendar}}]
`))
	runDecide(t, snap, []decideCase{
		{"plain allow", mcpReq("mail", "read"), Allow, "read", ""},
		{"allow with approval", mcpReq("mail", "send"), ApprovalRequired, "send", "approval required by rule"},
		{"approval not required", mcpReq("mail", "archive"), Allow, "archive", ""},
		{"escalate does not fire", mcpReq("mail", "search"), Allow, "read", ""},
		{"escalate fires", func() *Request {
			r := mcpReq("mail", "search")
			r.MCP.Args = map[string]any{"query": "reset password"}
			return r
		}(), ApprovalRequired, "search-needs-eyes", ""},
		{"escalate never grants", mcpReq("calendar", "read"), Deny, "", "default deny"},
	})
	d := snap.Decide(mcpReq("mail", "send"))
	a := d.Obligations.Approval
	if a == nil || a.Rule != "send" || a.Policy != "drafter" || time.Duration(a.Timeout) != 30*time.Minute ||
		strings.Join(a.Approvers, ",") != "group:leads,user:bob" {
		t.Fatalf("approval obligation = %+v", a)
	}
	if d := snap.Decide(mcpReq("mail", "read")); d.Obligations.Approval != nil {
		t.Fatal("plain allow carries an approval")
	}
}

func TestDelegationIntersection(t *testing.T) {
	snap := compileSrc(t, policyDoc("drafter", `
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: mail
    effect: allow
    targets: [{mcp: {server: mail}}, {mcp: {server: hr}}]
`)+policyDoc("staff", `
subjects: [group:staff, user:carol]
rules:
  - name: mail
    effect: allow
    targets: [{mcp: {server: mail}}, {mcp: {server: wiki}}]
  - name: no-send-for-interns
    effect: deny
    targets: [{mcp: {server: mail, tools: [send]}}]
    when: '"interns" in task.groups'
`)+policyDoc("everyone", `
subjects: ["user:*"]
rules:
  - name: approve-send
    effect: allow
    targets: [{mcp: {server: mail, tools: [send]}}]
    approval: {approvers: [group:leads]}
`))
	as := func(user string, groups ...string) func(*Request) *Request {
		return func(r *Request) *Request {
			r.Task = Task{ID: "t1", OnBehalfOf: user, Groups: groups}
			return r
		}
	}
	runDecide(t, snap, []decideCase{
		{"no task: agent only", mcpReq("mail", "read"), Allow, "mail", ""},
		{"both allowed via group", as("alice", "staff")(mcpReq("mail", "read")), Allow, "mail", "for user alice"},
		{"both allowed via user", as("carol")(mcpReq("mail", "read")), Allow, "mail", ""},
		{"user not allowed", as("mallory", "contractors")(mcpReq("mail", "read")), Deny, "", "no rule allows user mallory"},
		{"agent not allowed, user is", as("alice", "staff")(mcpReq("wiki", "read")), Deny, "", "no rule allows " + agentID},
		{"agent allowed, user not for that target", as("alice", "staff")(mcpReq("hr", "read")), Deny, "", "user alice"},
		{"user deny wins", as("ivan", "staff", "interns")(mcpReq("mail", "send")), Deny, "no-send-for-interns", ""},
		{"user-side approval", as("alice", "staff")(mcpReq("mail", "send")), ApprovalRequired, "approve-send", ""},
	})
	d := snap.Decide(as("mallory")(mcpReq("mail", "read")))
	if d.Principal != "user" {
		t.Fatalf("principal = %q, want user", d.Principal)
	}
}

func TestFlowRules(t *testing.T) {
	snap := compileSrc(t, policyDoc("agent", `
subjects: [spiffe://writ.local/agent/drafter]
labels: [customer_pii]
rules:
  - name: tools
    effect: allow
    targets: [{mcp: {server: "*"}}, {http: {service: "*"}}]
  - name: no-pii-to-sinks
    effect: deny
    targets: [{labels: [public_sink]}]
    flow: {touched_any: [customer_pii]}
  - name: toxic
    effect: escalate
    targets: [{labels: [public_sink]}]
    flow: {touched_all: [private_data, untrusted_content]}
    approval: {approvers: [group:security]}
  - name: no-web-after-secrets
    effect: deny
    targets: [{http: {service: web}, labels: [untrusted_content]}]
    flow: {touched_all: [private_data]}
`))
	with := func(seen []string, labels ...string) func(*Request) *Request {
		return func(r *Request) *Request {
			r.Task = Task{ID: "t1", LabelsSeen: seen}
			r.TargetLabels = labels
			return r
		}
	}
	runDecide(t, snap, []decideCase{
		{"sink, clean task", with(nil, "public_sink")(mcpReq("slack", "post")), Allow, "tools", ""},
		{"sink after one of two labels", with([]string{"private_data"}, "public_sink")(mcpReq("slack", "post")), Allow, "tools", ""},
		{"sink after both labels", with([]string{"untrusted_content", "private_data"}, "public_sink")(mcpReq("slack", "post")), ApprovalRequired, "toxic", ""},
		{"not a sink after both labels", with([]string{"untrusted_content", "private_data"}, "private_data")(mcpReq("db", "query")), Allow, "tools", ""},
		{"pii to a sink is denied", with([]string{"customer_pii"}, "public_sink")(httpReq("webhook", "POST", "/hook")), Deny, "no-pii-to-sinks", ""},
		{"labels filter on an http target", with([]string{"private_data"}, "untrusted_content")(httpReq("web", "GET", "/")), Deny, "no-web-after-secrets", ""},
		{"labels filter needs the label", with([]string{"private_data"})(httpReq("web", "GET", "/")), Allow, "tools", ""},
	})
}

func TestConditionsTimeAndSource(t *testing.T) {
	snap := compileSrc(t, policyDoc("agent", `
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: office-hours
    effect: allow
    targets: [{mcp: {server: crm}}]
    when: now.getDayOfWeek() >= 1 && now.getDayOfWeek() <= 5 && now.getHours("Europe/Paris") >= 8 && now.getHours("Europe/Paris") < 18
  - name: from-the-lan
    effect: allow
    targets: [{http: {service: billing}}]
    when: cidr("10.0.0.0/8").containsIP(source.ip) && source.node == "node-1"
  - name: no-big-exports
    effect: deny
    targets: [{http: {service: billing, paths: [/export]}}]
    when: int(request.query.limit) > 1000
  - name: header
    effect: allow
    targets: [{http: {service: tenant-api}}]
    when: request.headers["x-tenant"] == subject.labels.tenant && request.method in ["GET", "HEAD"]
  - name: before-expiry
    effect: allow
    targets: [{mcp: {server: trial}}]
    when: now < timestamp("2026-04-01T00:00:00Z")
`))
	at := func(t time.Time) func(*Request) *Request {
		return func(r *Request) *Request { r.Now = t; return r }
	}
	from := func(ip, node string) func(*Request) *Request {
		return func(r *Request) *Request { r.Source = Source{IP: ip, Node: node}; return r }
	}
	limit := func(n string) func(*Request) *Request {
		return func(r *Request) *Request {
			r.Source = Source{IP: "10.1.1.1", Node: "node-1"}
			r.HTTP.Query = map[string]string{"limit": n}
			return r
		}
	}
	tenant := func(h string) func(*Request) *Request {
		return func(r *Request) *Request {
			r.Subject.Labels = map[string]string{"tenant": "acme"}
			r.HTTP.Headers = map[string]string{"x-tenant": h}
			return r
		}
	}
	runDecide(t, snap, []decideCase{
		{"monday 10:30 paris", at(tNow)(mcpReq("crm", "read")), Allow, "office-hours", ""},
		{"monday 19:30 paris", at(tNow.Add(9 * time.Hour))(mcpReq("crm", "read")), Deny, "", ""},
		{"sunday", at(tNow.Add(-24 * time.Hour))(mcpReq("crm", "read")), Deny, "", ""},
		{"lan and node", from("10.2.3.4", "node-1")(httpReq("billing", "GET", "/invoices")), Allow, "from-the-lan", ""},
		{"wrong node", from("10.2.3.4", "node-2")(httpReq("billing", "GET", "/invoices")), Deny, "", ""},
		{"outside the lan", from("192.168.1.4", "node-1")(httpReq("billing", "GET", "/invoices")), Deny, "", ""},
		{"bad ip fails an allow closed", from("not-an-ip", "node-1")(httpReq("billing", "GET", "/invoices")), Deny, "", ""},
		{"small export", limit("10")(httpReq("billing", "GET", "/export")), Allow, "from-the-lan", ""},
		{"big export denied", limit("5000")(httpReq("billing", "GET", "/export")), Deny, "no-big-exports", ""},
		{"deny condition error fails closed", limit("lots")(httpReq("billing", "GET", "/export")), Deny, "no-big-exports", "could not be evaluated"},
		{"tenant header matches label", tenant("acme")(httpReq("tenant-api", "GET", "/x")), Allow, "header", ""},
		{"tenant header differs", tenant("other")(httpReq("tenant-api", "GET", "/x")), Deny, "", ""},
		{"before expiry", at(tNow)(mcpReq("trial", "x")), Allow, "before-expiry", ""},
		{"after expiry", at(time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC))(mcpReq("trial", "x")), Deny, "", ""},
	})
}

func TestEngineClock(t *testing.T) {
	snap := compileSrc(t, policyDoc("agent", `
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: mornings
    effect: allow
    targets: [{mcp: {server: crm}}]
    when: now.getHours() < 12
`))
	clock := tNow // 09:30 UTC
	e := NewEngine(Config{Now: func() time.Time { return clock }}, snap)
	r := mcpReq("crm", "read")
	r.Now = time.Time{}
	if d := e.Decide(context.Background(), r); d.Effect != Allow {
		t.Fatalf("at 09:30: %+v", d)
	}
	clock = tNow.Add(4 * time.Hour)
	if d := e.Decide(context.Background(), r); d.Effect != Deny {
		t.Fatalf("at 13:30: %+v", d)
	}
	r.Now = tNow // the request's own time wins
	if d := e.Decide(context.Background(), r); d.Effect != Allow {
		t.Fatalf("request time ignored: %+v", d)
	}
}

func TestSubjectsAndLabelSelectors(t *testing.T) {
	snap := compileSrc(t, policyDoc("exact", `
subjects: [spiffe://writ.local/agent/drafter]
rules: [{name: a, effect: allow, targets: [{mcp: {server: exact}}]}]
`)+policyDoc("one-segment", `
subjects: [spiffe://writ.local/agent/*/prod]
rules: [{name: a, effect: allow, targets: [{mcp: {server: star}}]}]
`)+policyDoc("suffix", `
subjects: [spiffe://writ.local/team/**]
rules: [{name: a, effect: allow, targets: [{mcp: {server: dstar}}]}]
`)+policyDoc("labels", `
subjects: ["label:team=mail,env=prod", "label:owner=alice"]
rules: [{name: a, effect: allow, targets: [{mcp: {server: labels}}]}]
`))
	req := func(id, server string, labels map[string]string) *Request {
		return &Request{Kind: KindMCP, Subject: Subject{SpiffeID: id, Labels: labels}, MCP: MCPRequest{Server: server, Tool: "t"}, Now: tNow}
	}
	runDecide(t, snap, []decideCase{
		{"exact", req(agentID, "exact", nil), Allow, "a", ""},
		{"exact is not a prefix", req(agentID+"/sub", "exact", nil), Deny, "", ""},
		{"star one segment", req("spiffe://writ.local/agent/x/prod", "star", nil), Allow, "a", ""},
		{"star not two segments", req("spiffe://writ.local/agent/x/y/prod", "star", nil), Deny, "", ""},
		{"star not zero segments", req("spiffe://writ.local/agent/prod", "star", nil), Deny, "", ""},
		{"dstar one", req("spiffe://writ.local/team/a", "dstar", nil), Allow, "a", ""},
		{"dstar many", req("spiffe://writ.local/team/a/b/c", "dstar", nil), Allow, "a", ""},
		{"dstar needs a suffix", req("spiffe://writ.local/team", "dstar", nil), Deny, "", ""},
		{"dstar other prefix", req("spiffe://writ.local/teams/a", "dstar", nil), Deny, "", ""},
		{"labels all pairs", req(agentID, "labels", map[string]string{"team": "mail", "env": "prod", "x": "y"}), Allow, "a", ""},
		{"labels one pair missing", req(agentID, "labels", map[string]string{"team": "mail", "env": "dev"}), Deny, "", ""},
		{"labels second selector", req(agentID, "labels", map[string]string{"owner": "alice"}), Allow, "a", ""},
		{"labels none", req(agentID, "labels", nil), Deny, "", ""},
	})
}

func TestTargets(t *testing.T) {
	snap := compileSrc(t, policyDoc("agent", `
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: crm-read
    effect: allow
    targets: [{http: {service: crm, methods: [GET, HEAD], paths: ["/v1/customers/*", "/v1/reports/**", "/v1/*.csv"]}}]
  - name: any-api
    effect: allow
    targets: [{http: {service: "api-*", paths: ["/public/**"]}}]
  - name: docs
    effect: allow
    targets: [{mcp: {server: files, resources: ["file:///docs/**"], prompts: [summarize]}}]
  - name: read-tools
    effect: allow
    targets: [{mcp: {server: "git*", tools: ["read_*", status]}}]
  - name: tokens
    effect: allow
    targets: [{token: {audiences: [crm, "billing-*"], scopes: [read, write]}}]
    max_ttl: 10m
  - name: short-tokens
    effect: allow
    targets: [{token: {audiences: [crm]}}]
    max_ttl: 2m
    budget: 5
  - name: no-admin-scope
    effect: deny
    targets: [{token: {scopes: [admin]}}]
  - name: tasks
    effect: allow
    targets: [{task: {purposes: ["support-*"]}}]
`))
	tok := func(aud string, scopes ...string) *Request {
		return &Request{Kind: KindToken, Subject: Subject{SpiffeID: agentID}, Token: TokenRequest{Audience: aud, Scopes: scopes}, Now: tNow}
	}
	task := func(purpose string) *Request {
		return &Request{Kind: KindTask, Subject: Subject{SpiffeID: agentID}, Task: Task{Purpose: purpose}, Now: tNow}
	}
	res := func(server, uri string) *Request {
		r := mcpReq(server, "")
		r.MCP.Resource = uri
		return r
	}
	prompt := func(server, name string) *Request {
		r := mcpReq(server, "")
		r.MCP.Prompt = name
		return r
	}
	runDecide(t, snap, []decideCase{
		{"one segment glob", httpReq("crm", "GET", "/v1/customers/42"), Allow, "crm-read", ""},
		{"one segment glob is one segment", httpReq("crm", "GET", "/v1/customers/42/notes"), Deny, "", ""},
		{"suffix glob", httpReq("crm", "GET", "/v1/reports/2026/q1"), Allow, "crm-read", ""},
		{"suffix glob includes the base", httpReq("crm", "GET", "/v1/reports"), Allow, "crm-read", ""},
		{"in-segment glob", httpReq("crm", "HEAD", "/v1/export.csv"), Allow, "crm-read", ""},
		{"method not listed", httpReq("crm", "DELETE", "/v1/customers/42"), Deny, "", ""},
		{"dot segments are cleaned", httpReq("crm", "GET", "/v1/customers/42/../../reports/x"), Allow, "crm-read", ""},
		{"cleaning cannot escape", httpReq("crm", "GET", "/v1/reports/../admin"), Deny, "", ""},
		{"double slash cleaned", httpReq("crm", "GET", "/v1//customers/42"), Allow, "crm-read", ""},
		{"service glob", httpReq("api-eu", "POST", "/public/x"), Allow, "any-api", ""},
		{"service glob miss", httpReq("apix", "POST", "/public/x"), Deny, "", ""},
		{"resource uri glob", res("files", "file:///docs/a/b.md"), Allow, "docs", ""},
		{"resource outside", res("files", "file:///etc/passwd"), Deny, "", ""},
		{"prompt exact", prompt("files", "summarize"), Allow, "docs", ""},
		{"tools not listed for a resource-only target", mcpReq("files", "summarize"), Deny, "", ""},
		{"tool glob and server glob", mcpReq("github", "read_file"), Allow, "read-tools", ""},
		{"tool literal", mcpReq("gitlab", "status"), Allow, "read-tools", ""},
		{"tool miss", mcpReq("github", "push"), Deny, "", ""},
		{"token scopes subset", tok("crm", "read"), Allow, "tokens", ""},
		{"token audience glob", tok("billing-eu", "read", "write"), Allow, "tokens", ""},
		{"token scope not listed falls to the next rule", tok("crm", "delete"), Allow, "short-tokens", ""},
		{"token scope not listed anywhere", tok("billing-eu", "delete"), Deny, "", ""},
		{"deny on any listed scope", tok("crm", "read", "admin"), Deny, "no-admin-scope", ""},
		{"task purpose", task("support-tickets"), Allow, "tasks", ""},
		{"task purpose miss", task("finance"), Deny, "", ""},
	})
	// The TTL cap is the smallest of the matching rules; the budget too.
	d := snap.Decide(tok("crm", "read"))
	if time.Duration(d.Obligations.MaxTTL) != 2*time.Minute || d.Obligations.Budget != 5 {
		t.Fatalf("obligations = %+v, want max_ttl 2m and budget 5", d.Obligations)
	}
	over := tok("crm", "read")
	over.Task = Task{ID: "t1", Calls: 5}
	if d := snap.Decide(over); d.Effect != Deny || d.Rule != "short-tokens" || !strings.Contains(d.Reasons[0], "has made 5 calls") {
		t.Fatalf("budget exhausted: %+v", d)
	}
	over.Task.Calls = 4
	if d := snap.Decide(over); d.Effect != Allow {
		t.Fatalf("budget not exhausted: %+v", d)
	}
}

func TestRateLimitsThroughEngine(t *testing.T) {
	snap := compileSrc(t, policyDoc("agent", `
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: read
    effect: allow
    targets: [{mcp: {server: mail, tools: [read]}}]
    rate: {limit: 3/1m, bucket: mail, per: instance}
  - name: draft
    effect: allow
    targets: [{mcp: {server: mail, tools: [draft]}}]
    rate: {limit: 3/1m, bucket: mail, per: instance}
  - name: per-task
    effect: allow
    targets: [{mcp: {server: search}}]
    rate: {limit: 2/10s, per: task}
  - name: per-subject
    effect: allow
    targets: [{mcp: {server: llm}}]
    rate: {limit: 1/1h, per: subject}
  - name: send
    effect: allow
    targets: [{mcp: {server: mail, tools: [send]}}]
    rate: {limit: 1/1m, per: instance}
    approval: {}
`))
	e := NewEngine(Config{Limiter: ratelimit.New()}, snap)
	ctx := context.Background()
	call := func(at time.Duration, r *Request) Decision {
		r.Now = tNow.Add(at)
		return e.Decide(ctx, r)
	}
	inst := func(id string, r *Request) *Request { r.Instance = id; return r }
	inTask := func(id string, r *Request) *Request { r.Task.ID = id; return r }

	for i, want := range []Effect{Allow, Allow, Allow, Deny} {
		tool := "read"
		if i%2 == 1 {
			tool = "draft" // shares the bucket
		}
		if d := call(time.Duration(i)*time.Second, mcpReq("mail", tool)); d.Effect != want {
			t.Fatalf("call %d = %s, want %s (%v)", i, d.Effect, want, d.Reasons)
		}
	}
	d := call(10*time.Second, mcpReq("mail", "read"))
	if d.Effect != Deny || !strings.Contains(d.Reasons[0], "rate limit 3 per 1m0s per instance") || time.Duration(d.RetryAfter) != 50*time.Second {
		t.Fatalf("over the limit: %+v", d)
	}
	if d := call(10*time.Second, inst("inst_2", mcpReq("mail", "read"))); d.Effect != Allow {
		t.Fatalf("another instance shares the window: %v", d.Reasons)
	}
	if d := call(60*time.Second, mcpReq("mail", "read")); d.Effect != Allow {
		t.Fatalf("window did not slide: %v", d.Reasons)
	}

	// per task; a call without a task counts per subject instead, so new
	// processes without a task share one window.
	for i, want := range []Effect{Allow, Allow, Deny} {
		if d := call(0, inTask("t1", mcpReq("search", "q"))); d.Effect != want {
			t.Fatalf("task call %d = %s", i, d.Effect)
		}
	}
	if d := call(0, inTask("t2", mcpReq("search", "q"))); d.Effect != Allow {
		t.Fatal("task t2 charged for t1")
	}
	if d := call(0, mcpReq("search", "q")); d.Effect != Allow || d.Obligations.Rate[0].Per != PerSubject {
		t.Fatalf("task-less call: %+v", d)
	}
	if d := call(0, inst("inst_other", mcpReq("search", "q"))); d.Effect != Allow {
		t.Fatalf("second task-less call: %+v", d)
	}
	if d := call(0, inst("inst_third", mcpReq("search", "q"))); d.Effect != Deny || d.Obligations.Rate[0].Per != PerSubject {
		t.Fatalf("third task-less call from yet another instance: %+v", d)
	}

	// per subject: instances share.
	if d := call(0, inst("a", mcpReq("llm", "x"))); d.Effect != Allow {
		t.Fatal("first llm call refused")
	}
	if d := call(0, inst("b", mcpReq("llm", "x"))); d.Effect != Deny {
		t.Fatal("per-subject limit not shared across instances")
	}

	// Approval-pending calls are charged too, so approval requests cannot
	// be spammed.
	if d := call(0, mcpReq("mail", "send")); d.Effect != ApprovalRequired {
		t.Fatalf("send = %+v", d)
	}
	if d := call(time.Second, mcpReq("mail", "send")); d.Effect != Deny {
		t.Fatalf("second send within a minute = %+v", d)
	}

	// Without a limiter the engine only reports obligations.
	plain := NewEngine(Config{}, snap)
	for range 10 {
		d := plain.Decide(ctx, mcpReq("mail", "read"))
		if d.Effect != Allow || len(d.Obligations.Rate) != 1 || d.Obligations.Rate[0].Key != "agent/mail|instance=inst_1" || d.Obligations.Rate[0].Limit != 3 {
			t.Fatalf("obligation = %+v", d.Obligations)
		}
	}
}

// TestSwapIsAtomic decides from many goroutines while snapshots are swapped:
// every decision must come wholly from one version.
func TestSwapIsAtomic(t *testing.T) {
	mk := func(version int64, effect string) *Snapshot {
		docs, err := resource.Parse("v.yaml", []byte(policyDoc("p", fmt.Sprintf(`
subjects: [spiffe://writ.local/agent/drafter]
rules:
  - name: r%d
    effect: allow
    targets: [{mcp: {server: mail}}]
  - name: d%d
    effect: %s
    targets: [{mcp: {server: mail, tools: [x]}}]
`, version, version, effect))))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Compile(docs, map[string]int64{"p": version})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	v1, v2 := mk(1, "deny"), mk(2, "allow")
	e := NewEngine(Config{}, v1)
	done := make(chan struct{})
	errs := make(chan string, 8)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- ""
					return
				default:
				}
				d := e.Decide(context.Background(), mcpReq("mail", "x"))
				ok := (d.Policy == "p@1" && d.Rule == "d1" && d.Effect == Deny) || (d.Policy == "p@2" && d.Rule == "r2" && d.Effect == Allow)
				if !ok {
					errs <- fmt.Sprintf("mixed decision %+v", d)
					return
				}
			}
		}()
	}
	for i := range 2000 {
		if i%2 == 0 {
			e.Swap(v2)
		} else {
			e.Swap(v1)
		}
	}
	close(done)
	for range 4 {
		if msg := <-errs; msg != "" {
			t.Fatal(msg)
		}
	}
	if old := e.Swap(nil); old != v1 {
		t.Fatal("Swap did not return the previous snapshot")
	}
	if d := e.Decide(context.Background(), mcpReq("mail", "read")); d.Effect != Deny {
		t.Fatal("Swap(nil) did not install the deny-all snapshot")
	}
}

// TestRateDefaultsPerSubject checks the #12 surprise: with no `per`, a
// rate is counted per subject, so a loop that starts a new process (a new
// instance) for every call is limited like one process.
func TestRateDefaultsPerSubject(t *testing.T) {
	snap := compileSrc(t, policyDoc("p", `
subjects: [spiffe://writ.local/agent/**]
rules:
  - {name: api, effect: allow, targets: [{http: {service: api}}], rate: {limit: 3/1m}}
`))
	e := NewEngine(Config{Limiter: ratelimit.New()}, snap)
	for i, want := range []Effect{Allow, Allow, Allow, Deny, Deny} {
		r := httpReq("api", "GET", "/x")
		r.Instance = fmt.Sprintf("inst_curl_%d", i) // a new process each time
		r.Now = tNow.Add(time.Duration(i) * time.Second)
		d := e.Decide(context.Background(), r)
		if d.Effect != want {
			t.Fatalf("call %d from a new instance = %s (%v), want %s", i, d.Effect, d.Reasons, want)
		}
		if ob := d.Obligations.Rate; len(ob) != 1 || ob[0].Per != PerSubject || ob[0].Key != "p/api|subject="+agentID {
			t.Fatalf("call %d obligation %+v", i, ob)
		}
	}
	// Another agent has its own window.
	r := httpReq("api", "GET", "/x")
	r.Subject.SpiffeID = "spiffe://writ.local/agent/other"
	r.Now = tNow.Add(5 * time.Second)
	if d := e.Decide(context.Background(), r); d.Effect != Allow {
		t.Fatalf("another subject: %v", d.Reasons)
	}
}

// TestBudgetNeedsTask checks the other #12 surprise: a budget was ignored
// for calls without a task. An allow rule with a budget now grants HTTP and
// MCP calls only within a task; other rules still grant without one, and
// rules opening tasks keep their budget as the task's.
func TestBudgetNeedsTask(t *testing.T) {
	snap := compileSrc(t, policyDoc("p", `
subjects: [spiffe://writ.local/agent/**]
rules:
  - {name: capped, effect: allow, targets: [{http: {service: api}}, {mcp: {server: mail}}], budget: 2}
  - {name: free-health, effect: allow, targets: [{http: {service: api, paths: [/health]}}]}
  - {name: open, effect: allow, targets: [{task: {}}], budget: 50}
`))
	mail := mcpReq("mail", "read")
	for _, tc := range []struct {
		name   string
		req    *Request
		effect Effect
		rule   string
		reason string
		budget int
	}{
		{"http without a task", httpReq("api", "GET", "/x"), Deny, "", `rule "capped" of policy p allows this only within a task: it has a budget of 2 calls per task`, 0},
		{"mcp without a task", mail, Deny, "", "only within a task", 0},
		{"http in a task", withTask(httpReq("api", "GET", "/x"), 1), Allow, "capped", "", 2},
		{"budget used up", withTask(httpReq("api", "GET", "/x"), 2), Deny, "capped", "task t1 has made 2 calls", 2},
		{"another rule grants without a task", httpReq("api", "GET", "/health"), Allow, "free-health", "", 0},
		{"opening a task takes the budget", &Request{Kind: KindTask, Subject: Subject{SpiffeID: agentID}, Task: Task{Purpose: "x"}, Now: tNow}, Allow, "open", "", 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := snap.Decide(tc.req)
			if d.Effect != tc.effect || d.Rule != tc.rule || d.Obligations.Budget != tc.budget {
				t.Fatalf("Decide = %s by %q budget %d (%v), want %s by %q budget %d", d.Effect, d.Rule, d.Obligations.Budget, d.Reasons, tc.effect, tc.rule, tc.budget)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(d.Reasons, "; "), tc.reason) {
				t.Fatalf("reasons %q lack %q", d.Reasons, tc.reason)
			}
			ex := snap.Explain(tc.req)
			if ex.Decision.Effect != d.Effect || ex.Decision.Rule != d.Rule {
				t.Fatalf("Explain %s by %q", ex.Decision.Effect, ex.Decision.Rule)
			}
			if tc.effect == Deny && tc.rule == "" {
				found := false
				for _, p := range ex.Policies {
					for _, r := range p.Rules {
						found = found || (r.Rule == "capped" && r.Outcome == OutcomeNeedsTask)
					}
				}
				if !found {
					t.Fatalf("explain does not say the rule needs a task: %+v", ex.Policies)
				}
			}
		})
	}
}

func withTask(r *Request, calls int64) *Request {
	r.Task = Task{ID: "t1", Purpose: "p", Calls: calls}
	return r
}

// TestEngineNode checks that the engine's node is the source.node of
// requests that give none, and that a request's own node wins.
func TestEngineNode(t *testing.T) {
	snap := compileSrc(t, policyDoc("p", `
subjects: [spiffe://writ.local/agent/**]
rules:
  - {name: pinned, effect: allow, targets: [{http: {service: api}}], when: 'source.node == "node-1"'}
`))
	ctx := context.Background()
	for _, tc := range []struct {
		engine, request string
		want            Effect
	}{
		{"node-1", "", Allow},
		{"", "", Deny},
		{"node-1", "node-2", Deny},
		{"", "node-1", Allow},
	} {
		e := NewEngine(Config{Node: tc.engine}, snap)
		r := httpReq("api", "GET", "/x")
		r.Source.Node = tc.request
		if d := e.Decide(ctx, r); d.Effect != tc.want {
			t.Errorf("engine node %q, request node %q: %s, want %s", tc.engine, tc.request, d.Effect, tc.want)
		}
		if ex := e.Explain(ctx, r); ex.Decision.Effect != tc.want {
			t.Errorf("engine node %q, request node %q: explain %s, want %s", tc.engine, tc.request, ex.Decision.Effect, tc.want)
		}
		if r.Source.Node != tc.request {
			t.Fatal("the caller's request was changed")
		}
	}
}
