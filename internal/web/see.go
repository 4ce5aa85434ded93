package web

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/posture"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/tier"
)

// Lineage answers queries over the lineage graph (graph.Lineage).
type Lineage interface {
	Query(ctx context.Context, q graph.Query) (*graph.Graph, error)
}

// Alerts lists alerts with their summary and records a human's decision.
type Alerts interface {
	List(ctx context.Context, f store.AlertFilter) ([]store.Alert, alert.Summary, error)
	SetState(ctx context.Context, id, state, who, note string) (store.Alert, error)
}

// Posture evaluates posture findings and the tier report.
type Posture interface {
	// Findings evaluates the checks; unusedAfter is the window of the
	// unused-grant check (0: the default, as GET /v1/posture).
	Findings(ctx context.Context, unusedAfter time.Duration) ([]posture.Finding, error)
	Tier(ctx context.Context) (tier.Report, error)
}

// Policies reports the stored AccessPolicies as they decide: mode,
// digest and, in observe mode, what they would have decided otherwise.
type Policies interface {
	ListPolicies(ctx context.Context) ([]apitypes.PolicyStatus, error)
	// Replay re-decides the traffic recorded since the observed version of
	// name was applied with the set its promotion would leave.
	Replay(ctx context.Context, name string, req apitypes.PolicyReplayRequest) (apitypes.PolicyReplay, error)
}

func (w *Console) lineage(rw http.ResponseWriter, r *http.Request) {
	if w.c.Lineage == nil {
		w.errorPage(rw, r, http.StatusNotFound, "This server keeps no lineage graph.")
		return
	}
	f, q, err := parseLineageFilter(r.URL.Query(), w.c.Now())
	if err != nil {
		w.errorPage(rw, r, http.StatusBadRequest, err.Error())
		return
	}
	g, err := w.c.Lineage.Query(r.Context(), q)
	if err != nil {
		w.fail(rw, r, "lineage query", err)
		return
	}
	m := layoutLineage(g)
	// The edges table lists the busiest edges (all of them on a small
	// map), with the counts the map carries in its titles.
	type row struct {
		graph.Edge
		FromLabel, ToLabel, Class string
		Jewel                     bool
	}
	var rows []row
	for i, e := range g.Edges {
		a, c := m.byID[e.From], m.byID[e.To]
		if a == nil || c == nil {
			continue
		}
		rows = append(rows, row{e, a.Label, c.Label, edgeClass(e), m.onPaths[i]})
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		return cmp.Compare(b.Allowed+b.Denied+b.Held, a.Allowed+a.Denied+a.Held)
	})
	more := 0
	if len(rows) > 200 {
		more, rows = len(rows)-200, rows[:200]
	}
	w.render(rw, r, http.StatusOK, "lineage", map[string]any{"F": f, "Windows": lineageWindows, "Map": m.svg(f.values()),
		"Nodes": len(g.Nodes), "Edges": rows, "EdgeCount": len(g.Edges), "More": more, "Jewels": m.jewels, "Truncated": g.Truncated})
}

