package api

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Resources applies and serves declarative documents. Its errors are
// [apitypes.Error] for what the client must fix (a document that does not
// validate names file, line and field), store errors otherwise.
type Resources interface {
	// Apply validates every document of req and, only if all are valid,
	// stores them in order; actor is recorded in each change's event.
	Apply(ctx context.Context, actor string, req apitypes.ApplyRequest) (apitypes.ApplyResponse, error)
	// CheckKind returns an error unless kind is a kind writ knows.
	CheckKind(kind string) error
	ListResources(ctx context.Context, kind string) ([]apitypes.Resource, error)
	GetResource(ctx context.Context, kind, name string) (apitypes.Resource, error)
	DeleteResource(ctx context.Context, actor, kind, name string) error
}

func (a *API) apply(w http.ResponseWriter, r *http.Request) {
	var req apitypes.ApplyRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	resp, err := a.c.Resources.Apply(r.Context(), Actor(r.Context()), req)
	if err != nil {
		a.fail(w, r, "apply", err)
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}

func (a *API) listResources(w http.ResponseWriter, r *http.Request) {
	k := r.PathValue("kind")
	if err := a.c.Resources.CheckKind(k); err != nil {
		WriteError(w, err)
		return
	}
	list, err := a.c.Resources.ListResources(r.Context(), k)
	writeList(a, w, r, "list resources", list, err)
}

func (a *API) getResource(w http.ResponseWriter, r *http.Request) {
	k, name := r.PathValue("kind"), r.PathValue("name")
	if err := a.c.Resources.CheckKind(k); err != nil {
		WriteError(w, err)
		return
	}
	res, err := a.c.Resources.GetResource(r.Context(), k, name)
	if err != nil {
		a.fail(w, r, "get resource", storeError(k+"/"+name, err))
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

func (a *API) deleteResource(w http.ResponseWriter, r *http.Request) {
	k, name := r.PathValue("kind"), r.PathValue("name")
	if err := a.c.Resources.CheckKind(k); err != nil {
		WriteError(w, err)
		return
	}
	if err := a.c.Resources.DeleteResource(r.Context(), Actor(r.Context()), k, name); err != nil {
		a.fail(w, r, "delete resource", storeError(k+"/"+name, err))
		return
	}
	WriteJSON(w, http.StatusOK, apitypes.Deleted{Deleted: k + "/" + name})
}
