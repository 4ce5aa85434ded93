package server

import (
	"context"
	"time"

	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/posture"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/tier"
)

// tierWindow is how far back the tier report measures accesses.
const tierWindow = 30 * 24 * time.Hour

// sealedFileKeys is the key provider of this release: CA keys sealed on
// disk under the KEK. A hardware provider reports itself through the same
// interface (tier.KeyProvider).
type sealedFileKeys struct{}

func (sealedFileKeys) KeyProviderKind() string { return "sealed-file" }
func (sealedFileKeys) HardwareBacked() bool    { return false }

// nodeFacts reports the attestors the stored nodes joined with.
type nodeFacts struct{ attestors []string }

func (n nodeFacts) NodeAttestors() []string { return n.attestors }
func (n nodeFacts) HardwareAttested() bool {
	for _, a := range n.attestors {
		if a == "tpm" {
			return true
		}
	}
	return false
}

// postureService serves /v1/posture and /v1/tier.
type postureService struct{ s *Server }

func (p postureService) Findings(ctx context.Context) ([]posture.Finding, error) {
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
	keys := sealedFileKeys{}
	return posture.Evaluate(posture.Inputs{Now: s.now(), Entries: s.registry.List(), Policies: pols, Inventory: inv, Graph: g,
		HardwareKeys: keys.HardwareBacked(), KeyProvider: keys.KeyProviderKind(), Witnesses: len(s.cfg.Audit.Witnesses)}), nil
}

func (p postureService) Tier(ctx context.Context) (tier.Report, error) {
	s := p.s
	f := tier.Facts{X509TTLSeconds: s.cfg.CA.X509SVIDTTL.Seconds(), ByVia: map[string]int64{}, Keys: sealedFileKeys{}}
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
		if n.EvictedAt.IsZero() && !containsStr(nf.attestors, n.Attestor) {
			nf.attestors = append(nf.attestors, n.Attestor)
		}
	}
	f.Nodes = nf
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
