// Package tier evaluates the zero-trust tiers for agents — Foundation,
// Enterprise (intermediate) and Advanced — against facts measured on the
// running deployment, one row per requirement with a met / partial / not
// met verdict, the evidence, and what would meet it. It is pure:
// [Evaluate] reads [Facts]; the server measures them (`writ tier`,
// /v1/tier). Rows about hardware-backed keys and node attestation read
// [KeyProvider] and [NodeAttestation], so the key and node packages can
// supply real facts as they gain hardware support. See docs/tier.md.
package tier

import (
	"fmt"
	"strings"
)

// Verdicts.
const (
	Met        = "met"
	Partial    = "partial"
	NotMet     = "not_met"
	NotMeasure = "not_measured" // nothing was observed to measure
)

// KeyProvider reports how the CA's signing keys are held.
type KeyProvider interface {
	// KeyProviderKind names the provider: "sealed-file", "pkcs11", "tpm".
	KeyProviderKind() string
	// HardwareBacked reports whether the private keys never leave
	// hardware.
	HardwareBacked() bool
}

// NodeAttestation reports how nodes prove what they are.
type NodeAttestation interface {
	// NodeAttestors lists the attestors nodes joined with ("join_token",
	// "x509pop", "tpm").
	NodeAttestors() []string
	// NodeCounts counts the live (unevicted) nodes, those of them
	// attested by their TPM (credential activation and a quote), and
	// those of these whose quoted PCRs the server checked against its
	// PCR allow list (selector tpm:pcrs:verified).
	NodeCounts() (nodes, tpm, pcrChecked int)
}

// Facts are the measurements a report is made of.
type Facts struct {
	// AgentProcesses is the number of agent and MCP server processes the
	// runtime sensor saw at its last scans; WithIdentity those of them
	// with a writ identity.
	AgentProcesses, WithIdentity int
	// Accesses is the number of access events in the window;
	// WithInstance those attributed to an instance; ByVia counts them by
	// how the caller was authenticated (mtls, token, process).
	Accesses, WithInstance int64
	ByVia                  map[string]int64
	// X509TTLSeconds is the SVID lifetime; CAKeys the number of X.509 CA
	// keys kept (more than one: rotation happened).
	X509TTLSeconds float64
	CAKeys         int
	// Revocations is the number of revocations recorded; RevokedRefusals
	// the refusals because something was revoked.
	Revocations, RevokedRefusals int64
	Keys                         KeyProvider
	Nodes                        NodeAttestation
	// Policies is the number of AccessPolicies stored; Observing names
	// those in observe mode (spec.mode: observe), whose decisions are
	// recorded but not enforced.
	Policies  int
	Observing []string
	// DynamicServices counts the Services whose upstream credential is
	// made per task or call (a postgres: role per task, a minted token),
	// StaticServices those injecting a standing broker credential.
	DynamicServices, StaticServices int
	// DBRoles is the number of dynamic database roles that exist now;
	// DBRolesOverdue those of them whose task is no longer open.
	DBRoles, DBRolesOverdue int
	// Entries is the number of registration entries; GatedEntries those
	// issued only on nodes whose attestation carries their node:
	// selectors.
	Entries, GatedEntries int
	// TPMGatedEntries counts the entries issued only on TPM-attested
	// nodes (a node:attestor:tpm or node:tpm:... selector).
	TPMGatedEntries int
}

// Row is one requirement, evaluated.
type Row struct {
	Tier, ID, Requirement, Verdict, Evidence, ToMeet string
}

// Report is every row, and the highest tier whose rows are all met.
type Report struct {
	Rows []Row
	// Reached is "Foundation", "Enterprise", "Advanced" or "none".
	Reached string
}

// Tiers in order.
var Tiers = []string{"Foundation", "Enterprise", "Advanced"}

func share(n, d int64) float64 { return float64(n) / float64(d) }

