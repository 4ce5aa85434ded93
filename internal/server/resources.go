package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/writ-dev/writ/internal/api"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/mcp"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// kind is how the server validates and stores one kind of document.
type kind struct {
	// prepare validates d and returns the function that stores it.
	prepare func(ctx context.Context, d resource.Document) (func(ctx context.Context, actor string) (apitypes.ApplyResult, error), error)
	// checkSet validates the documents of this kind being applied together
	// with the stored ones they join, before anything is stored.
	checkSet func(ctx context.Context, docs []resource.Document) error
	// stage is checkSet for kinds that compile the set they check: it
	// returns the function that installs exactly what it compiled once the
	// documents are stored (run instead of changed).
	stage func(ctx context.Context, docs []resource.Document) (install func(ctx context.Context) error, err error)
	// changed runs after documents of this kind were stored or deleted.
	changed func(ctx context.Context) error
}

// kinds returns the document kinds this server accepts.
func (s *Server) kinds() map[string]kind {
	return map[string]kind{
		resource.KindIdentity: {prepare: s.prepareIdentity},
		resource.KindService:  {prepare: s.prepareStored(proxy.StoredSpec), checkSet: s.checkServiceSet, changed: s.reloadServices},
		// MCPServer documents are served by the MCP gateway (internal/mcp).
		resource.KindMCPServer: {prepare: s.prepareStored(mcp.StoredSpec), changed: s.reloadMCP},
		resource.KindAccessPolicy: {
			prepare: s.preparePolicy,
			stage:   s.stagePolicySet,
			changed: s.reloadPolicy,
		},
	}
}

func (s *Server) prepareIdentity(_ context.Context, d resource.Document) (func(context.Context, string) (apitypes.ApplyResult, error), error) {
	id, err := s.registry.FromDocument(d)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, actor string) (apitypes.ApplyResult, error) {
		out, created, changed, err := s.registry.Upsert(ctx, actor, id)
		if err != nil {
			return apitypes.ApplyResult{}, err
		}
		return apitypes.ApplyResult{Kind: d.Kind, Name: d.Name, Action: action(created, changed), Version: out.Revision}, nil
	}, nil
}

// preparePolicy prepares an AccessPolicy; its result says when it is in
// observe mode, because that weakens enforcement.
func (s *Server) preparePolicy(ctx context.Context, d resource.Document) (func(context.Context, string) (apitypes.ApplyResult, error), error) {
	apply, err := s.prepareStored(policy.EncodeSpec)(ctx, d)
	if err != nil {
		return nil, err
	}
	spec, err := policy.DecodeSpec(d)
	if err != nil || spec.Mode != policy.ModeObserve {
		return apply, err
	}
	return func(ctx context.Context, actor string) (apitypes.ApplyResult, error) {
		res, err := apply(ctx, actor)
		res.Mode = policy.ModeObserve
		return res, err
	}, nil
}

// prepareStored returns a prepare function for kinds kept in the generic
// resource store: decode validates the document and returns its spec as
// JSON.
func (s *Server) prepareStored(decode func(resource.Document) ([]byte, error)) func(context.Context, resource.Document) (func(context.Context, string) (apitypes.ApplyResult, error), error) {
	return func(_ context.Context, d resource.Document) (func(context.Context, string) (apitypes.ApplyResult, error), error) {
		spec, err := decode(d)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, actor string) (apitypes.ApplyResult, error) {
			out, changed, err := s.db.PutResource(ctx, store.Resource{Kind: d.Kind, Name: d.Name, Spec: spec, Actor: actor})
			if err != nil {
				return apitypes.ApplyResult{}, err
			}
			created := changed && out.Version == 1
			if changed {
				typ := audit.ResourceChanged
				if created {
					typ = audit.ResourceCreated
				}
				if err := s.emit.Emit(ctx, audit.Event{Type: typ, Actor: actor, Target: d.Kind + "/" + d.Name,
					Policy: fmt.Sprintf("%s@%d", d.Name, out.Version)}); err != nil {
					return apitypes.ApplyResult{}, err
				}
			}
			return apitypes.ApplyResult{Kind: d.Kind, Name: d.Name, Action: action(created, changed), Version: out.Version}, nil
		}, nil
	}
}

