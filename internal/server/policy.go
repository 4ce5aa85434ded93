package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

// initPolicy builds the policy engine from the stored AccessPolicy
// resources. Every enforcement point (token service, proxy, MCP gateway)
// decides with this one engine and shares its rate limiter.
func (s *Server) initPolicy(ctx context.Context) error {
	s.policy = policy.NewEngine(policy.Config{Now: s.now, Limiter: ratelimit.New()}, policy.Empty())
	return s.reloadPolicy(ctx)
}

// reloadPolicy compiles the stored policies and swaps the snapshot in
// atomically; decisions in flight finish with the version they started
// with. A stored policy that no longer compiles (it was valid when applied)
// keeps the previous snapshot, so a bad upgrade cannot open access.
func (s *Server) reloadPolicy(ctx context.Context) error {
	rs, err := s.db.ListResources(ctx, resource.KindAccessPolicy)
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	snap, err := policy.CompileStored(rs)
	if err != nil {
		return fmt.Errorf("compile stored policies: %w", err)
	}
	s.policy.Swap(snap)
	s.log.InfoContext(ctx, "policy loaded", "policies", len(rs))
	return nil
}

// Policy returns the engine every enforcement point decides with.
func (s *Server) Policy() *policy.Engine { return s.policy }

// checkPolicySet compiles the stored policies with docs replacing those of
// the same name, so an apply that would leave the set uncompilable is
// refused before anything is stored.
func (s *Server) checkPolicySet(ctx context.Context, docs []resource.Document) error {
	rs, err := s.db.ListResources(ctx, resource.KindAccessPolicy)
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	replaced := map[string]bool{}
	for _, d := range docs {
		replaced[d.Name] = true
	}
	versions := map[string]int64{}
	all := slices.Clone(docs)
	for _, r := range rs {
		versions[r.Name] = r.Version + 1
		if replaced[r.Name] {
			continue
		}
		d, err := policy.StoredDocument(r.Name, r.Version, r.Spec)
		if err != nil {
			return fmt.Errorf("stored AccessPolicy/%s: %w", r.Name, err)
		}
		versions[r.Name] = r.Version
		all = append(all, d)
	}
	_, err = policy.Compile(all, versions)
	return err
}
