// Package policybench compares writ's policy engine with OPA on the same
// synthetic policy set and the same requests. It holds only tests and
// benchmarks, so the writ binary never links OPA. See bench/README.md.
package policybench

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/writ-dev/writ/internal/policy"
)

// A policy set is generated once from an abstract description and written
// out twice: as writ AccessPolicy YAML and as an equivalent Rego module.
// Each policy has ten rules covering the shapes real policies have: literal
// and glob tools, CEL/Rego conditions on arguments, headers and source,
// approval, deny rules with globs, HTTP methods and path globs, token
// audiences and scopes. One in ten policies names its subject with a
// wildcard (spiffe://writ.local/teamN/*) instead of an exact SPIFFE ID.

const rulesPerPolicy = 10

type policySet struct {
	policies int
	yaml     string
	rego     string
}

func subjectPattern(i int) string {
	if i%10 == 9 {
		return fmt.Sprintf("spiffe://writ.local/team%d/*", i)
	}
	return fmt.Sprintf("spiffe://writ.local/agent/a%d", i)
}

func subjectID(i, k int) string {
	if i%10 == 9 {
		return fmt.Sprintf("spiffe://writ.local/team%d/w%d", i, k)
	}
	return fmt.Sprintf("spiffe://writ.local/agent/a%d", i)
}

// server and service names are shared between agents, as in a real fleet.
func server(i int) string  { return fmt.Sprintf("srv%d", i%50) }
func service(i int) string { return fmt.Sprintf("svc%d", i%100) }
func readTool(i int) string {
	return fmt.Sprintf("read_%d", i%7)
}

// generate returns a set of n rules (n a multiple of ten).
func generate(n int) policySet {
	p := n / rulesPerPolicy
	var y, r strings.Builder
	r.WriteString("package writ\n\n")
	r.WriteString(`decision := {"effect": "deny", "rules": deny} if {
	count(deny) > 0
} else := {"effect": "approval_required", "rules": approval} if {
	count(allow) > 0
	count(approval) > 0
} else := {"effect": "allow", "rules": allow} if {
	count(allow) > 0
} else := {"effect": "deny", "rules": set()}

`)
	for i := range p {
		name := fmt.Sprintf("p%d", i)
		srv, svc := server(i), service(i)
		fmt.Fprintf(&y, `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: %s}
spec:
  subjects: [%q]
  rules:
    - {name: read, effect: allow, targets: [{mcp: {server: %s, tools: [%s]}}], rate: {limit: 100000/1m}}
    - {name: list, effect: allow, targets: [{mcp: {server: %s, tools: ["list_*"]}}]}
    - {name: send-internal, effect: allow, targets: [{mcp: {server: %s, tools: [send]}}], when: 'mcp.args.to.endsWith("@example.com")'}
    - {name: send-external, effect: allow, targets: [{mcp: {server: %s, tools: [send]}}], when: '!mcp.args.to.endsWith("@example.com")', approval: {approvers: [group:leads]}}
    - {name: no-delete, effect: deny, targets: [{mcp: {server: %s, tools: ["delete_*"]}}]}
    - {name: items, effect: allow, targets: [{http: {service: %s, methods: [GET], paths: ["/v1/items/*"]}}], rate: {limit: 100000/1m, per: subject}}
    - {name: orders, effect: allow, targets: [{http: {service: %s, methods: [POST], paths: ["/v1/orders/**"]}}], when: 'request.headers["x-tenant"] == "t1"'}
    - {name: no-admin, effect: deny, targets: [{http: {service: %s, paths: ["/admin/**"]}}]}
    - {name: token, effect: allow, targets: [{token: {audiences: [%s], scopes: [read, write]}}]}
    - {name: status, effect: allow, targets: [{mcp: {server: %s, tools: [status]}}], when: 'source.node == "n1"'}
---
`, name, subjectPattern(i), srv, readTool(i), srv, srv, srv, srv, svc, svc, svc, svc, srv)

		subj := fmt.Sprintf("input.subject.spiffe_id == %q", subjectPattern(i))
		if strings.Contains(subjectPattern(i), "*") {
			subj = fmt.Sprintf("glob.match(%q, [\"/\"], input.subject.spiffe_id)", subjectPattern(i))
		}
		mcp := func(set, rule, toolCond string, extra ...string) {
			fmt.Fprintf(&r, "%s contains %q if {\n\t%s\n\tinput.kind == \"mcp\"\n\tinput.mcp.server == %q\n\t%s\n", set, name+"/"+rule, subj, srv, toolCond)
			for _, e := range extra {
				fmt.Fprintf(&r, "\t%s\n", e)
			}
			r.WriteString("}\n\n")
		}
		http := func(set, rule string, conds ...string) {
			fmt.Fprintf(&r, "%s contains %q if {\n\t%s\n\tinput.kind == \"http\"\n\tinput.request.service == %q\n", set, name+"/"+rule, subj, svc)
			for _, c := range conds {
				fmt.Fprintf(&r, "\t%s\n", c)
			}
			r.WriteString("}\n\n")
		}
		mcp("allow", "read", fmt.Sprintf("input.mcp.tool == %q", readTool(i)))
		mcp("allow", "list", `glob.match("list_*", [], input.mcp.tool)`)
		mcp("allow", "send-internal", `input.mcp.tool == "send"`, `endswith(input.mcp.args.to, "@example.com")`)
		mcp("allow", "send-external", `input.mcp.tool == "send"`, `not endswith(input.mcp.args.to, "@example.com")`)
		mcp("approval", "send-external", `input.mcp.tool == "send"`, `not endswith(input.mcp.args.to, "@example.com")`)
		mcp("deny", "no-delete", `glob.match("delete_*", [], input.mcp.tool)`)
		http("allow", "items", `input.request.method == "GET"`, `glob.match("/v1/items/*", ["/"], input.request.path)`)
		http("allow", "orders", `input.request.method == "POST"`, `glob.match("/v1/orders/**", ["/"], input.request.path)`, `input.request.headers["x-tenant"] == "t1"`)
		http("deny", "no-admin", `glob.match("/admin/**", ["/"], input.request.path)`)
		fmt.Fprintf(&r, "allow contains %q if {\n\t%s\n\tinput.kind == \"token\"\n\tinput.token.audience == %q\n\tevery s in input.token.scopes { s in {\"read\", \"write\"} }\n}\n\n", name+"/token", subj, svc)
		mcp("allow", "status", `input.mcp.tool == "status"`, `input.source.node == "n1"`)
	}
	return policySet{policies: p, yaml: y.String(), rego: r.String()}
}

