package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/httpapi"
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
	prepare func(ctx context.Context, d resource.Document) (func(ctx context.Context, actor string) (httpapi.ApplyResult, error), error)
	// checkSet validates the documents of this kind being applied together
	// with the stored ones they join, before anything is stored.
	checkSet func(ctx context.Context, docs []resource.Document) error
	// changed runs after documents of this kind were stored or deleted.
	changed func(ctx context.Context) error
}

// kinds returns the document kinds this server accepts.
func (s *Server) kinds() map[string]kind {
	return map[string]kind{
		resource.KindIdentity: {prepare: s.prepareIdentity},
		resource.KindService:  {prepare: s.prepareStored(proxy.StoredSpec), checkSet: s.checkServiceSet, changed: s.reloadServices},
		// MCPServer documents are validated and stored; the gateway that
		// serves them is internal/mcp.
		resource.KindMCPServer: {prepare: s.prepareStored(mcp.StoredSpec)},
		resource.KindAccessPolicy: {
			prepare:  s.prepareStored(policy.StoredSpec),
			checkSet: s.checkPolicySet,
			changed:  s.reloadPolicy,
		},
	}
}

func (s *Server) prepareIdentity(_ context.Context, d resource.Document) (func(context.Context, string) (httpapi.ApplyResult, error), error) {
	id, err := s.registry.FromDocument(d)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, actor string) (httpapi.ApplyResult, error) {
		out, created, changed, err := s.registry.Upsert(ctx, actor, id)
		if err != nil {
			return httpapi.ApplyResult{}, err
		}
		return httpapi.ApplyResult{Kind: d.Kind, Name: d.Name, Action: action(created, changed), Version: out.Revision}, nil
	}, nil
}

// prepareStored returns a prepare function for kinds kept in the generic
// resource store: decode validates the document and returns its spec as
// JSON.
func (s *Server) prepareStored(decode func(resource.Document) ([]byte, error)) func(context.Context, resource.Document) (func(context.Context, string) (httpapi.ApplyResult, error), error) {
	return func(_ context.Context, d resource.Document) (func(context.Context, string) (httpapi.ApplyResult, error), error) {
		spec, err := decode(d)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, actor string) (httpapi.ApplyResult, error) {
			out, changed, err := s.db.PutResource(ctx, store.Resource{Kind: d.Kind, Name: d.Name, Spec: spec, Actor: actor})
			if err != nil {
				return httpapi.ApplyResult{}, err
			}
			created := changed && out.Version == 1
			if changed {
				typ := audit.ResourceChanged
				if created {
					typ = audit.ResourceCreated
				}
				if err := s.emit.Emit(ctx, audit.Event{Type: typ, Actor: actor, Target: d.Kind + "/" + d.Name,
					Policy: fmt.Sprintf("%s@%d", d.Name, out.Version)}); err != nil {
					return httpapi.ApplyResult{}, err
				}
			}
			return httpapi.ApplyResult{Kind: d.Kind, Name: d.Name, Action: action(created, changed), Version: out.Version}, nil
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

func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	var req httpapi.ApplyRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	resp, err := s.Apply(r.Context(), actor(r.Context()), req)
	if err != nil {
		s.logInternal(r, "apply", err)
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, resp)
}

// Apply validates every document of req and, only if all are valid, stores
// them in order. actor is recorded in each change's audit event.
func (s *Server) Apply(ctx context.Context, actor string, req httpapi.ApplyRequest) (httpapi.ApplyResponse, error) {
	if len(req.Files) == 0 {
		return httpapi.ApplyResponse{}, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "no files to apply")
	}
	kinds := s.kinds()
	type step struct {
		doc   resource.Document
		apply func(context.Context, string) (httpapi.ApplyResult, error)
	}
	var (
		steps []step
		errs  []string
		seen  = map[string]string{}
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
				continue
			}
			steps = append(steps, step{doc: d, apply: fn})
		}
	}
	if len(errs) == 0 {
		byKind := map[string][]resource.Document{}
		for _, st := range steps {
			byKind[st.doc.Kind] = append(byKind[st.doc.Kind], st.doc)
		}
		for k, docs := range byKind {
			if fn := kinds[k].checkSet; fn != nil {
				if err := fn(ctx, docs); err != nil {
					errs = append(errs, err.Error())
				}
			}
		}
	}
	if len(errs) > 0 {
		return httpapi.ApplyResponse{}, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%s", strings.Join(errs, "\n"))
	}
	resp := httpapi.ApplyResponse{Results: []httpapi.ApplyResult{}}
	if req.DryRun {
		for _, st := range steps {
			resp.Results = append(resp.Results, httpapi.ApplyResult{Kind: st.doc.Kind, Name: st.doc.Name, Action: "valid"})
		}
		return resp, nil
	}
	touched := map[string]bool{}
	for _, st := range steps {
		res, err := st.apply(ctx, actor)
		if err != nil {
			return resp, storeError(st.doc.Ref(), err)
		}
		if res.Action != "unchanged" {
			touched[st.doc.Kind] = true
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, s.kindsChanged(ctx, kinds, touched)
}

func (s *Server) kindsChanged(ctx context.Context, kinds map[string]kind, touched map[string]bool) error {
	var errs []error
	for k := range touched {
		if fn := kinds[k].changed; fn != nil {
			errs = append(errs, fn(ctx))
		}
	}
	return errors.Join(errs...)
}

func unsupportedKind(d resource.Document) error {
	if d.Kind == resource.KindPolicyTest {
		return d.Errorf(d.Find("kind"), "kind", "PolicyTest documents are run offline with `writ policy test`, not applied to a server")
	}
	return d.Errorf(d.Find("kind"), "kind", "%s documents are not supported by this server yet", d.Kind)
}

func (s *Server) checkKind(k string) error {
	if !slices.Contains(resource.Kinds, k) {
		return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "kind %q: not a kind writ knows; one of %s", k, strings.Join(resource.Kinds, ", "))
	}
	return nil
}

