package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/store"
)

// Credentials is the broker of sealed upstream credentials. Values go in
// and never come out of the API.
type Credentials interface {
	List(ctx context.Context) ([]broker.Info, error)
	Put(ctx context.Context, actor, name string, typ broker.Type, v broker.Secret) (broker.Info, error)
	Rotate(ctx context.Context, actor, name string, typ broker.Type, v broker.Secret) (broker.Info, error)
	Delete(ctx context.Context, actor, name string) error
}

// CredentialToAPI maps a credential's description to its wire form.
func CredentialToAPI(i broker.Info) apitypes.Credential {
	return apitypes.Credential{Name: i.Name, Type: string(i.Type), Version: i.Version, Actor: i.Actor, CreatedAt: i.CreatedAt, UpdatedAt: i.UpdatedAt}
}

// decodeCredential reads a put or rotate body; the value leaves the
// request only as a [broker.Secret].
func decodeCredential(r *http.Request) (apitypes.CredentialRequest, broker.Secret, error) {
	var req apitypes.CredentialRequest
	if err := DecodeJSON(r, &req); err != nil {
		return req, broker.Secret{}, err
	}
	v := broker.NewSecret([]byte(req.Value))
	req.Value = ""
	return req, v, nil
}

func credentialError(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("credential %s: not found; add it with `writ credential put %s`", name, name)
	case errors.Is(err, store.ErrExists):
		return conflict("credential %s: already exists; replace its value with `writ credential rotate %s`", name, name)
	case strings.HasPrefix(err.Error(), "credential"):
		return badRequest("%v", err)
	}
	return err
}

func (a *API) listCredentials(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Credentials.List(r.Context())
	if err != nil {
		a.fail(w, r, "list credentials", err)
		return
	}
	WriteJSON(w, http.StatusOK, mapList(list, CredentialToAPI))
}

func (a *API) putCredential(w http.ResponseWriter, r *http.Request) {
	req, v, err := decodeCredential(r)
	if err != nil {
		WriteError(w, err)
		return
	}
	typ := broker.Type(req.Type)
	if typ == "" {
		typ = broker.Bearer
	}
	info, err := a.c.Credentials.Put(r.Context(), Actor(r.Context()), req.Name, typ, v)
	if err != nil {
		a.fail(w, r, "put credential", credentialError(req.Name, err))
		return
	}
	WriteJSON(w, http.StatusCreated, CredentialToAPI(info))
}

func (a *API) rotateCredential(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	req, v, err := decodeCredential(r)
	if err != nil {
		WriteError(w, err)
		return
	}
	if req.Name != "" && req.Name != name {
		WriteError(w, badRequest("the body names credential %s but the path %s", req.Name, name))
		return
	}
	info, err := a.c.Credentials.Rotate(r.Context(), Actor(r.Context()), name, broker.Type(req.Type), v)
	if err != nil {
		a.fail(w, r, "rotate credential", credentialError(name, err))
		return
	}
	WriteJSON(w, http.StatusOK, CredentialToAPI(info))
}

func (a *API) deleteCredential(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.c.Credentials.Delete(r.Context(), Actor(r.Context()), name); err != nil {
		a.fail(w, r, "delete credential", credentialError(name, err))
		return
	}
	WriteJSON(w, http.StatusOK, apitypes.Deleted{Deleted: "credential/" + name})
}

func (a *API) proxyCA(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(a.c.ProxyCA())
}
