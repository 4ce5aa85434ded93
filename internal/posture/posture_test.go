package posture

import (
	"encoding/json"
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
	bad := Inputs{
		Entries: []store.Entry{{Name: "mail", SpiffeID: mail, Selectors: []store.Selector{{Type: "unix", Value: "uid:1000"}},
			X509TTL: 72 * time.Hour}},
		Policies: []store.Resource{{Kind: "AccessPolicy", Name: "everyone", Spec: json.RawMessage(`{"subjects":["spiffe://writ.local/**"],"rules":[]}`)},
			{Kind: "AccessPolicy", Name: "soak", Spec: json.RawMessage(`{"mode":"observe","replaces":["everyone"],"subjects":["spiffe://writ.local/agent/mail"],"rules":[]}`)}},
		Inventory: []store.InventoryItem{
			{Kind: store.InventoryAgent, Key: "process/h1/10/1", Host: "h1", Name: "claude", Shadow: true},
			{Kind: store.InventoryCredential, Key: "h1/cred_a", Host: "h1", Name: "STRIPE_KEY", Shadow: true,
				Data: json.RawMessage(`{"id":"cred_a","kind":"stripe","source":"env","fingerprint":"fp1","pids":[10]}`)},
		},
		Graph: &graph.Graph{
			Nodes: []graph.Node{{ID: "process:process/h1/10/1", Kind: "process", Label: "claude"}, {ID: "service:pay", Kind: "service", CrownJewel: true},
				{ID: "credential:h1/cred_a", Kind: "credential"}},
			Edges: []graph.Edge{{From: "process:process/h1/10/1", To: "service:pay", Kind: graph.EdgeDirect, Shadow: true},
				{From: "process:process/h1/10/1", To: "credential:h1/cred_a", Kind: graph.EdgeHolds, Shadow: true}},
		},
	}
	fs := Evaluate(bad)
	got := checks(fs)
	for _, c := range []string{"agent_without_identity", "static_credential", "direct_access", "wildcard_subject", "entry_without_digest",
		"long_ttl", "identity_without_owner", "ca_keys_not_hardware", "audit_not_witnessed", "policy_in_observe_mode"} {
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
		Policies:     []store.Resource{{Kind: "AccessPolicy", Name: "mail", Spec: json.RawMessage(`{"subjects":["spiffe://writ.local/agent/mail"],"rules":[]}`)}},
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
	f.Add([]byte(`{`), []byte(`[]`), "")
	f.Fuzz(func(t *testing.T, spec, data []byte, id string) {
		Evaluate(Inputs{Entries: []store.Entry{{SpiffeID: id}}, Policies: []store.Resource{{Name: "p", Spec: spec}},
			Inventory: []store.InventoryItem{{Kind: store.InventoryCredential, Shadow: true, Data: data}, {Kind: store.InventoryAgent, Data: data}}})
	})
}
