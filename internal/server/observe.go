package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/writ-dev/writ/internal/api"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/learn"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// policies is the policy status and promotion service of the admin API
// (observe mode, #16).
type policies struct{ s *Server }

var _ api.Policies = policies{}

// status describes the stored policy r, with the engine's observe-mode
// counts when it is observed.
func (ps policies) status(r store.Resource, stats []policy.ObserveStats) apitypes.PolicyStatus {
	st := apitypes.PolicyStatus{Name: r.Name, Version: r.Version, Mode: policy.ModeEnforce, Digest: policy.SpecDigest(r.Spec),
		Actor: r.Actor, UpdatedAt: r.UpdatedAt}
	spec, err := policy.DecodeStored(r.Spec)
	if err != nil {
		return st // a spec that no longer decodes is reported by the reload
	}
	st.Rules, st.Replaces = len(spec.Rules), spec.Replaces
	if spec.Mode == policy.ModeObserve {
		st.Mode = policy.ModeObserve
		st.Observe = &apitypes.ObserveStats{}
		for _, o := range stats {
			if o.Policy == r.Name && o.Version == r.Version {
				st.Observe = observeToAPI(o)
			}
		}
	}
	return st
}

func observeToAPI(o policy.ObserveStats) *apitypes.ObserveStats {
	return &apitypes.ObserveStats{Since: o.Since, Decisions: o.Decisions, WouldDeny: o.WouldDeny, WouldHold: o.WouldHold, WouldAllow: o.WouldAllow}
}

func (ps policies) ListPolicies(ctx context.Context) ([]apitypes.PolicyStatus, error) {
	rs, _, err := ps.s.storedPolicies(ctx)
	if err != nil {
		return nil, err
	}
	stats := ps.s.policy.Observing()
	out := make([]apitypes.PolicyStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, ps.status(r, stats))
	}
	slices.SortFunc(out, func(a, b apitypes.PolicyStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (ps policies) GetPolicy(ctx context.Context, name string) (apitypes.PolicyStatus, error) {
	r, err := ps.s.db.GetResource(ctx, resource.KindAccessPolicy, name)
	if err != nil {
		return apitypes.PolicyStatus{}, err
	}
	return ps.status(r, ps.s.policy.Observing()), nil
}

// Promote makes the observed policy name enforcing: it stores its spec
// without mode and replaces as the next version, deletes the policies it
// replaced, records a policy.promoted event and installs the new set. The
// resulting set is compiled before anything is stored; expect must be the
// digest of the observed version, so that exactly what was reviewed is
// promoted.
func (ps policies) Promote(ctx context.Context, actor, name, expect string) (apitypes.PromoteResponse, error) {
	s := ps.s
	s.promoteMu.Lock()
	defer s.promoteMu.Unlock()
	r, spec, digest, err := ps.observedVersion(ctx, name, expect, true)
	if err != nil {
		return apitypes.PromoteResponse{}, err
	}
	var observed apitypes.ObserveStats
	for _, o := range s.policy.Observing() {
		if o.Policy == name && o.Version == r.Version {
			observed = *observeToAPI(o)
		}
	}
	// The set the promotion leaves must compile before anything changes.
	next, replaced, _, err := ps.promotedSet(ctx, r, spec)
	if err != nil {
		return apitypes.PromoteResponse{}, err
	}
	out, _, err := s.db.PutResource(ctx, store.Resource{Kind: resource.KindAccessPolicy, Name: name, Spec: next, Actor: actor})
	if err != nil {
		return apitypes.PromoteResponse{}, err
	}
	var errs []error
	for _, old := range replaced {
		err := s.db.DeleteResource(ctx, resource.KindAccessPolicy, old)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete replaced policy %s: %w", old, err))
			continue
		}
		errs = append(errs, s.emit.Emit(ctx, audit.Event{Type: audit.ResourceDeleted, Actor: actor, Target: resource.KindAccessPolicy + "/" + old,
			Reason: "replaced by " + name + "@" + strconv.FormatInt(out.Version, 10) + ", promoted from observe mode"}))
	}
	errs = append(errs, s.emit.Emit(ctx, audit.Event{Type: audit.PolicyPromoted, Actor: actor, Target: resource.KindAccessPolicy + "/" + name,
		Policy: fmt.Sprintf("%s@%d", name, out.Version), Details: map[string]string{
			"from_version": strconv.FormatInt(r.Version, 10), "digest": digest, "replaced": strings.Join(replaced, ","),
			"decisions": strconv.FormatInt(observed.Decisions, 10), "would_deny": strconv.FormatInt(observed.WouldDeny, 10),
			"would_hold": strconv.FormatInt(observed.WouldHold, 10), "would_allow": strconv.FormatInt(observed.WouldAllow, 10),
		}}))
	errs = append(errs, s.reloadPolicy(ctx))
	s.resourcesChanged(ctx)
	if err := errors.Join(errs...); err != nil {
		return apitypes.PromoteResponse{}, err
	}
	if replaced == nil {
		replaced = []string{}
	}
	return apitypes.PromoteResponse{Policy: ps.status(out, nil), FromVersion: r.Version, Replaced: replaced, Observed: observed}, nil
}

// promotedSet returns the spec r (observed, decoded as spec) would be
// stored with once promoted, the policies the promotion deletes, and the
// compiled set that would then decide. spec is changed.
func (ps policies) promotedSet(ctx context.Context, r store.Resource, spec *policy.Spec) (json.RawMessage, []string, *policy.Snapshot, error) {
	ref := fmt.Sprintf("%s@%d", r.Name, r.Version)
	replaces := spec.Replaces
	spec.Mode, spec.Replaces = "", nil
	next, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode promoted policy %s: %w", ref, err)
	}
	rs, _, err := ps.s.storedPolicies(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var set []policy.Stored
	var replaced []string
	for _, p := range rs {
		switch {
		case p.Name == r.Name:
			set = append(set, policy.Stored{Name: r.Name, Version: r.Version + 1, Spec: next})
		case slices.Contains(replaces, p.Name):
			replaced = append(replaced, p.Name)
		default:
			set = append(set, policy.Stored{Name: p.Name, Version: p.Version, Spec: p.Spec})
		}
	}
	snap, err := policy.CompileStored(set)
	if err != nil {
		return nil, nil, nil, apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest,
			"promote %s: the resulting policy set does not compile, nothing changed: %v", ref, err)
	}
	return next, replaced, snap, nil
}

