package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
)

// Users manages the console's human accounts.
type Users interface {
	Add(ctx context.Context, name, role string, groups []string, password, actor string) (store.User, error)
	ChangeGroups(ctx context.Context, name string, c store.GroupChange, actor string) (store.User, error)
	List(ctx context.Context) ([]store.User, error)
	Remove(ctx context.Context, name, actor string) error
	SetPassword(ctx context.Context, name, password, actor string) error
}

// UserToAPI maps an account to its wire form (never its hash).
func UserToAPI(u store.User) apitypes.User {
	return apitypes.User{Name: u.Name, Role: u.Role, Source: u.Source, Groups: u.Groups, CreatedAt: u.CreatedAt, LastLogin: u.LastLogin}
}

// userError maps the account service's errors: a duplicate is a
// conflict, a missing account 404, a refused name, role or password 400.
func userError(name string, err error) error {
	var ie *account.InputError
	switch {
	case errors.As(err, &ie):
		return badRequest("%v", err)
	case errors.Is(err, store.ErrExists):
		return conflict("user %q already exists: remove it first, or change its password with writ user passwd", name)
	case errors.Is(err, store.ErrNotFound):
		return notFound("no user %q (see writ user list)", name)
	}
	return err
}

func (a *API) addUser(w http.ResponseWriter, r *http.Request) {
	var req apitypes.UserRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	u, err := a.c.Users.Add(r.Context(), req.Name, req.Role, req.Groups, req.Password, Actor(r.Context()))
	if err != nil {
		a.fail(w, r, "add user", userError(req.Name, err))
		return
	}
	WriteJSON(w, http.StatusCreated, UserToAPI(u))
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Users.List(r.Context())
	writeList(a, w, r, "list users", mapList(list, UserToAPI), err)
}

func (a *API) removeUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.c.Users.Remove(r.Context(), name, Actor(r.Context())); err != nil {
		a.fail(w, r, "remove user", userError(name, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req apitypes.UserRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	if err := a.c.Users.SetPassword(r.Context(), name, req.Password, Actor(r.Context())); err != nil {
		a.fail(w, r, "set password", userError(name, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) changeGroups(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req apitypes.GroupsRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	c := store.GroupChange{Add: req.Add, Remove: req.Remove}
	if req.Set != nil {
		c.Replace, c.Set = true, *req.Set
	}
	u, err := a.c.Users.ChangeGroups(r.Context(), name, c, Actor(r.Context()))
	if err != nil {
		a.fail(w, r, "change groups", userError(name, err))
		return
	}
	WriteJSON(w, http.StatusOK, UserToAPI(u))
}
