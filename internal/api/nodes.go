package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
)

// Nodes administers scale-out nodes: join tokens, the list of attested
// nodes, eviction (internal/node/nodeserver.Registry).
type Nodes interface {
	// CreateJoinToken returns the token's secret (shown once) and record.
	// ttl 0 means the default.
	CreateJoinToken(ctx context.Context, ttl time.Duration, node, actor string) (string, store.JoinToken, error)
	ListJoinTokens(ctx context.Context) ([]store.JoinToken, error)
	DeleteJoinToken(ctx context.Context, id, actor string) error
	ListNodes(ctx context.Context) ([]store.Node, error)
	Evict(ctx context.Context, name, actor, reason string) (store.Node, error)
	SpiffeID(name string) spiffeid.ID
}

// JoinTokenToAPI maps a join token's record to its wire form (without the
// secret, which is not stored).
func JoinTokenToAPI(t store.JoinToken) apitypes.JoinToken {
	out := apitypes.JoinToken{ID: t.ID, Node: t.Node, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, UsedBy: t.UsedBy}
	if !t.UsedAt.IsZero() {
		u := t.UsedAt
		out.UsedAt = &u
	}
	return out
}

func (a *API) nodeToAPI(n store.Node) apitypes.Node {
	sel := make([]string, len(n.Selectors))
	for i, s := range n.Selectors {
		sel[i] = s.String()
	}
	out := apitypes.Node{Name: n.Name, SpiffeID: a.c.Nodes.SpiffeID(n.Name).String(), ID: n.ID, Attestor: n.Attestor,
		Selectors: sel, AttestedAt: n.AttestedAt, LastSeen: n.LastSeen, AckedSeq: n.AckedSeq}
	if !n.EvictedAt.IsZero() {
		e := n.EvictedAt
		out.EvictedAt = &e
	}
	return out
}

func (a *API) createJoinToken(w http.ResponseWriter, r *http.Request) {
	var req apitypes.JoinTokenRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			WriteError(w, badRequest("ttl %q: not a positive duration such as 30m or 24h", req.TTL))
			return
		}
	}
	secret, rec, err := a.c.Nodes.CreateJoinToken(r.Context(), ttl, req.Node, Actor(r.Context()))
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			a.fail(w, r, "create join token", err)
			return
		}
		WriteError(w, badRequest("%v", err))
		return
	}
	out := JoinTokenToAPI(rec)
	out.Token = secret
	WriteJSON(w, http.StatusCreated, out)
}

func (a *API) listJoinTokens(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Nodes.ListJoinTokens(r.Context())
	writeList(a, w, r, "list join tokens", mapList(list, JoinTokenToAPI), err)
}

func (a *API) deleteJoinToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.c.Nodes.DeleteJoinToken(r.Context(), id, Actor(r.Context())); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			WriteError(w, notFound("join token %s: not found (see `writ node token list`)", id))
			return
		}
		a.fail(w, r, "delete join token", err)
		return
	}
	WriteJSON(w, http.StatusOK, apitypes.Deleted{Deleted: "join_token/" + id})
}

func (a *API) listNodes(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Nodes.ListNodes(r.Context())
	writeList(a, w, r, "list nodes", mapList(list, a.nodeToAPI), err)
}

func (a *API) evictNode(w http.ResponseWriter, r *http.Request) {
	var req apitypes.EvictRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
	}
	name := r.PathValue("name")
	n, err := a.c.Nodes.Evict(r.Context(), name, Actor(r.Context()), req.Reason)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			WriteError(w, notFound("node %s: not found (see `writ node list`)", name))
			return
		}
		a.fail(w, r, "evict node", err)
		return
	}
	WriteJSON(w, http.StatusOK, a.nodeToAPI(n))
}