// lineageNode is the detail of one node: what it is, its edges, and the
// audit events behind them.
func (w *Console) lineageNode(rw http.ResponseWriter, r *http.Request) {
	if w.c.Lineage == nil {
		w.errorPage(rw, r, http.StatusNotFound, "This server keeps no lineage graph.")
		return
	}
	id := r.URL.Query().Get("id")
	kind, name, ok := strings.Cut(id, ":")
	if _, known := layers[kind]; !ok || !known || name == "" {
		w.errorPage(rw, r, http.StatusBadRequest, "The node id "+shorten(80, id)+" is not KIND:NAME.")
		return
	}
	f, q, err := parseLineageFilter(r.URL.Query(), w.c.Now())
	if err != nil {
		w.errorPage(rw, r, http.StatusBadRequest, err.Error())
		return
	}
	g, err := w.c.Lineage.Query(r.Context(), q)
	if err != nil {
		w.fail(rw, r, "lineage query", err)
		return
	}
	var node *graph.Node
	labels := map[string]string{}
	for i := range g.Nodes {
		labels[g.Nodes[i].ID] = g.Nodes[i].Label
		if g.Nodes[i].ID == id {
			node = &g.Nodes[i]
		}
	}
	if node == nil {
		w.errorPage(rw, r, http.StatusNotFound, "There is no node "+shorten(80, id)+" in the map with these filters.")
		return
	}
	type edge struct {
		graph.Edge
		Other, OtherID, Class, Summary string
	}
	var in, out []edge
	for _, e := range g.Edges {
		switch id {
		case e.To:
			in = append(in, edge{e, labels[e.From], e.From, edgeClass(e), edgeSummary(e, labels[e.From], labels[e.To])})
		case e.From:
			out = append(out, edge{e, labels[e.To], e.To, edgeClass(e), edgeSummary(e, labels[e.From], labels[e.To])})
		}
	}
	events, err := w.nodeEvents(r.Context(), node, q.Since)
	if err != nil {
		w.fail(rw, r, "search the audit log", err)
		return
	}
	type attr struct{ K, V string }
	var attrs []attr
	for k, v := range node.Attrs {
		attrs = append(attrs, attr{k, v})
	}
	slices.SortFunc(attrs, func(a, b attr) int { return cmp.Compare(a.K, b.K) })
	back := f.values()
	w.render(rw, r, http.StatusOK, "node", map[string]any{"N": node, "Kind": kindNames[node.Kind], "Attrs": attrs, "In": in, "Out": out,
		"Events": events, "Back": "/ui/lineage?" + back.Encode()})
}

// nodeEvents returns up to 50 recent audit events behind node: the
// events of an identity, instance or task by the index, those of a user,
// service, MCP server, tool or credential by reading the newest 500
// events of the window.
func (w *Console) nodeEvents(ctx context.Context, n *graph.Node, since time.Time) ([]apitypes.AuditEntry, error) {
	q := apitypes.AuditQuery{Since: since, Limit: 50}
	var keep func(e apitypes.AuditEntry) bool
	switch n.Kind {
	case graph.KindIdentity:
		q.SpiffeID = n.Name
	case graph.KindInstance:
		q.Instance = n.Name
	case graph.KindTask:
		q.Task = n.Name
	case graph.KindUser:
		keep = func(e apitypes.AuditEntry) bool { return e.OnBehalfOf == n.Name }
	case graph.KindService:
		keep = func(e apitypes.AuditEntry) bool { return e.Target == "Service/"+n.Name }
	case graph.KindMCPServer:
		keep = func(e apitypes.AuditEntry) bool { return e.Target == "MCPServer/"+n.Name }
	case graph.KindTool:
		server, tool, _ := strings.Cut(n.Name, "/")
		keep = func(e apitypes.AuditEntry) bool {
			return e.Target == "MCPServer/"+server && (e.Details["mcp_name"] == tool || e.Details["tool"] == tool)
		}
	case graph.KindCredential:
		keep = func(e apitypes.AuditEntry) bool { return e.Credential == n.Name }
	default:
		return nil, nil
	}
	if keep != nil {
		q.Limit = 500
	}
	res, err := w.c.Audit.AuditSearch(ctx, q)
	if err != nil || keep == nil {
		return res.Events, err
	}
	var out []apitypes.AuditEntry
	for _, e := range res.Events {
		if keep(e) && len(out) < 50 {
			out = append(out, e)
		}
	}
	return out, nil
}

// alertStates are the filter of the alerts page.
var alertStates = []string{store.AlertOpen, store.AlertAcknowledged, store.AlertResolved, "all"}

