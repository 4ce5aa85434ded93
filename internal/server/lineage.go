package server

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/resource"
)

// CrownJewelLabel is the flow label that marks a Service or MCPServer as
// a crown jewel: `writ lineage --crown-jewels` shows the paths into it and
// posture ranks what reaches it first.
const CrownJewelLabel = "crown_jewel"

// initLineage builds the lineage graph over the audit log, the store's
// aggregates and the inventory.
func (s *Server) initLineage() {
	s.lineage = &graph.Lineage{
		Builder:     &graph.Builder{Log: s.db.AuditBackend(), Facts: s.db, Approvals: s.db, Logger: s.log.With("component", "lineage")},
		Inventory:   s.db,
		CrownJewels: s.crownJewels,
	}
}

// crownJewels returns the names of the Services and MCPServers labelled
// crown_jewel.
func (s *Server) crownJewels(ctx context.Context) ([]string, error) {
	var out []string
	for _, kind := range []string{resource.KindService, resource.KindMCPServer} {
		rs, err := s.db.ListResources(ctx, kind)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			var spec struct {
				Labels []string `json:"labels"`
			}
			if json.Unmarshal(r.Spec, &spec) == nil && slices.Contains(spec.Labels, CrownJewelLabel) {
				out = append(out, r.Name)
			}
		}
	}
	return out, nil
}