// Replay re-decides the traffic recorded since the observed version of
// name was applied with the set its promotion would leave: what `writ
// policy promote` shows before it switches. expect, when set, must be
// that version's digest.
func (ps policies) Replay(ctx context.Context, name string, req apitypes.PolicyReplayRequest) (apitypes.PolicyReplay, error) {
	s := ps.s
	if req.Examples < 0 || req.Examples > 100 {
		return apitypes.PolicyReplay{}, apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest,
			"examples %d: want 0 (the default, 3) to 100", req.Examples)
	}
	r, spec, digest, err := ps.observedVersion(ctx, name, req.ExpectDigest, false)
	if err != nil {
		return apitypes.PolicyReplay{}, err
	}
	ref := fmt.Sprintf("%s@%d", name, r.Version)
	_, _, snap, err := ps.promotedSet(ctx, r, spec)
	if err != nil {
		return apitypes.PolicyReplay{}, err
	}
	out := apitypes.PolicyReplay{Policy: name, Version: r.Version, Digest: digest, Since: r.UpdatedAt, Until: s.now()}
	out.Report, err = learn.Replay(ctx, s.db.AuditBackend(), learn.Filter{Since: out.Since, Until: out.Until}, snap, req.Examples)
	if err != nil {
		return apitypes.PolicyReplay{}, fmt.Errorf("replay the traffic observed by %s: %w", ref, err)
	}
	return out, nil
}

// observedVersion reads the stored policy name, which must be in observe
// mode, and checks that its digest is expect (required when need is true).
func (ps policies) observedVersion(ctx context.Context, name, expect string, need bool) (store.Resource, *policy.Spec, string, error) {
	r, err := ps.s.db.GetResource(ctx, resource.KindAccessPolicy, name)
	if err != nil {
		return r, nil, "", err
	}
	ref := fmt.Sprintf("%s@%d", name, r.Version)
	digest := policy.SpecDigest(r.Spec)
	spec, err := policy.DecodeStored(r.Spec)
	if err != nil {
		return r, nil, "", fmt.Errorf("decode stored policy %s: %w", ref, err)
	}
	switch {
	case spec.Mode != policy.ModeObserve:
		return r, nil, "", apitypes.Errorf(http.StatusConflict, apitypes.CodeConflict,
			"policy %s is not in observe mode: it enforces already, there is nothing to promote", ref)
	case expect == "" && need:
		return r, nil, "", apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest,
			"promote %s: the digest of the version you reviewed is required; `writ policy observe %s` shows it (%s)", ref, name, digest)
	case expect != "" && expect != digest:
		return r, nil, "", apitypes.Errorf(http.StatusConflict, apitypes.CodeConflict,
			"policy %s has digest %s, not the expected %s: it changed since it was reviewed; review `writ policy observe %s` again", ref, digest, expect, name)
	}
	return r, spec, digest, nil
}
