package server

import (
	"bytes"
	"context"
	"fmt"

	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// initPolicy builds the policy engine from the stored AccessPolicy
// resources. Every enforcement point (token service, tasks, proxy, MCP
// gateway) decides with this one engine, shares its rate limiter, and sees
// node_name as the source.node of its requests.
func (s *Server) initPolicy(ctx context.Context) error {
	s.policy = policy.NewEngine(policy.Config{Now: s.now, Limiter: ratelimit.New(), Node: s.cfg.NodeName}, policy.Empty())
	return s.reloadPolicy(ctx)
}

// storedPolicies lists the stored AccessPolicy resources in the form the
// policy package compiles.
func (s *Server) storedPolicies(ctx context.Context) ([]store.Resource, []policy.Stored, error) {
	rs, err := s.db.ListResources(ctx, resource.KindAccessPolicy)
	if err != nil {
		return nil, nil, fmt.Errorf("load policies: %w", err)
	}
	out := make([]policy.Stored, len(rs))
	for i, r := range rs {
		out[i] = policy.Stored{Name: r.Name, Version: r.Version, Spec: r.Spec}
	}
	return rs, out, nil
}

// reloadPolicy compiles the stored policies and swaps the snapshot in
// atomically; decisions in flight finish with the version they started
// with. A stored policy that no longer compiles (it was valid when applied)
// keeps the previous snapshot, so a bad upgrade cannot open access.
func (s *Server) reloadPolicy(ctx context.Context) error {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	_, stored, err := s.storedPolicies(ctx)
	if err != nil {
		return err
	}
	snap, err := policy.CompileStored(stored)
	if err != nil {
		return fmt.Errorf("compile stored policies: %w", err)
	}
	s.policy.Swap(snap)
	s.log.InfoContext(ctx, "policy loaded", "policies", len(stored))
	return nil
}

// Policy returns the engine every enforcement point decides with.
func (s *Server) Policy() *policy.Engine { return s.policy }

// stagePolicySet compiles, once, the policy set an apply of docs would
// leave: docs (from their files, so errors name FILE:LINE:COLUMN) replacing
// the stored policies of the same name (errors name name@version). An apply
// that would leave the set uncompilable is refused before anything is
// stored. Each policy compiles under the version storing it will give it:
// its stored version when its spec is unchanged, the next one otherwise.
//
// The returned install, run once the documents are stored, swaps in that
// compiled set when the store holds exactly the versions it was compiled
// for; otherwise (another change landed in between, or a deleted policy
// was re-created and continued its old version numbers) it compiles what
// the store holds, as a reload does.
func (s *Server) stagePolicySet(ctx context.Context, docs []resource.Document) (func(context.Context) error, error) {
	rs, _, err := s.storedPolicies(ctx)
	if err != nil {
		return nil, err
	}
	cur := make(map[string]store.Resource, len(rs))
	for _, r := range rs {
		cur[r.Name] = r
	}
	want := make(map[string]int64, len(rs)+len(docs))
	inputs := make([]policy.Input, 0, len(rs)+len(docs))
	for _, d := range docs {
		spec, err := policy.EncodeSpec(d)
		if err != nil {
			return nil, err
		}
		v := int64(1)
		if r, ok := cur[d.Name]; ok {
			v = r.Version
			if !bytes.Equal(r.Spec, spec) {
				v++
			}
		}
		want[d.Name] = v
		inputs = append(inputs, policy.FromDocument(d, v))
	}
	for _, r := range rs {
		if _, replaced := want[r.Name]; replaced {
			continue
		}
		want[r.Name] = r.Version
		inputs = append(inputs, policy.FromStored(policy.Stored{Name: r.Name, Version: r.Version, Spec: r.Spec}))
	}
	snap, err := policy.CompileAll(inputs)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		s.policyMu.Lock()
		defer s.policyMu.Unlock()
		_, stored, err := s.storedPolicies(ctx)
		if err != nil {
			return err
		}
		same := len(stored) == len(want)
		for _, p := range stored {
			if want[p.Name] != p.Version {
				same = false
				break
			}
		}
		next := snap
		if !same {
			if next, err = policy.CompileStored(stored); err != nil {
				return fmt.Errorf("compile stored policies: %w", err)
			}
		}
		s.policy.Swap(next)
		s.log.InfoContext(ctx, "policy loaded", "policies", len(stored), "compiled_at_apply", same)
		return nil
	}, nil
}
