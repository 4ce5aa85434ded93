package posture

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/store"
)

func checks(fs []Finding) map[string]Finding {
	m := map[string]Finding{}
	for _, f := range fs {
		m[f.Check] = f
	}
	return m
}

// TestFailThenFix: a deployment built to fail every check, then the same
// deployment fixed.
func TestFailThenFix(t *testing.T) {
	mail := "spiffe://writ.local/agent/mail"
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	grants := store.Resource{Kind: "AccessPolicy", Name: "grants", Version: 3, UpdatedAt: now.Add(-60 * 24 * time.Hour),
		Spec: json.RawMessage(`{"subjects":["spiffe://writ.local/agent/mail"],"rules":[
			{"name":"read","effect":"allow","targets":[{"http":{"service":"pay"}}]},
			{"name":"send","effect":"escalate","targets":[{"mcp":{"server":"mail"}}]},
			{"name":"old","effect":"allow","targets":[{"http":{"service":"pay"}}]},
			{"name":"no-delete","effect":"deny","targets":[{"http":{"service":"pay"}}]}]}`)}
	bad := Inputs{
		Now:     now,
		RuleUse: map[string]time.Time{"grants/send": now.Add(-time.Hour), "grants/old": now.Add(-31 * 24 * time.Hour)},
		Entries: []store.Entry{{Name: "mail", SpiffeID: mail, Selectors: []store.Selector{{Type: "unix", Value: "uid:1000"}},
			X509TTL: 72 * time.Hour}},
		Policies: []store.Resource{{Kind: "AccessPolicy", Name: "everyone", Spec: json.RawMessage(`{"subjects":["spiffe://writ.local/**"],"rules":[]}`)},
			{Kind: "AccessPolicy", Name: "soak", Spec: json.RawMessage(`{"mode":"observe","replaces":["everyone"],"subjects":["spiffe://writ.local/agent/mail"],"rules":[]}`)},
			grants},
		Inventory: []store.InventoryItem{
			{Kind: store.InventoryAgent, Key: "process/h1/10/1", Host: "h1", Name: "claude", Shadow: true},
			{Kind: store.InventoryCredential, Key: "h1/cred_a", Host: "h1", Name: "STRIPE_KEY", Shadow: true,
				Data: json.RawMessage(`{"id":"cred_a","kind":"stripe","source":"env","fingerprint":"fp1","pids":[10]}`)},
		},
		Graph: &graph.Graph{
			Nodes: []graph.Node{{ID: "process:process/h1/10/1", Kind: "process", Label: "claude"}, {ID: "service:pay", Kind: "service", CrownJewel: true},
				{ID: "credential:h1/cred_a", Kind: "credential"}},
			Edges: []graph.Edge{{From: "process:process/h1/10/1", To: "service:pay", Kind: graph.EdgeDirect, Shadow: true},
				{From: "identity:" + mail, To: "service:pay", Kind: graph.EdgeReached, Allowed: 3, Denied: 1},
				{From: "identity:" + mail, To: "instance:inst_1", Kind: graph.EdgeInstance, Allowed: 2},
				{From: "instance:inst_1", To: "service:mail", Kind: graph.EdgeReached, Allowed: 2},
				{From: "identity:(unidentified)", To: "service:pay", Kind: graph.EdgeReached, Denied: 9},
				{From: "process:process/h1/10/1", To: "credential:h1/cred_a", Kind: graph.EdgeHolds, Shadow: true}},
		},
	}
	fs := Evaluate(bad)
	got := checks(fs)
	for _, c := range []string{"agent_without_identity", "static_credential", "direct_access", "wildcard_subject", "entry_without_digest",
		"long_ttl", "identity_without_owner", "ca_keys_not_hardware", "audit_not_witnessed", "policy_in_observe_mode", "unused_grant",
		"unattested_instance"} {
		if _, ok := got[c]; !ok {
			t.Errorf("check %s did not fail: %+v", c, fs)
		}
	}
	if f := got["policy_in_observe_mode"]; !strings.Contains(f.Title, "AccessPolicy soak") || !strings.Contains(strings.Join(f.Evidence, " "), "everyone") {
		t.Errorf("observe-mode finding = %+v", f)
	}
	if fs[0].Check != "direct_access" || fs[0].Severity != "critical" {
		t.Errorf("first finding = %+v, want the direct access to a crown jewel", fs[0])
	}
	if f := got["static_credential"]; len(f.CrownJewels) != 1 || f.Severity != "high" || !strings.Contains(strings.Join(f.Evidence, " "), "fp1") {
		t.Errorf("static credential blast radius = %+v", f)
	}
	var unused, unattested []string
	for _, f := range fs {
		switch f.Check {
		case "unused_grant":
			unused = append(unused, f.ID)
		case "unattested_instance":
			unattested = append(unattested, f.ID)
			if f.Title != "identity "+mail+" made 4 accesses no attested instance is named for" || len(f.CrownJewels) != 1 {
				t.Errorf("unattested instance finding = %+v", f)
			}
		}
	}
	// read: never used; old: used 31 days ago; send: used an hour ago; no-delete: a deny rule grants nothing.
	if !slices.Equal(unused, []string{"unused_grant/grants/old", "unused_grant/grants/read"}) {
		t.Errorf("unused grants = %v", unused)
	}
	if !slices.Equal(unattested, []string{"unattested_instance/" + mail}) {
		t.Errorf("unattested = %v", unattested)
	}
	if f := got["unused_grant"]; !strings.Contains(strings.Join(f.Evidence, " "), "version 3 in force since") || len(f.CrownJewels) != 1 {
		t.Errorf("unused grant finding = %+v", f)
	}
	// A policy applied within the window is too young to judge; unknown use is not judged.
	young := bad
	young.Policies = []store.Resource{grants}
	young.Policies[0].UpdatedAt = now.Add(-24 * time.Hour)
	if _, ok := checks(Evaluate(young))["unused_grant"]; ok {
		t.Error("unused_grant on a policy applied yesterday")
	}
	young.Policies[0].UpdatedAt = grants.UpdatedAt
	young.RuleUse = nil
	if _, ok := checks(Evaluate(young))["unused_grant"]; ok {
		t.Error("unused_grant without rule usage")
	}
	young.RuleUse, young.UnusedAfter = map[string]time.Time{}, 90*24*time.Hour
	if _, ok := checks(Evaluate(young))["unused_grant"]; ok {
		t.Error("unused_grant for a policy younger than a 90-day window")
	}
	if _, ok := got["identity_without_policy"]; ok {
		t.Error("the wildcard policy names the identity, yet identity_without_policy")
	}
	// Without the wildcard, the identity has no policy.
	noPolicy := bad
	noPolicy.Policies = nil
	if _, ok := checks(Evaluate(noPolicy))["identity_without_policy"]; !ok {
		t.Error("identity_without_policy not raised without policies")
	}

	good := Inputs{
		Entries: []store.Entry{{Name: "mail", SpiffeID: mail, Labels: map[string]string{"owner": "ann"},
			Selectors: []store.Selector{{Type: "unix", Value: "sha256:abcd"}}, X509TTL: time.Hour}},
		Now:     now,
		RuleUse: map[string]time.Time{"mail/read": now.Add(-24 * time.Hour)},
		Policies: []store.Resource{{Kind: "AccessPolicy", Name: "mail", UpdatedAt: now.Add(-90 * 24 * time.Hour),
			Spec: json.RawMessage(`{"subjects":["spiffe://writ.local/agent/mail"],"rules":[{"name":"read","effect":"allow","targets":[{"http":{"service":"mail"}}]}]}`)}},
		Graph: &graph.Graph{Edges: []graph.Edge{{From: "identity:" + mail, To: "instance:inst_1", Kind: graph.EdgeInstance, Allowed: 2},
			{From: "instance:inst_1", To: "service:mail", Kind: graph.EdgeReached, Allowed: 2}}},
		Inventory:    []store.InventoryItem{{Kind: store.InventoryAgent, Key: "process/h1/11/1", Host: "h1", Name: "mailer", Identity: mail}},
		HardwareKeys: true, KeyProvider: "pkcs11", Witnesses: 1,
	}
	if fs := Evaluate(good); len(fs) != 0 {
		t.Errorf("fixed deployment has findings: %+v", fs)
	}
}

