package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/posture"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/tier"
)

// tierWindow is how far back the tier report measures accesses.
const tierWindow = 30 * 24 * time.Hour

// signingKeys reports where the active X.509 CA and JWT signing keys are
// held, read from each stored key's handle (the provider that made it), not
// from writ.yaml: a purpose moved to a device in the configuration keeps
// signing with its software key until the next rotation, and the tier
// report must not call that hardware-backed.
type signingKeys struct{ kinds map[string]bool }

func (s *Server) signingKeys(ctx context.Context) (signingKeys, error) {
	k := signingKeys{kinds: map[string]bool{}}
	for _, kind := range []string{store.KeyX509CA, store.KeyJWT} {
		recs, err := s.db.ListKeys(ctx, kind)
		if err != nil {
			return k, err
		}
		for _, r := range recs {
			if r.State != store.KeyActive {
				continue
			}
			pk, err := keys.HandleKind(r.Sealed)
			if err != nil {
				return k, fmt.Errorf("key %s: %w", r.ID, err)
			}
			k.kinds[pk] = true
		}
	}
	return k, nil
}

// KeyProviderKind names the provider of the active signing keys:
// "sealed-file" (software keys sealed under the KEK), "pkcs11", "tpm", or
// "mixed" when they differ.
func (k signingKeys) KeyProviderKind() string {
	if len(k.kinds) != 1 {
		if len(k.kinds) == 0 {
			return "none"
		}
		return "mixed"
	}
	for kind := range k.kinds {
		if kind == keys.KindSoftware {
			return "sealed-file"
		}
		return kind
	}
	return "none"
}

// HardwareBacked reports whether every active signing key is in a device.
func (k signingKeys) HardwareBacked() bool {
	if len(k.kinds) == 0 {
		return false
	}
	for kind := range k.kinds {
		if kind != keys.KindPKCS11 && kind != keys.KindTPM {
			return false
		}
	}
	return true
}

// nodeFacts reports the attestors the stored nodes joined with, and how
// many were TPM-attested (with their PCRs checked).
type nodeFacts struct {
	attestors            []string
	nodes, tpm, pcrCheck int
}

func (n nodeFacts) NodeAttestors() []string     { return n.attestors }
func (n nodeFacts) NodeCounts() (int, int, int) { return n.nodes, n.tpm, n.pcrCheck }

// postureService serves /v1/posture and /v1/tier.
type postureService struct{ s *Server }

func (p postureService) Findings(ctx context.Context, unusedAfter time.Duration) ([]posture.Finding, error) {
	s := p.s
	g, err := s.lineage.Query(ctx, graph.Query{})
	if err != nil {
		return nil, err
	}
	inv, err := s.db.ListInventory(ctx, store.InventoryFilter{})
	if err != nil {
		return nil, err
	}
	pols, err := s.db.ListResources(ctx, resource.KindAccessPolicy)
	if err != nil {
		return nil, err
	}
	keys, err := s.signingKeys(ctx)
	if err != nil {
		return nil, err
	}
	// When each rule last decided: the alert engine carries it, brought
	// up to the end of the log first.
	if _, err := s.syncAlerts(ctx); err != nil {
		return nil, err
	}
	cur, err := s.db.GetCursor(ctx, store.CursorAlerts)
	if err != nil {
		return nil, err
	}
	ruleUse := map[string]time.Time{}
	for k, u := range alert.RuleUsage(cur.State) {
		ruleUse[k] = u.Last
	}
	return posture.Evaluate(posture.Inputs{Now: s.now(), Entries: s.registry.List(), Policies: pols, Inventory: inv, Graph: g,
		HardwareKeys: keys.HardwareBacked(), KeyProvider: keys.KeyProviderKind(), Witnesses: len(s.cfg.Audit.Witnesses),
		RuleUse: ruleUse, UnusedAfter: unusedAfter}), nil
}

func (p postureService) Tier(ctx context.Context) (tier.Report, error) {
	s := p.s
	keys, err := s.signingKeys(ctx)
	if err != nil {
		return tier.Report{}, err
	}
	f := tier.Facts{X509TTLSeconds: s.cfg.CA.X509SVIDTTL.Seconds(), ByVia: map[string]int64{}, Keys: keys}
	inv, err := s.db.ListInventory(ctx, store.InventoryFilter{})
	if err != nil {
		return tier.Report{}, err
	}
	lastScan := map[string]time.Time{}
	for _, it := range inv {
		if it.Kind == store.InventoryHost {
			lastScan[it.Host] = it.LastSeen
		}
	}
	for _, it := range inv {
		if (it.Kind == store.InventoryAgent || it.Kind == store.InventoryMCPServer) && it.LastSeen.Equal(lastScan[it.Host]) {
			f.AgentProcesses++
			if it.Identity != "" {
				f.WithIdentity++
			}
		}
	}
	if _, err := s.lineage.Builder.Sync(ctx); err != nil {
		return tier.Report{}, err
	}
	facts, err := s.db.ListLineage(ctx, store.LineageFilter{Since: s.now().Add(-tierWindow)})
	if err != nil {
		return tier.Report{}, err
	}
	for _, lf := range facts {
		n := lf.Allowed + lf.Denied
		f.Accesses += n
		if lf.Instance != "" {
			f.WithInstance += n
		}
		f.ByVia[lf.Via] += n
	}
	cas, err := s.db.ListKeys(ctx, store.KeyX509CA)
	if err != nil {
		return tier.Report{}, err
	}
	f.CAKeys = len(cas)
	revs, err := s.db.ListRevocations(ctx, time.Time{})
	if err != nil {
		return tier.Report{}, err
	}
	f.Revocations = int64(len(revs))
	if _, err := s.syncAlerts(ctx); err != nil {
		return tier.Report{}, err
	}
	used, err := s.db.ListAlerts(ctx, store.AlertFilter{Rule: alert.RuleRevokedUse})
	if err != nil {
		return tier.Report{}, err
	}
	for _, a := range used {
		f.RevokedRefusals += a.Count
	}
	nodes, err := s.db.ListNodes(ctx)
	if err != nil {
		return tier.Report{}, err
	}
	var nf nodeFacts
	for _, n := range nodes {
		if !n.EvictedAt.IsZero() {
			continue
		}
		if !containsStr(nf.attestors, n.Attestor) {
			nf.attestors = append(nf.attestors, n.Attestor)
		}
		nf.nodes++
		if n.Attestor == nodeattest.TPMAttestor {
			nf.tpm++
			if slices.Contains(n.Selectors, nodeattest.PCRsVerified) {
				nf.pcrCheck++
			}
		}
	}
	f.Nodes = nf
	pols, err := s.db.ListResources(ctx, resource.KindAccessPolicy)
	if err != nil {
		return tier.Report{}, err
	}
	f.Policies = len(pols)
	for _, r := range pols {
		if spec, err := policy.DecodeStored(r.Spec); err == nil && spec.Mode == policy.ModeObserve {
			f.Observing = append(f.Observing, r.Name)
		}
	}
	for _, e := range s.registry.List() {
		f.Entries++
		if req := nodeattest.Required(e); len(req) > 0 {
			f.GatedEntries++
			if slices.ContainsFunc(req, nodeattest.RequiresTPM) {
				f.TPMGatedEntries++
			}
		}
	}
	if err := s.credentialFacts(ctx, &f); err != nil {
		return tier.Report{}, err
	}
	return tier.Evaluate(f), nil
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