func (w *Console) alerts(rw http.ResponseWriter, r *http.Request) {
	if w.c.Alerts == nil {
		w.errorPage(rw, r, http.StatusNotFound, "This server raises no alerts.")
		return
	}
	state := r.URL.Query().Get("state")
	if state == "" {
		state = store.AlertOpen
	}
	if !slices.Contains(alertStates, state) {
		w.errorPage(rw, r, http.StatusBadRequest, "The state "+shorten(40, state)+" is not one of open, acknowledged, resolved or all.")
		return
	}
	all, sum, err := w.c.Alerts.List(r.Context(), store.AlertFilter{})
	if err != nil {
		w.fail(rw, r, "list alerts", err)
		return
	}
	now := w.c.Now()
	type row struct {
		store.Alert
		Dwell, Fix string
	}
	var rows []row
	for _, a := range all {
		if state != "all" && a.State != state {
			continue
		}
		dwell := "—"
		switch {
		case !a.AckedAt.IsZero():
			dwell = roughly(max(a.AckedAt.Sub(a.FirstEvidence), 0))
		case a.State == store.AlertOpen:
			dwell = roughly(max(now.Sub(a.FirstEvidence), 0)) + " and counting"
		}
		fix := ""
		if rl, ok := alert.RuleByID(a.Rule); ok {
			fix = rl.Fix
		}
		rows = append(rows, row{a, dwell, fix})
	}
	w.render(rw, r, http.StatusOK, "alerts", map[string]any{"State": state, "States": alertStates, "Alerts": rows, "S": sum,
		"DwellMedian": roughly(sum.DwellMedian), "DwellP90": roughly(sum.DwellP90), "Notice": r.URL.Query().Get("done")})
}

// decideAlert acknowledges or resolves an alert as the logged-in human.
func (w *Console) decideAlert(state string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if w.c.Alerts == nil {
			w.errorPage(rw, r, http.StatusNotFound, "This server raises no alerts.")
			return
		}
		id := r.PathValue("id")
		note := strings.TrimSpace(r.PostFormValue("note"))
		if len(note) > 1000 {
			w.errorPage(rw, r, http.StatusBadRequest, "The note is longer than 1,000 characters.")
			return
		}
		if state == store.AlertResolved && note == "" {
			w.errorPage(rw, r, http.StatusBadRequest, "Say how the alert was resolved: the note is recorded with your decision.")
			return
		}
		a, err := w.c.Alerts.SetState(r.Context(), id, state, sessionOf(r.Context()).actor(), note)
		switch {
		case errors.Is(err, store.ErrNotFound):
			w.errorPage(rw, r, http.StatusNotFound, "There is no alert "+shorten(60, id)+".")
		case errors.Is(err, store.ErrExists):
			w.errorPage(rw, r, http.StatusConflict, "Alert "+shorten(60, id)+" is already "+a.State+".")
		case err != nil:
			w.fail(rw, r, "decide alert", err)
		default:
			http.Redirect(rw, r, "/ui/alerts?state="+state+"&done="+state+"+"+id, http.StatusSeeOther)
		}
	}
}

func (w *Console) posture(rw http.ResponseWriter, r *http.Request) {
	if w.c.Posture == nil {
		w.errorPage(rw, r, http.StatusNotFound, "This server evaluates no posture.")
		return
	}
	fs, err := w.c.Posture.Findings(r.Context(), 0)
	if err != nil {
		w.fail(rw, r, "posture", err)
		return
	}
	rep, err := w.c.Posture.Tier(r.Context())
	if err != nil {
		w.fail(rw, r, "tier report", err)
		return
	}
	type finding struct {
		posture.Finding
		Radius int
	}
	var findings, secrets []finding
	for _, f := range fs {
		fd := finding{f, f.BlastRadius()}
		findings = append(findings, fd)
		if f.Check == "static_credential" || f.Check == "static_secret" {
			secrets = append(secrets, fd)
		}
	}
	// Secrets: widest blast radius first (findings come most severe
	// first; a secret's rank is what it opens).
	slices.SortStableFunc(secrets, func(a, b finding) int { return cmp.Compare(b.Radius, a.Radius) })
	inv, err := w.c.Inventory(r.Context())
	if err != nil {
		w.fail(rw, r, "inventory", err)
		return
	}
	// Each list shows its first inventoryRows (the most severe and widest
	// first) and says how many more: at 10,000 entries the page was 5.7 MB
	// (writ posture lists all).
	more := map[string]int{}
	findings, more["findings"] = firstRows(findings)
	secrets, more["secrets"] = firstRows(secrets)
	creds := inv.Credentials
	creds, more["credentials"] = firstRows(creds)
	w.render(rw, r, http.StatusOK, "posture", map[string]any{"Findings": findings, "Secrets": secrets, "Tier": rep,
		"Credentials": creds, "CredentialCount": len(inv.Credentials), "More": more})
}
