package access

import (
	"context"
	"testing"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

// observed replaces policy p in observe mode: it allows GET /items/1 only,
// and allows DELETE, which p does not.
const observed = `---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: narrow}
spec:
  subjects: [spiffe://writ.local/agent/a]
  mode: observe
  replaces: [p]
  rules:
    - {name: one, effect: allow, targets: [{http: {service: up, methods: [GET], paths: ["/items/1"]}}]}
    - {name: del, effect: allow, targets: [{http: {service: up, methods: [DELETE]}}]}
`

// TestObserveRecordedNotEnforced: the access proceeds (or is refused)
// under the enforcing policy, and its event carries what the observed
// policy would have done.
func TestObserveRecordedNotEnforced(t *testing.T) {
	docs, err := resource.Parse("policy.yaml", []byte(policies+observed))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(policy.Config{Limiter: ratelimit.New()}, snap)
	en := newEnv(t, func(c *Config) { c.Policy = engine })
	ctx := context.Background()
	for _, tc := range []struct {
		method, path string
		effect       Effect
		observe      string
		rule         string
	}{
		{"GET", "/items/1", Allow, "", ""},
		{"GET", "/items/2", Allow, "would_deny", ""},
		{"DELETE", "/items/2", Deny, "would_allow", "narrow/del"},
	} {
		req := request(tc.method, tc.path)
		out, err := en.e.Enforce(ctx, req)
		if err != nil || out.Effect != tc.effect {
			t.Fatalf("%s %s: %+v, %v", tc.method, tc.path, out, err)
		}
		en.e.Record(ctx, req, &out, Result{Status: 200})
		en.e.Flush()
		evs := append(en.ev.OfType(audit.AccessAllowed), en.ev.OfType(audit.AccessDenied)...)
		var ev *audit.Event
		for i := range evs {
			if evs[i].ID == out.EventID || evs[i].Action == tc.method+" "+tc.path {
				ev = &evs[i]
			}
		}
		if ev == nil {
			t.Fatalf("%s %s: no event", tc.method, tc.path)
		}
		d := ev.Details
		if d["observe"] != tc.observe || d["observe_rule"] != tc.rule {
			t.Fatalf("%s %s: observe details %q %q, want %q %q", tc.method, tc.path, d["observe"], d["observe_rule"], tc.observe, tc.rule)
		}
		if tc.observe != "" && (d["observe_policy"] != "narrow" || d["observe_reason"] == "") {
			t.Fatalf("%s %s: details %v", tc.method, tc.path, d)
		}
	}
	st := engine.Observing()
	if len(st) != 1 || st[0].WouldDeny != 1 || st[0].WouldAllow != 1 || st[0].Decisions != 3 {
		t.Fatalf("stats %+v", st)
	}
}
