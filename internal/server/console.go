package server

import (
	"context"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/learn"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
)

// consoleReplay re-decides the accesses recorded since since with the
// stored AccessPolicies, those in observe mode as if promoted (what
// `writ policy replay` does with candidate files), for the console's
// Policies page.
func (s *Server) consoleReplay(ctx context.Context, since time.Time) (learn.ReplayReport, error) {
	rs, err := s.db.ListResources(ctx, resource.KindAccessPolicy)
	if err != nil {
		return learn.ReplayReport{}, err
	}
	if len(rs) == 0 {
		return learn.ReplayReport{}, fmt.Errorf("replay: no AccessPolicy is stored")
	}
	stored := make([]policy.Stored, 0, len(rs))
	for _, r := range rs {
		stored = append(stored, policy.Stored{Name: r.Name, Version: r.Version, Spec: r.Spec})
	}
	snap, err := policy.CompileStored(stored)
	if err != nil {
		return learn.ReplayReport{}, fmt.Errorf("replay: compile the stored policies: %w", err)
	}
	return learn.Replay(ctx, s.db.AuditBackend(), learn.Filter{Since: since}, snap, 3)
}