func action(created, changed bool) string {
	switch {
	case created:
		return "created"
	case changed:
		return "changed"
	}
	return "unchanged"
}

// Apply validates every document of req and, only if all are valid, stores
// them in order. actor is recorded in each change's audit event.
func (s *Server) Apply(ctx context.Context, actor string, req apitypes.ApplyRequest) (apitypes.ApplyResponse, error) {
	if len(req.Files) == 0 {
		return apitypes.ApplyResponse{}, apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest, "no files to apply")
	}
	kinds := s.kinds()
	type step struct {
		doc   resource.Document
		apply func(context.Context, string) (apitypes.ApplyResult, error)
	}
	var (
		steps  []step
		errs   []string
		seen   = map[string]string{}
		failed = map[string]bool{} // kinds with a document that did not prepare
	)
	for _, f := range req.Files {
		docs, err := resource.Parse(f.Name, []byte(f.Content))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, d := range docs {
			if prev, dup := seen[d.Ref()]; dup {
				errs = append(errs, fmt.Sprintf("%s:%d: %s is also defined in %s", d.File, d.Line, d.Ref(), prev))
				continue
			}
			seen[d.Ref()] = fmt.Sprintf("%s:%d", d.File, d.Line)
			k, ok := kinds[d.Kind]
			if !ok {
				errs = append(errs, unsupportedKind(d).Error())
				continue
			}
			fn, err := k.prepare(ctx, d)
			if err != nil {
				errs = append(errs, err.Error())
				failed[d.Kind] = true
				continue
			}
			steps = append(steps, step{doc: d, apply: fn})
		}
	}
	// The set checks run for every kind whose documents all prepared, so
	// that one apply reports the problems of every kind at once.
	installs := map[string]func(context.Context) error{}
	byKind := map[string][]resource.Document{}
	for _, st := range steps {
		byKind[st.doc.Kind] = append(byKind[st.doc.Kind], st.doc)
	}
	for k, docs := range byKind {
		if failed[k] {
			continue
		}
		if fn := kinds[k].checkSet; fn != nil {
			if err := fn(ctx, docs); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if fn := kinds[k].stage; fn != nil {
			install, err := fn(ctx, docs)
			if err != nil {
				errs = append(errs, err.Error())
			}
			installs[k] = install
		}
	}
	if len(errs) > 0 {
		return apitypes.ApplyResponse{}, apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest, "%s", strings.Join(errs, "\n"))
	}
	resp := apitypes.ApplyResponse{Results: []apitypes.ApplyResult{}}
	if req.DryRun {
		for _, st := range steps {
			resp.Results = append(resp.Results, apitypes.ApplyResult{Kind: st.doc.Kind, Name: st.doc.Name, Action: "valid"})
		}
		return resp, nil
	}
	touched := map[string]bool{}
	for _, st := range steps {
		res, err := st.apply(ctx, actor)
		if err != nil {
			return resp, applyError(st.doc.Ref(), err)
		}
		if res.Action != "unchanged" {
			touched[st.doc.Kind] = true
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, s.kindsChanged(ctx, kinds, touched, installs)
}

// kindsChanged runs, for each touched kind, what its stage returned to
// install, or else its changed function.
func (s *Server) kindsChanged(ctx context.Context, kinds map[string]kind, touched map[string]bool, installs map[string]func(context.Context) error) error {
	var errs []error
	for k := range touched {
		if fn := installs[k]; fn != nil {
			errs = append(errs, fn(ctx))
		} else if fn := kinds[k].changed; fn != nil {
			errs = append(errs, fn(ctx))
		}
	}
	s.resourcesChanged(ctx)
	return errors.Join(errs...)
}

func unsupportedKind(d resource.Document) error {
	if d.Kind == resource.KindPolicyTest {
		return d.Errorf(d.Find("kind"), "kind", "PolicyTest documents are run offline with `writ policy test`, not applied to a server")
	}
	return d.Errorf(d.Find("kind"), "kind", "%s documents are not supported by this server yet", d.Kind)
}

// applyError maps a store or validation error of one document.
func applyError(ref string, err error) error {
	var fe *registry.FieldError
	switch {
	case errors.As(err, &fe):
		return apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest, "%s: %v", ref, err)
	case errors.Is(err, store.ErrNotFound):
		return apitypes.Errorf(http.StatusNotFound, apitypes.CodeNotFound, "%s: not found", ref)
	case errors.Is(err, store.ErrExists):
		return apitypes.Errorf(http.StatusConflict, apitypes.CodeConflict, "%s: already exists; delete it first or use `writ apply` to change it", ref)
	}
	return err
}

