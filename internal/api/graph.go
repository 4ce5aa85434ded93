package api

import (
	"context"
	"net/http"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/graph"
)

// Lineage answers queries over the lineage graph (graph.Lineage).
type Lineage interface {
	Query(ctx context.Context, q graph.Query) (*graph.Graph, error)
}

// graphAnswer answers GET /v1/graph.
func (a *API) graphAnswer(w http.ResponseWriter, r *http.Request) {
	if a.c.Lineage == nil {
		WriteError(w, notFound("this server keeps no lineage graph"))
		return
	}
	wq, err := apitypes.ParseGraphQuery(r.URL.Query())
	if err != nil {
		WriteError(w, badRequest("%v", err))
		return
	}
	q := GraphQueryFromAPI(wq)
	if err := q.Check(); err != nil {
		WriteError(w, badRequest("graph query: %v", err))
		return
	}
	g, err := a.c.Lineage.Query(r.Context(), q)
	if err != nil {
		a.fail(w, r, "lineage query", err)
		return
	}
	WriteJSON(w, http.StatusOK, GraphToAPI(wq, g))
}

// GraphQueryFromAPI maps the wire query to the graph's.
func GraphQueryFromAPI(wq apitypes.GraphQuery) graph.Query {
	q := graph.Query{Identity: wq.Identity, Instance: wq.Instance, Task: wq.Task, User: wq.User, Service: wq.Service,
		Credential: wq.Credential, To: wq.To, CrownJewels: wq.CrownJewels, NoInventory: wq.NoInventory}
	if wq.Since != nil {
		q.Since = *wq.Since
	}
	if wq.Until != nil {
		q.Until = *wq.Until
	}
	return q
}

// GraphToAPI maps a graph to its wire form.
func GraphToAPI(wq apitypes.GraphQuery, g *graph.Graph) apitypes.Graph {
	out := apitypes.Graph{Query: wq, Built: g.Built, Nodes: make([]apitypes.GraphNode, 0, len(g.Nodes)),
		Edges: make([]apitypes.GraphEdge, 0, len(g.Edges)), Paths: g.Paths, Truncated: g.Truncated}
	for _, n := range g.Nodes {
		out.Nodes = append(out.Nodes, apitypes.GraphNode{ID: n.ID, Kind: n.Kind, Name: n.Name, Label: n.Label, Shadow: n.Shadow,
			CrownJewel: n.CrownJewel, Attrs: n.Attrs, FirstSeen: timePtr(n.FirstSeen), LastSeen: timePtr(n.LastSeen)})
	}
	for _, e := range g.Edges {
		out.Edges = append(out.Edges, apitypes.GraphEdge{From: e.From, To: e.To, Kind: e.Kind, Allowed: e.Allowed, Denied: e.Denied,
			Held: e.Held, ApprovedBy: e.ApprovedBy, Shadow: e.Shadow, FirstSeen: timePtr(e.FirstSeen), LastSeen: timePtr(e.LastSeen)})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
