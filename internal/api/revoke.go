package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
)

// Revocations is the kill switch.
type Revocations interface {
	// Revoke records r; created is false when it was already revoked.
	Revoke(ctx context.Context, r store.Revocation) (out store.Revocation, created bool, err error)
	// List returns the revocations in force, oldest first.
	List(ctx context.Context) ([]store.Revocation, error)
}

// RevocationToAPI maps a stored revocation to its wire form.
func RevocationToAPI(r store.Revocation) apitypes.Revocation {
	return apitypes.Revocation{Kind: r.Kind, Value: r.Value, Reason: r.Reason, Actor: r.Actor, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request) {
	var req apitypes.RevokeRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	if !revoke.ValidKind(req.Kind) {
		WriteError(w, badRequest("kind %q is not one of spiffe_id, instance, task, token", req.Kind))
		return
	}
	if req.Kind == store.RevokeSpiffeID {
		if _, err := spiffeid.FromString(req.Value); err != nil {
			WriteError(w, badRequest("value %q is not a SPIFFE ID: %v", req.Value, err))
			return
		}
	}
	rv, created, err := a.c.Revocations.Revoke(r.Context(), store.Revocation{Kind: req.Kind, Value: req.Value, Reason: req.Reason, Actor: Actor(r.Context())})
	if err != nil && !errors.Is(err, revoke.ErrNotAudited) {
		if rv.Kind == "" {
			WriteError(w, badRequest("%v", err))
			return
		}
		a.fail(w, r, "revoke", err)
		return
	}
	if err != nil {
		a.logInternal(r, "audit revocation", err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	WriteJSON(w, status, RevocationToAPI(rv))
}

func (a *API) listRevocations(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Revocations.List(r.Context())
	writeList(a, w, r, "list revocations", mapList(list, RevocationToAPI), err)
}