// resources is the declarative resource service the admin API serves:
// Identity documents live in the registry, every other kind in the
// generic resource store.
type resources struct{ s *Server }

var _ api.Resources = resources{}

func (rs resources) Apply(ctx context.Context, actor string, req apitypes.ApplyRequest) (apitypes.ApplyResponse, error) {
	return rs.s.Apply(ctx, actor, req)
}

func (resources) CheckKind(k string) error {
	if !slices.Contains(resource.Kinds, k) {
		return apitypes.Errorf(http.StatusNotFound, apitypes.CodeNotFound, "kind %q: not a kind writ knows; one of %s", k, strings.Join(resource.Kinds, ", "))
	}
	return nil
}

func identityResource(id store.Entry) apitypes.Resource {
	spec := registry.IdentitySpec{SpiffeID: id.SpiffeID, X509TTL: id.X509TTL, JWTTTL: id.JWTTTL}
	for _, sel := range id.Selectors {
		spec.Selectors = append(spec.Selectors, sel.String())
	}
	b, _ := json.Marshal(spec)
	return apitypes.Resource{Kind: resource.KindIdentity, Name: id.Name, Version: id.Revision, Labels: id.Labels, Spec: b, UpdatedAt: id.UpdatedAt}
}

func resourceToAPI(r store.Resource) apitypes.Resource {
	return apitypes.Resource{Kind: r.Kind, Name: r.Name, Version: r.Version, Spec: r.Spec, Actor: r.Actor, UpdatedAt: r.UpdatedAt}
}

func (rs resources) ListResources(ctx context.Context, k string) ([]apitypes.Resource, error) {
	out := []apitypes.Resource{}
	if k == resource.KindIdentity {
		for _, id := range rs.s.registry.List() {
			out = append(out, identityResource(id))
		}
		return out, nil
	}
	list, err := rs.s.db.ListResources(ctx, k)
	if err != nil {
		return nil, err
	}
	for _, res := range list {
		out = append(out, resourceToAPI(res))
	}
	return out, nil
}

func (rs resources) GetResource(ctx context.Context, k, name string) (apitypes.Resource, error) {
	if k == resource.KindIdentity {
		id, ok := rs.s.registry.Get(name)
		if !ok {
			return apitypes.Resource{}, store.ErrNotFound
		}
		return identityResource(id), nil
	}
	res, err := rs.s.db.GetResource(ctx, k, name)
	if err != nil {
		return apitypes.Resource{}, err
	}
	return resourceToAPI(res), nil
}

func (rs resources) DeleteResource(ctx context.Context, actor, k, name string) error {
	s := rs.s
	if k == resource.KindIdentity {
		return s.registry.Delete(ctx, actor, name)
	}
	if err := s.db.DeleteResource(ctx, k, name); err != nil {
		return err
	}
	if err := s.emit.Emit(ctx, audit.Event{Type: audit.ResourceDeleted, Actor: actor, Target: k + "/" + name}); err != nil {
		return err
	}
	return s.kindsChanged(ctx, s.kinds(), map[string]bool{k: true}, nil)
}