func (s *Server) identityResource(id store.Identity) httpapi.Resource {
	spec := registry.IdentitySpec{SpiffeID: id.SpiffeID, X509TTL: id.X509TTL, JWTTTL: id.JWTTTL}
	for _, sel := range id.Selectors {
		spec.Selectors = append(spec.Selectors, sel.String())
	}
	b, _ := json.Marshal(spec)
	return httpapi.Resource{Kind: resource.KindIdentity, Name: id.Name, Version: id.Revision, Labels: id.Labels, Spec: b, UpdatedAt: id.UpdatedAt}
}

func resourceToAPI(r store.Resource) httpapi.Resource {
	return httpapi.Resource{Kind: r.Kind, Name: r.Name, Version: r.Version, Spec: r.Spec, Actor: r.Actor, UpdatedAt: r.UpdatedAt}
}

func (s *Server) handleListResources(w http.ResponseWriter, r *http.Request) {
	k := r.PathValue("kind")
	if err := s.checkKind(k); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	out := []httpapi.Resource{}
	if k == resource.KindIdentity {
		for _, id := range s.registry.List() {
			out = append(out, s.identityResource(id))
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
		return
	}
	list, err := s.db.ListResources(r.Context(), k)
	if err != nil {
		s.logInternal(r, "list resources", err)
		httpapi.WriteError(w, err)
		return
	}
	for _, res := range list {
		out = append(out, resourceToAPI(res))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetResource(w http.ResponseWriter, r *http.Request) {
	k, name := r.PathValue("kind"), r.PathValue("name")
	if err := s.checkKind(k); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if k == resource.KindIdentity {
		id, ok := s.registry.Get(name)
		if !ok {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "Identity/%s: not found", name))
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, s.identityResource(id))
		return
	}
	res, err := s.db.GetResource(r.Context(), k, name)
	if err != nil {
		s.logInternal(r, "get resource", err)
		httpapi.WriteError(w, storeError(k+"/"+name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, resourceToAPI(res))
}

func (s *Server) handleDeleteResource(w http.ResponseWriter, r *http.Request) {
	k, name := r.PathValue("kind"), r.PathValue("name")
	if err := s.checkKind(k); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	ctx := r.Context()
	var err error
	if k == resource.KindIdentity {
		err = s.registry.Delete(ctx, actor(ctx), name)
	} else if err = s.db.DeleteResource(ctx, k, name); err == nil {
		err = s.emit.Emit(ctx, audit.Event{Type: audit.ResourceDeleted, Actor: actor(ctx), Target: k + "/" + name})
		if err == nil {
			err = s.kindsChanged(ctx, s.kinds(), map[string]bool{k: true})
		}
	}
	if err != nil {
		s.logInternal(r, "delete resource", err)
		httpapi.WriteError(w, storeError(k+"/"+name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"deleted": k + "/" + name})
}
