package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

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
	// Lift takes back the revocation of kind and value (store.ErrNotFound
	// if there is none) and returns it.
	Lift(ctx context.Context, kind, value, actor, reason string) (store.Revocation, error)
}

// RevokeTargets tells the kill switch what a revocation would name, so
// that a typo is refused instead of "succeeding" permanently.
type RevokeTargets interface {
	// Token checks that raw is an access token this server issued and
	// returns its jti and expiry.
	Token(raw string) (jti string, expires time.Time, err error)
	// Find reports whether value names a known target of kind: an entry's
	// (or a task's) SPIFFE ID, an attested instance, a task, or the jti
	// of a token minted within the longest token lifetime. For a token it
	// returns its expiry too.
	Find(ctx context.Context, kind, value string) (found bool, expires time.Time, err error)
}

// RevocationToAPI maps a stored revocation to its wire form.
func RevocationToAPI(r store.Revocation) apitypes.Revocation {
	return apitypes.Revocation{Kind: r.Kind, Value: r.Value, Reason: r.Reason, Actor: r.Actor, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
}

// looksLikeJWT reports whether v has the shape of a compact JWS (three
// dot-separated parts); a jti never does.
func looksLikeJWT(v string) bool { return strings.Count(v, ".") == 2 && len(v) > 32 }

// revokeTarget checks kind and value and resolves a pasted token to its
// jti. The error names the input and what to do.
func (a *API) revokeTarget(kind, value string) (string, time.Time, error) {
	if !revoke.ValidKind(kind) {
		return "", time.Time{}, badRequest("kind %q is not one of spiffe_id, instance, task, token", kind)
	}
	if kind == store.RevokeSpiffeID {
		if _, err := spiffeid.FromString(value); err != nil {
			return "", time.Time{}, badRequest("value %q is not a SPIFFE ID: %v", value, err)
		}
	}
	if kind == store.RevokeToken && looksLikeJWT(value) {
		jti, exp, err := a.c.Targets.Token(value)
		if err != nil {
			return "", time.Time{}, badRequest("the token given is not an access token issued by this writ server (%v); "+
				"revoke a token by its jti or by the token itself", err)
		}
		return jti, exp, nil
	}
	return value, time.Time{}, nil
}

// unknownTarget is the answer to a revocation that names nothing known.
func unknownTarget(kind, value string) error {
	what := map[string]string{
		store.RevokeSpiffeID: fmt.Sprintf("no entry or task has the SPIFFE ID %q (see `writ entry list`)", value),
		store.RevokeInstance: fmt.Sprintf("no attested instance %q (see `writ instance list`)", value),
		store.RevokeTask:     fmt.Sprintf("no task %q (see `writ task list`)", value),
		store.RevokeToken:    fmt.Sprintf("no access token with jti %q was minted recently (it is unknown, or expired and harmless)", value),
	}[kind]
	return notFound("revoke %s %q: %s; nothing was revoked. Check the value, or pass --force (API: \"force\": true) to revoke it before it exists",
		kind, value, what)
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request) {
	var req apitypes.RevokeRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	value, expires, err := a.revokeTarget(req.Kind, req.Value)
	if err != nil {
		WriteError(w, err)
		return
	}
	if expires.IsZero() && !req.Force {
		found, exp, err := a.c.Targets.Find(r.Context(), req.Kind, value)
		if err != nil {
			a.fail(w, r, "find revocation target", err)
			return
		}
		if !found {
			WriteError(w, unknownTarget(req.Kind, value))
			return
		}
		expires = exp
	}
	rev := store.Revocation{Kind: req.Kind, Value: value, Reason: req.Reason, Actor: Actor(r.Context())}
	if !expires.IsZero() {
		// Once the token has expired its revocation no longer matters.
		rev.ExpiresAt = expires.Add(time.Minute)
	}
	rv, created, err := a.c.Revocations.Revoke(r.Context(), rev)
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

func (a *API) liftRevocation(w http.ResponseWriter, r *http.Request) {
	var req apitypes.LiftRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	value, _, err := a.revokeTarget(req.Kind, req.Value)
	if err != nil {
		WriteError(w, err)
		return
	}
	rv, err := a.c.Revocations.Lift(r.Context(), req.Kind, value, Actor(r.Context()), req.Reason)
	switch {
	case errors.Is(err, store.ErrNotFound):
		WriteError(w, notFound("%s %q is not revoked (see `writ revoke list`)", req.Kind, value))
	case err != nil && !errors.Is(err, revoke.ErrNotAudited):
		a.fail(w, r, "lift revocation", err)
	default:
		if err != nil {
			a.logInternal(r, "audit lifted revocation", err)
		}
		WriteJSON(w, http.StatusOK, RevocationToAPI(rv))
	}
}
