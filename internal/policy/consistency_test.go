package policy

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/resource"
)

// TestIndexAgreesWithLinearScan generates random policy sets and requests
// from a small vocabulary (so that rules often overlap) and checks that the
// indexed Decide and the unindexed Explain reach the same decision every
// time. This is the guard on the index: a rule it fails to find, or finds
// wrongly, shows up as a disagreement.
func TestIndexAgreesWithLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2)) // deterministic test data
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	segs := []string{"a", "b", "c"}
	subject := func() string {
		switch rng.IntN(7) {
		case 0:
			return "user:" + pick("alice", "bob", "*")
		case 1:
			return "group:" + pick("staff", "ops")
		case 2:
			return "label:team=" + pick("mail", "ops")
		default:
			n := 1 + rng.IntN(3)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = pick(append(segs, "*")...)
			}
			if rng.IntN(4) == 0 {
				parts[n-1] = "**"
			}
			return "spiffe://writ.local/" + strings.Join(parts, "/")
		}
	}
	target := func() string {
		switch rng.IntN(6) {
		case 0:
			return fmt.Sprintf("{http: {service: %q, methods: [%q], paths: [%q]}}", pick("crm", "share", "api-*"), pick("GET", "POST", "*"), pick("/v1/**", "/v1/*", "/finance/**", "/**"))
		case 1:
			return fmt.Sprintf("{http: {service: %q}, labels: [%s]}", pick("crm", "*"), pick("public_sink", "private_data"))
		case 2:
			return "{labels: [" + pick("public_sink", "untrusted_content") + "]}"
		case 3:
			return fmt.Sprintf("{token: {audiences: [%q], scopes: [%s]}}", pick("crm", "mail", "*"), pick("read", "write", "read, write"))
		case 4:
			return fmt.Sprintf("{task: {purposes: [%q]}}", pick("support", "sup*", "ops"))
		default:
			switch rng.IntN(3) {
			case 0:
				return fmt.Sprintf("{mcp: {server: %q}}", pick("mail", "files", "*", "m*"))
			case 1:
				return fmt.Sprintf("{mcp: {server: %q, tools: [%q, %q]}}", pick("mail", "files", "*"), pick("read", "send", "r*"), pick("delete", "*"))
			default:
				return fmt.Sprintf("{mcp: {server: %q, resources: [%q], prompts: [%q]}}", pick("mail", "files"), pick("file:///docs/**", "mail://inbox/*"), pick("summarize", "s*"))
			}
		}
	}
	rule := func(i int) string {
		effect := pick("allow", "allow", "allow", "deny", "escalate")
		var b strings.Builder
		fmt.Fprintf(&b, "  - name: r%d\n    effect: %s\n    targets: [%s", i, effect, target())
		for range rng.IntN(2) {
			b.WriteString(", " + target())
		}
		b.WriteString("]\n")
		if rng.IntN(3) == 0 {
			b.WriteString("    when: " + pick(`'source.node == "n1"'`, `'task.calls < 5'`, `'mcp.args.x == 1'`, `'request.method != "DELETE"'`) + "\n")
		}
		if rng.IntN(4) == 0 {
			b.WriteString("    flow: {touched_any: [private_data]}\n")
		}
		if effect == "allow" {
			if rng.IntN(4) == 0 {
				b.WriteString("    approval: {approvers: [group:leads]}\n")
			}
			if rng.IntN(3) == 0 {
				b.WriteString("    rate: {limit: 10/1m}\n    max_ttl: " + pick("5m", "10m") + "\n    budget: " + pick("3", "10") + "\n")
			}
		}
		return b.String()
	}
	request := func() *Request {
		r := &Request{Subject: Subject{SpiffeID: "spiffe://writ.local/" + strings.Join([]string{pick(segs...), pick(segs...), pick(segs...)}[:1+rng.IntN(3)], "/")},
			Instance: "i1", Now: tNow, Source: Source{Node: pick("n1", "n2")}}
		if rng.IntN(3) == 0 {
			r.Subject.Labels = map[string]string{"team": pick("mail", "ops")}
		}
		if rng.IntN(2) == 0 {
			r.Task = Task{ID: "t", OnBehalfOf: pick("alice", "bob", "carol"), Groups: []string{pick("staff", "ops")}, Calls: int64(rng.IntN(12))}
		}
		if rng.IntN(3) == 0 {
			r.Task.LabelsSeen = []string{"private_data"}
		}
		if rng.IntN(3) == 0 {
			r.TargetLabels = []string{pick("public_sink", "private_data", "untrusted_content")}
		}
		switch rng.IntN(4) {
		case 0:
			r.Kind = KindHTTP
			r.HTTP = HTTPRequest{Service: pick("crm", "share", "api-x"), Method: pick("GET", "POST", "DELETE"), Path: pick("/v1/a", "/v1/a/b", "/finance/x", "/")}
		case 1:
			r.Kind = KindToken
			r.Token = TokenRequest{Audience: pick("crm", "mail"), Scopes: []string{pick("read", "write", "admin")}}
		case 2:
			r.Kind = KindTask
			r.Task.Purpose = pick("support", "ops", "other")
		default:
			r.Kind = KindMCP
			r.MCP = MCPRequest{Server: pick("mail", "files", "misc")}
			switch rng.IntN(3) {
			case 0:
				r.MCP.Tool = pick("read", "send", "delete", "rm")
			case 1:
				r.MCP.Resource = pick("file:///docs/a", "mail://inbox/1", "file:///etc/x")
			default:
				r.MCP.Prompt = pick("summarize", "sum", "x")
			}
			if rng.IntN(2) == 0 {
				r.MCP.Args = map[string]any{"x": float64(rng.IntN(2))}
			}
		}
		return r
	}

	decisions := map[Effect]int{}
	for round := range 40 {
		var src strings.Builder
		for p := range 1 + rng.IntN(6) {
			var spec strings.Builder
			spec.WriteString("subjects: [")
			for s := range 1 + rng.IntN(3) {
				if s > 0 {
					spec.WriteString(", ")
				}
				fmt.Fprintf(&spec, "%q", subject())
			}
			spec.WriteString("]\nrules:\n")
			for i := range 1 + rng.IntN(8) {
				spec.WriteString(rule(i))
			}
			src.WriteString(policyDoc(fmt.Sprintf("p%d", p), spec.String()))
		}
		docs, err := resource.Parse("gen.yaml", []byte(src.String()))
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, src.String())
		}
		snap, err := Compile(docs, nil)
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, src.String())
		}
		for range 200 {
			r := request()
			d, ex := snap.Decide(r), snap.Explain(r)
			if !reflect.DeepEqual(d, ex.Decision) {
				t.Fatalf("round %d: index and scan disagree on %s\nDecide:  %+v\nExplain: %+v\npolicies:\n%s", round, describeFull(r), d, ex.Decision, src.String())
			}
			decisions[d.Effect]++
		}
	}
	// The generator must exercise every outcome, or the test proves little.
	for _, e := range []Effect{Allow, Deny, ApprovalRequired} {
		if decisions[e] < 50 {
			t.Fatalf("only %d %s decisions out of %v; adjust the generator", decisions[e], e, decisions)
		}
	}
}
