package policy

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/ratelimit"
)

// Observe mode for a selection of identities (#16) is an observed policy
// whose subjects are the selection: SPIFFE ID patterns, label selectors,
// users or groups. Only calls of the selection are observed differently;
// every other caller's decisions, enforced and observed, are unchanged.
// The selection's enforcing policy is replaced only when it is a policy
// of its own: replacing a policy shared with other callers drops it for
// them too, and their calls are then counted as would_deny, because that
// is what promoting would do.
func TestObserveSelectionOfIdentities(t *testing.T) {
	const (
		fleet = `subjects: ["spiffe://writ.local/agent/*"]
rules:
  - {name: all, effect: allow, targets: [{http: {service: gh}}]}
`
		// Observed for team=triage only: deletes held for approval.
		holdDeletes = `subjects: ["label:team=triage"]
mode: observe
rules:
  - {name: deletes, effect: allow, targets: [{http: {service: gh, methods: [DELETE]}}], approval: {approvers: [user:ann]}}
`
		// The triage agents' own enforcing policy, and its narrower
		// observed replacement.
		triage = `subjects: ["label:team=triage"]
rules:
  - {name: all, effect: allow, targets: [{http: {service: gh}}]}
`
		triageNarrow = `subjects: ["label:team=triage"]
mode: observe
replaces: [triage]
rules:
  - {name: read, effect: allow, targets: [{http: {service: gh, methods: [GET], paths: ["/repos/*"]}}]}
`
		// Replacing the shared policy instead.
		fleetNarrow = `subjects: ["label:team=triage"]
mode: observe
replaces: [fleet]
rules:
  - {name: read, effect: allow, targets: [{http: {service: gh, methods: [GET], paths: ["/repos/*"]}}]}
`
	)
	triager := Subject{SpiffeID: "spiffe://writ.local/agent/triage", Labels: map[string]string{"team": "triage"}}
	other := Subject{SpiffeID: "spiffe://writ.local/agent/mail", Labels: map[string]string{"team": "mail"}}
	ctx := context.Background()
	decide := func(eng *Engine, sub Subject, method, path string) Decision {
		return eng.Decide(ctx, &Request{Kind: KindHTTP, Subject: sub, HTTP: HTTPRequest{Service: "gh", Method: method, Path: path}, Now: tNow})
	}
	observed := func(d Decision) string {
		if d.Observed == nil {
			return ""
		}
		return string(d.Observed.Effect) + " " + d.Observed.Observing
	}
	for _, tc := range []struct {
		name     string
		src      string
		sub      Subject
		method   string
		path     string
		observed string
	}{
		{"extra rule: the selection", policyDoc("fleet", fleet) + policyDoc("hold", holdDeletes), triager, "DELETE", "/repos/a", "would_hold hold"},
		{"extra rule: others untouched", policyDoc("fleet", fleet) + policyDoc("hold", holdDeletes), other, "DELETE", "/repos/a", ""},
		{"own policy replaced: the selection", policyDoc("fleet", fleet) + policyDoc("triage", triage) + policyDoc("narrow", triageNarrow), triager, "GET", "/users/a", ""},
		{"own policy replaced: others untouched", policyDoc("fleet", fleet) + policyDoc("triage", triage) + policyDoc("narrow", triageNarrow), other, "GET", "/users/a", ""},
		{"shared policy replaced: the selection", policyDoc("fleet", fleet) + policyDoc("narrow", fleetNarrow), triager, "GET", "/users/a", "would_deny narrow"},
		{"shared policy replaced: others lose it too", policyDoc("fleet", fleet) + policyDoc("narrow", fleetNarrow), other, "GET", "/repos/a", "would_deny narrow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := NewEngine(Config{Now: func() time.Time { return tNow }, Limiter: ratelimit.New()}, compileSrc(t, tc.src))
			d := decide(eng, tc.sub, tc.method, tc.path)
			if d.Effect != Allow {
				t.Fatalf("enforced %s, want allow: observe mode never changes it", d.Effect)
			}
			if got := observed(d); got != tc.observed {
				t.Errorf("observed %q, want %q", got, tc.observed)
			}
		})
	}
}