// requests returns count requests against a set of p policies: a mix of
// allowed calls (plain, glob, with conditions), approvals, denials by rule
// and default denials, spread over all agents.
func requests(p, count int, seed uint64) []*policy.Request {
	rng := rand.New(rand.NewPCG(seed, 7)) // deterministic benchmark input
	out := make([]*policy.Request, count)
	for n := range out {
		i := rng.IntN(p)
		r := &policy.Request{
			Subject:  policy.Subject{SpiffeID: subjectID(i, rng.IntN(5))},
			Instance: fmt.Sprintf("inst_%d", n%97),
			Source:   policy.Source{IP: "10.0.0.7", Node: "n1"},
		}
		mcpCall := func(tool string, args map[string]any) {
			r.Kind = policy.KindMCP
			r.MCP = policy.MCPRequest{Server: server(i), Tool: tool, Args: args}
		}
		httpCall := func(method, path string, headers map[string]string) {
			r.Kind = policy.KindHTTP
			r.HTTP = policy.HTTPRequest{Service: service(i), Method: method, Path: path, Headers: headers}
		}
		switch rng.IntN(12) {
		case 0, 1:
			mcpCall(readTool(i), map[string]any{"id": "m-1"})
		case 2:
			mcpCall("list_threads", nil)
		case 3:
			mcpCall("send", map[string]any{"to": "bob@example.com"})
		case 4:
			mcpCall("send", map[string]any{"to": "eve@partner.org"})
		case 5:
			mcpCall("delete_all", nil)
		case 6:
			mcpCall("status", nil)
		case 7:
			httpCall("GET", fmt.Sprintf("/v1/items/%d", rng.IntN(1000)), nil)
		case 8:
			httpCall("POST", "/v1/orders/9/lines", map[string]string{"x-tenant": "t1"})
		case 9:
			httpCall("GET", "/admin/users/1", nil)
		case 10:
			r.Kind = policy.KindToken
			r.Token = policy.TokenRequest{Audience: service(i), Scopes: []string{"read"}}
		default:
			mcpCall("read_x", nil) // no rule: default deny
			r.MCP.Server = "unknown"
		}
		out[n] = r
	}
	return out
}

// regoInput converts a request to the JSON-shaped input OPA evaluates.
func regoInput(r *policy.Request) map[string]any {
	in := map[string]any{
		"kind":    string(r.Kind),
		"subject": map[string]any{"spiffe_id": r.Subject.SpiffeID},
		"source":  map[string]any{"ip": r.Source.IP, "node": r.Source.Node},
	}
	switch r.Kind {
	case policy.KindMCP:
		args := map[string]any{}
		for k, v := range r.MCP.Args {
			args[k] = v
		}
		in["mcp"] = map[string]any{"server": r.MCP.Server, "tool": r.MCP.Tool, "args": args}
	case policy.KindHTTP:
		h := map[string]any{}
		for k, v := range r.HTTP.Headers {
			h[k] = v
		}
		in["request"] = map[string]any{"service": r.HTTP.Service, "method": r.HTTP.Method, "path": r.HTTP.Path, "headers": h}
	case policy.KindToken:
		s := make([]any, len(r.Token.Scopes))
		for k, v := range r.Token.Scopes {
			s[k] = v
		}
		in["token"] = map[string]any{"audience": r.Token.Audience, "scopes": s}
	}
	return in
}