func ratio(n, d int64, metAt float64) string {
	switch {
	case d == 0:
		return NotMeasure
	case share(n, d) >= metAt:
		return Met
	case n > 0:
		return Partial
	}
	return NotMet
}

// remoteAttestation is the verdict of the remote-attestation row: met
// when every live node was TPM-attested with its PCRs checked against an
// allow list and every entry is issued only on TPM-attested nodes.
func remoteAttestation(f Facts, nodes, tpmNodes, pcrNodes int) (string, string) {
	ev := fmt.Sprintf("%d of %d live nodes TPM-attested (EK allow list, credential activation, quote), %d of them with their PCRs checked against an allow list; %d of %d entries issued only on TPM-attested nodes",
		tpmNodes, nodes, pcrNodes, f.TPMGatedEntries, f.Entries)
	switch {
	case tpmNodes == 0:
		return NotMet, ev
	case tpmNodes == nodes && pcrNodes == nodes && f.Entries > 0 && f.TPMGatedEntries == f.Entries:
		return Met, ev
	}
	return Partial, ev
}

// Evaluate returns the report of f.
func Evaluate(f Facts) Report {
	var rows []Row
	add := func(r Row) { rows = append(rows, r) }

	add(Row{Tier: "Foundation", ID: "unique-identity", Requirement: "every observed agent instance has a unique cryptographic identity",
		Verdict:  ratio(int64(f.WithIdentity), int64(f.AgentProcesses), 1),
		Evidence: fmt.Sprintf("%d of %d agent and MCP server processes the sensor saw have a writ identity", f.WithIdentity, f.AgentProcesses),
		ToMeet:   "register every agent (writ posture lists those without identity; writ entry create)"})
	add(Row{Tier: "Foundation", ID: "attributed-access", Requirement: "instance IDs appear in the logs and access requests",
		Verdict:  ratio(f.WithInstance, f.Accesses, 0.99),
		Evidence: fmt.Sprintf("%d of %d accesses are attributed to an instance", f.WithInstance, f.Accesses),
		ToMeet:   "send every agent call through writ's proxy or gateway with an identity (unidentified callers are refused and unattributed)"})

	// Observe mode weakens enforcement: the policies soaking in it decide
	// nothing (#16), so the report says so while it lasts.
	enf := Met
	evidence := fmt.Sprintf("all %d AccessPolicies enforce; none is in observe mode", f.Policies)
	if len(f.Observing) > 0 {
		enf = Partial
		evidence = fmt.Sprintf("%d of %d AccessPolicies are in observe mode (decisions recorded as would_deny/would_hold, not enforced): %s",
			len(f.Observing), f.Policies, strings.Join(f.Observing, ", "))
	}
	add(Row{Tier: "Foundation", ID: "policy-enforced", Requirement: "access policy is enforced, not only observed",
		Verdict: enf, Evidence: evidence,
		ToMeet: "review what each observed policy would change and promote it (writ policy promote NAME --expect-digest DIGEST), or delete it"})

	ttl := Met
	if f.X509TTLSeconds > 3600 {
		ttl = Partial
	}
	rot := "no X.509 CA rotation seen yet (one CA key)"
	if f.CAKeys > 1 {
		rot = fmt.Sprintf("%d X.509 CA keys kept: rotation happened", f.CAKeys)
	}
	add(Row{Tier: "Enterprise", ID: "cert-rotation", Requirement: "certificate authentication with short lifetimes and rotation",
		Verdict:  ttl,
		Evidence: fmt.Sprintf("X.509-SVID lifetime %.0fs, rotated at half-life; %s", f.X509TTLSeconds, rot),
		ToMeet:   "keep ca.x509_svid_ttl at 1h or less"})
	rev := Met
	if f.Revocations == 0 {
		rev = NotMeasure
	}
	add(Row{Tier: "Enterprise", ID: "revocation", Requirement: "revocation works and is enforced",
		Verdict:  rev,
		Evidence: fmt.Sprintf("%d revocations recorded, %d refusals because something was revoked; every access checks the revocation set", f.Revocations, f.RevokedRefusals),
		ToMeet:   "exercise the kill switch (writ revoke) in a drill so its enforcement is on record"})
	strong := f.ByVia["mtls"] + f.ByVia["token"]
	add(Row{Tier: "Enterprise", ID: "bound-credentials", Requirement: "accesses authenticated by mTLS or sender-bound tokens",
		Verdict:  ratio(strong, f.Accesses, 0.9),
		Evidence: fmt.Sprintf("%d of %d accesses by mTLS or token (%d by local process attestation)", strong, f.Accesses, f.ByVia["process"]),
		ToMeet:   "have agents present their X.509-SVID (mTLS on the proxy's TLS listener) or a DPoP-bound access token"})

	kind, hw := "sealed-file", false
	if f.Keys != nil {
		kind, hw = f.Keys.KeyProviderKind(), f.Keys.HardwareBacked()
	}
	v := NotMet
	if hw {
		v = Met
	}
	add(Row{Tier: "Advanced", ID: "hardware-keys", Requirement: "signing keys are hardware-backed",
		Verdict: v, Evidence: "CA key provider: " + kind,
		ToMeet: "a PKCS#11 (HSM, SoftHSM2 for tests) or TPM key provider for the CA"})
	var attestors []string
	var nodes, tpmNodes, pcrNodes int
	if f.Nodes != nil {
		attestors = f.Nodes.NodeAttestors()
		nodes, tpmNodes, pcrNodes = f.Nodes.NodeCounts()
	}
	v, evidence = remoteAttestation(f, nodes, tpmNodes, pcrNodes)
	add(Row{Tier: "Advanced", ID: "remote-attestation", Requirement: "nodes are remotely attested in hardware and issuance depends on it",
		Verdict: v, Evidence: evidence + fmt.Sprintf("; node attestors in use: %v", attestors),
		ToMeet: "join every node with --attest tpm, give the server a PCR allow list (node.tpm_attestation.pcrs), and gate every entry on it (node:attestor:tpm) (docs/scale-out.md)"})
	gated := NotMeasure
	if len(attestors) > 0 && f.Entries > 0 {
		gated = ratio(int64(f.GatedEntries), int64(f.Entries), 1)
	}
	add(Row{Tier: "Advanced", ID: "gated-issuance", Requirement: "identities are issued only to workloads on attested nodes",
		Verdict:  gated,
		Evidence: fmt.Sprintf("%d of %d entries require a node attestation (node: selectors); node attestors in use: %v", f.GatedEntries, f.Entries, attestors),
		ToMeet:   "add node:attestor:NAME (or a node:ATTESTOR:VALUE the attestation records) to every entry, and run workloads on attested nodes (docs/scale-out.md)"})

	jit := NotMeasure
	switch {
	case f.DBRolesOverdue > 0:
		jit = NotMet
	case f.DynamicServices+f.StaticServices > 0:
		jit = ratio(int64(f.DynamicServices), int64(f.DynamicServices+f.StaticServices), 1)
	}
	add(Row{Tier: "Advanced", ID: "jit-credentials", Requirement: "upstream credentials are issued just in time, per task or call, and die with it",
		Verdict: jit,
		Evidence: fmt.Sprintf("%d of %d Services with a credential get one per task or call (%d inject a standing broker credential); %d dynamic database roles exist, %d of them outliving their task",
			f.DynamicServices, f.DynamicServices+f.StaticServices, f.StaticServices, f.DBRoles, f.DBRolesOverdue),
		ToMeet: "give Services a postgres: block (a role per task, docs/dynamic-credentials.md) or a token: block (a minted token per call) instead of a standing credential"})

	rep := Report{Rows: rows, Reached: "none"}
	for _, t := range Tiers {
		for _, r := range rows {
			if r.Tier == t && r.Verdict != Met {
				return rep
			}
		}
		rep.Reached = t
	}
	return rep
}