// FuzzEvaluate: hostile stored documents and inventory data do not panic
// posture.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte(`{"subjects":["spiffe://x/**","spiffe://","spiffe://[","user:*"]}`), []byte(`{"id":"c","pids":[1]}`), "spiffe://x/a")
	f.Add([]byte(`{"rules":[{"name":"r","effect":"allow","targets":[{"http":{"service":"s"}},{"mcp":{"server":""}},{}]},{"effect":"escalate"}]}`), []byte(`x`), "")
	f.Add([]byte(`{`), []byte(`[]`), "")
	f.Fuzz(func(t *testing.T, spec, data []byte, id string) {
		Evaluate(Inputs{Now: time.Unix(2e9, 0), RuleUse: map[string]time.Time{"p/r": time.Unix(1e9, 0)}, Entries: []store.Entry{{SpiffeID: id}},
			Policies:  []store.Resource{{Name: "p", Spec: spec, UpdatedAt: time.Unix(1, 0)}},
			Graph:     &graph.Graph{Edges: []graph.Edge{{From: "identity:" + id, To: "service:" + string(data), Kind: graph.EdgeReached}}},
			Inventory: []store.InventoryItem{{Kind: store.InventoryCredential, Shadow: true, Data: data}, {Kind: store.InventoryAgent, Data: data}}})
	})
}
