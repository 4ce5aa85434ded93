package tier

import (
	"strings"
	"testing"
)

type keys struct {
	kind string
	hw   bool
}

func (k keys) KeyProviderKind() string { return k.kind }
func (k keys) HardwareBacked() bool    { return k.hw }

type nodes struct{ n, tpm, pcr int }

func (n nodes) NodeAttestors() []string           { return []string{"tpm"} }
func (n nodes) NodeCounts() (nodes, tpm, pcr int) { return n.n, n.tpm, n.pcr }

func verdicts(r Report) map[string]string {
	m := map[string]string{}
	for _, row := range r.Rows {
		m[row.ID] = row.Verdict
	}
	return m
}

// TestFailThenFix: a deployment below Foundation, then one at Enterprise,
// then (with hardware facts supplied) at Advanced.
func TestFailThenFix(t *testing.T) {
	bad := Evaluate(Facts{AgentProcesses: 4, WithIdentity: 1, Accesses: 100, WithInstance: 60, ByVia: map[string]int64{"process": 60},
		X509TTLSeconds: 86400, CAKeys: 1})
	v := verdicts(bad)
	if bad.Reached != "none" || v["unique-identity"] != Partial || v["attributed-access"] != Partial || v["cert-rotation"] != Partial ||
		v["revocation"] != NotMeasure || v["bound-credentials"] != NotMet || v["hardware-keys"] != NotMet || v["remote-attestation"] != NotMet {
		t.Errorf("bad deployment: %s %v", bad.Reached, v)
	}
	good := Facts{AgentProcesses: 4, WithIdentity: 4, Accesses: 100, WithInstance: 100, ByVia: map[string]int64{"mtls": 50, "token": 45, "process": 5},
		X509TTLSeconds: 3600, CAKeys: 2, Revocations: 1, RevokedRefusals: 1, Keys: keys{"sealed-file", false}}
	if r := Evaluate(good); r.Reached != "Enterprise" || verdicts(r)["hardware-keys"] != NotMet {
		t.Errorf("good deployment: %s %v", r.Reached, verdicts(r))
	}
	good.Keys, good.Nodes = keys{"pkcs11", true}, nodes{2, 2, 2}
	if r := Evaluate(good); r.Reached != "Enterprise" || verdicts(r)["jit-credentials"] != NotMeasure {
		t.Errorf("with hardware facts but no credentials measured: %s %v", r.Reached, verdicts(r))
	}
	good.DynamicServices, good.StaticServices = 1, 1
	if r := Evaluate(good); r.Reached != "Enterprise" || verdicts(r)["jit-credentials"] != Partial {
		t.Errorf("with a standing credential left: %s %v", r.Reached, verdicts(r))
	}
	good.StaticServices, good.DBRoles, good.DBRolesOverdue = 0, 2, 1
	if r := Evaluate(good); r.Reached != "Enterprise" || verdicts(r)["jit-credentials"] != NotMet {
		t.Errorf("with a database role outliving its task: %s %v", r.Reached, verdicts(r))
	}
	good.DBRolesOverdue = 0
	good.Entries, good.GatedEntries = 4, 3
	if r := Evaluate(good); r.Reached != "Enterprise" || verdicts(r)["gated-issuance"] != Partial {
		t.Errorf("with an entry issued on any host: %s %v", r.Reached, verdicts(r))
	}
	good.GatedEntries = 4
	if r := Evaluate(good); r.Reached != "Enterprise" || verdicts(r)["remote-attestation"] != Partial {
		t.Errorf("with entries gated on any attestor: %s %v", r.Reached, verdicts(r))
	}
	good.TPMGatedEntries = 4
	if r := Evaluate(good); r.Reached != "Advanced" {
		t.Errorf("with hardware facts and per-task credentials: %s %v", r.Reached, verdicts(r))
	}
	if r := Evaluate(Facts{}); r.Reached != "none" || verdicts(r)["unique-identity"] != NotMeasure {
		t.Errorf("nothing observed: %s %v", r.Reached, verdicts(r))
	}
}

// TestRemoteAttestation: the row is met only when every node is
// TPM-attested with a PCR allow list and every entry requires it.
func TestRemoteAttestation(t *testing.T) {
	for _, c := range []struct {
		nodes         nodes
		entries, tpmG int
		want          string
		evidence      string
	}{
		{nodes{}, 2, 2, NotMet, "0 of 0 live nodes TPM-attested"},
		{nodes{3, 0, 0}, 2, 0, NotMet, "0 of 3 live nodes"},
		{nodes{3, 2, 2}, 2, 2, Partial, "2 of 3 live nodes"},
		{nodes{2, 2, 0}, 2, 2, Partial, "0 of them with their PCRs checked"},
		{nodes{2, 2, 2}, 2, 1, Partial, "1 of 2 entries issued only on TPM-attested nodes"},
		{nodes{2, 2, 2}, 0, 0, Partial, "0 of 0 entries"},
		{nodes{2, 2, 2}, 2, 2, Met, "2 of 2 live nodes TPM-attested"},
	} {
		r := Evaluate(Facts{Nodes: c.nodes, Entries: c.entries, GatedEntries: c.entries, TPMGatedEntries: c.tpmG})
		for _, row := range r.Rows {
			if row.ID == "remote-attestation" && (row.Verdict != c.want || !strings.Contains(row.Evidence, c.evidence)) {
				t.Errorf("%+v entries %d/%d: %s %q, want %s with %q", c.nodes, c.tpmG, c.entries, row.Verdict, row.Evidence, c.want, c.evidence)
			}
		}
	}
}

// TestObserveModeWeakensEnforcement: a policy in observe mode keeps an
// otherwise Advanced deployment below Foundation until it is promoted.
func TestObserveModeWeakensEnforcement(t *testing.T) {
	f := Facts{AgentProcesses: 4, WithIdentity: 4, Accesses: 100, WithInstance: 100, ByVia: map[string]int64{"mtls": 100},
		X509TTLSeconds: 3600, CAKeys: 2, Revocations: 1, Keys: keys{"pkcs11", true}, Nodes: nodes{1, 1, 1}, Policies: 3, DynamicServices: 1,
		Entries: 2, GatedEntries: 2, TPMGatedEntries: 2}
	if r := Evaluate(f); r.Reached != "Advanced" || verdicts(r)["policy-enforced"] != Met {
		t.Fatalf("all enforcing: %s %v", r.Reached, verdicts(r))
	}
	f.Observing = []string{"narrow"}
	r := Evaluate(f)
	if r.Reached != "none" || verdicts(r)["policy-enforced"] != Partial {
		t.Errorf("one observing: %s %v", r.Reached, verdicts(r))
	}
	for _, row := range r.Rows {
		if row.ID == "policy-enforced" && (!strings.Contains(row.Evidence, "1 of 3 AccessPolicies are in observe mode") ||
			!strings.Contains(row.Evidence, "narrow") || !strings.Contains(row.ToMeet, "writ policy promote")) {
			t.Errorf("row = %+v", row)
		}
	}
}
