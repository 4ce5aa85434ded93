package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/tier"
)

func (w *Console) routes() {
	m := w.mux
	m.Handle("GET /ui/static/", staticFiles())
	m.HandleFunc("GET /ui/login", w.loginPage)
	m.HandleFunc("POST /ui/login", w.login)
	m.Handle("POST /ui/logout", w.need(store.RoleViewer, w.logout))
	if w.c.OIDC != nil {
		m.HandleFunc("GET /ui/oidc/login", w.oidcLogin)
		m.HandleFunc("GET /ui/oidc/callback", w.oidcCallback)
	}
	m.Handle("GET /ui/{$}", w.need(store.RoleViewer, w.overview))
	m.Handle("GET /ui/approvals", w.need(store.RoleViewer, w.approvals))
	m.Handle("GET /ui/approvals/events", w.need(store.RoleViewer, w.approvalEvents))
	m.Handle("POST /ui/approvals/{id}/approve", w.need(store.RoleApprover, w.decide(true)))
	m.Handle("POST /ui/approvals/{id}/deny", w.need(store.RoleApprover, w.decide(false)))
	m.Handle("GET /ui/inventory", w.need(store.RoleViewer, w.inventory))
	m.Handle("GET /ui/audit", w.need(store.RoleViewer, w.auditSearch))
	m.Handle("GET /ui/audit/{id}", w.need(store.RoleViewer, w.auditEvent))
	m.Handle("GET /ui/audit/{id}/proof", w.need(store.RoleViewer, w.auditProof))
	m.Handle("GET /ui/policies", w.need(store.RoleViewer, w.policies))
	m.Handle("GET /ui/lineage", w.need(store.RoleViewer, w.lineage))
	m.Handle("GET /ui/lineage/node", w.need(store.RoleViewer, w.lineageNode))
	m.Handle("GET /ui/alerts", w.need(store.RoleViewer, w.alerts))
	m.Handle("POST /ui/alerts/{id}/ack", w.need(store.RoleApprover, w.decideAlert(store.AlertAcknowledged)))
	m.Handle("POST /ui/alerts/{id}/resolve", w.need(store.RoleApprover, w.decideAlert(store.AlertResolved)))
	m.Handle("GET /ui/posture", w.need(store.RoleViewer, w.posture))
	m.Handle("GET /ui/mcp", w.need(store.RoleViewer, w.mcp))
	m.Handle("POST /ui/mcp/{server}/{tool}/approve", w.need(store.RoleAdmin, w.approveTool))
	m.HandleFunc("/ui/", func(rw http.ResponseWriter, r *http.Request) {
		w.errorPage(rw, r, http.StatusNotFound, "There is no console page "+r.URL.Path+".")
	})
}

// nav is the menu, in order.
var nav = []struct{ Path, Title string }{
	{"/ui/", "Overview"}, {"/ui/inventory", "Inventory"}, {"/ui/lineage", "Lineage"}, {"/ui/approvals", "Approvals"},
	{"/ui/alerts", "Alerts"}, {"/ui/posture", "Posture"}, {"/ui/audit", "Audit"}, {"/ui/policies", "Policies"}, {"/ui/mcp", "MCP"},
}

// render writes page name with data. The layout reads .Page, .User,
// .Role, .CSRF and .Nav from the wrapper.
func (w *Console) render(rw http.ResponseWriter, r *http.Request, status int, name string, data any) {
	h := sessionOf(r.Context())
	title := name
	for _, n := range nav {
		if n.Path == r.URL.Path {
			title = n.Title
		}
	}
	view := map[string]any{"Now": w.c.Now(), "Page": name, "Title": title, "Path": r.URL.Path, "Nav": nav, "Data": data,
		"User": h.User.Name, "Role": h.User.Role, "CSRF": h.CSRF,
		"CanApprove": h.User.Role == store.RoleApprover || h.User.Role == store.RoleAdmin, "IsAdmin": h.User.Role == store.RoleAdmin}
	var buf bytes.Buffer
	if err := w.pages[name].Execute(&buf, view); err != nil {
		w.c.Log.ErrorContext(r.Context(), "render console page", "page", name, "error", err)
		http.Error(rw, "the page could not be rendered; see the server log", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	rw.Write(buf.Bytes())
}

func (w *Console) errorPage(rw http.ResponseWriter, r *http.Request, status int, msg string) {
	w.render(rw, r, status, "error", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
}

// fail answers a service error that is not the human's doing.
func (w *Console) fail(rw http.ResponseWriter, r *http.Request, what string, err error) {
	w.c.Log.ErrorContext(r.Context(), what, "path", r.URL.Path, "error", err)
	w.errorPage(rw, r, http.StatusInternalServerError, what+" failed; see the server log.")
}

func (w *Console) overview(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := w.c.Now()
	pending, err := w.c.Approvals.List(ctx, store.ApprovalPending)
	if err != nil {
		w.fail(rw, r, "list approvals", err)
		return
	}
	open, err := w.c.Tasks.List(ctx, store.TaskFilter{State: store.TaskOpen})
	if err != nil {
		w.fail(rw, r, "list tasks", err)
		return
	}
	denied, err := w.c.Audit.AuditSearch(ctx, apitypes.AuditQuery{Type: "access.denied", Limit: 10})
	if err != nil {
		w.fail(rw, r, "search the audit log", err)
		return
	}
	chart, capped, err := w.decisionChart(r, now)
	if err != nil {
		w.fail(rw, r, "search the audit log", err)
		return
	}
	inv, err := w.c.Inventory(ctx)
	if err != nil {
		w.fail(rw, r, "inventory", err)
		return
	}
	live := 0
	for _, in := range inv.Instances {
		if in.Live {
			live++
		}
	}
	shadow := 0
	for _, it := range inv.Discovered {
		if it.Shadow {
			shadow++
		}
	}
	size, cp, signed := w.c.Audit.AuditStatus()
	data := map[string]any{
		"Pending": pending, "OpenTasks": len(open), "Denied": denied.Events, "Chart": chart, "ChartCapped": capped, "ChartEvents": chartEvents,
		"LiveInstances": live, "Identities": len(inv.Identities), "Shadow": shadow,
		"AuditSize": size, "Checkpoint": cp, "Signed": signed, "Unchecked": size - cp.Size,
	}
	if w.c.Alerts != nil {
		list, sum, err := w.c.Alerts.List(ctx, store.AlertFilter{State: store.AlertOpen})
		if err != nil {
			w.fail(rw, r, "list alerts", err)
			return
		}
		type openAlert struct {
			store.Alert
			Dwell string
		}
		var rows []openAlert
		for _, a := range list {
			if len(rows) < 10 {
				rows = append(rows, openAlert{a, roughly(max(now.Sub(a.FirstEvidence), 0))})
			}
		}
		oldest := ""
		if !sum.OldestOpenFirstEvent.IsZero() {
			oldest = roughly(max(now.Sub(sum.OldestOpenFirstEvent), 0))
		}
		// The summary of the open ones has no dwell; the whole list's has.
		_, all, err := w.c.Alerts.List(ctx, store.AlertFilter{})
		if err != nil {
			w.fail(rw, r, "list alerts", err)
			return
		}
		data["Alerts"] = map[string]any{"Open": rows, "OpenCount": len(list), "Oldest": oldest, "S": all,
			"DwellMedian": roughly(all.DwellMedian), "Coverage": int(all.Coverage*100 + 0.5), "Detection": int(all.DetectionCoverage*100 + 0.5)}
	}
	if w.c.Posture != nil {
		rep, err := w.c.Posture.Tier(ctx)
		if err != nil {
			w.fail(rw, r, "tier report", err)
			return
		}
		unmet := 0
		for _, row := range rep.Rows {
			if row.Verdict != tier.Met {
				unmet++
			}
		}
		data["Tier"] = map[string]any{"Reached": rep.Reached, "Unmet": unmet, "Rows": len(rep.Rows)}
	}
	w.render(rw, r, http.StatusOK, "overview", data)
}

// chartBar is one minute of the decisions chart.
type chartBar struct {
	Minute            time.Time
	Allowed, Denied   int
	X, HA, HD, YA, YD int // SVG geometry: x, bar heights and tops
}

// chartEvents bounds the events of each kind the decisions chart reads:
// the page's server time stays within its budget on a busy log, and the
// chart then covers the newest minutes only (it says so).
const chartEvents = 500

// decisionChart counts allowed and denied accesses per minute over the
// last 30 minutes (at most chartEvents of each, newest first).
// capped reports that a kind had more events than the chart read.
func (w *Console) decisionChart(r *http.Request, now time.Time) (bars []chartBar, capped bool, err error) {
	const minutes, height = 30, 60
	start := now.Truncate(time.Minute).Add(-(minutes - 1) * time.Minute)
	bars = make([]chartBar, minutes)
	for i := range bars {
		bars[i].Minute = start.Add(time.Duration(i) * time.Minute)
		bars[i].X = i * 10
	}
	for _, typ := range []string{"access.allowed", "access.denied"} {
		res, err := w.c.Audit.AuditSearch(r.Context(), apitypes.AuditQuery{Type: typ, Since: start, Limit: chartEvents})
		if err != nil {
			return nil, false, err
		}
		capped = capped || len(res.Events) >= chartEvents
		for _, e := range res.Events {
			i := int(e.Time.Sub(start) / time.Minute)
			if i < 0 || i >= minutes {
				continue
			}
			if typ == "access.allowed" {
				bars[i].Allowed++
			} else {
				bars[i].Denied++
			}
		}
	}
	most := 1
	for _, b := range bars {
		most = max(most, b.Allowed+b.Denied)
	}
	for i := range bars {
		b := &bars[i]
		b.HA, b.HD = b.Allowed*height/most, b.Denied*height/most
		b.YA = height - b.HA
		b.YD = b.YA - b.HD
	}
	return bars, capped, nil
}

func (w *Console) approvals(rw http.ResponseWriter, r *http.Request) {
	pending, err := w.c.Approvals.List(r.Context(), store.ApprovalPending)
	if err != nil {
		w.fail(rw, r, "list approvals", err)
		return
	}
	all, err := w.c.Approvals.List(r.Context(), "")
	if err != nil {
		w.fail(rw, r, "list approvals", err)
		return
	}
	var decided []store.Approval
	for _, a := range all {
		if a.State != store.ApprovalPending && len(decided) < 50 {
			decided = append(decided, a)
		}
	}
	h := sessionOf(r.Context())
	me := h.actor()
	rows := make([]approvalRow, 0, len(pending))
	for _, a := range pending {
		err := approval.MayDecide(a, me, h.User.Groups)
		rows = append(rows, approvalRow{a, errors.Is(err, approval.ErrSelfApproval), errors.Is(err, approval.ErrNotApprover), approval.ApproversText(a)})
	}
	w.render(rw, r, http.StatusOK, "approvals", map[string]any{"Pending": rows, "Decided": decided, "Notice": r.URL.Query().Get("done")})
}

// approvalRow is a pending request as one human sees it. Own: it is made
// on their behalf; NotMine: its rule names approvers they are not among
// (their groups as the account has them now); Who says whom it names.
// Either greys out the buttons; Decide refuses either whatever the path.
type approvalRow struct {
	store.Approval
	Own, NotMine bool
	Who          string
}

// approvalEvents streams a server-sent "changed" event whenever an
// approval request is filed or decided; the page's script then reloads
// the list.
func (w *Console) approvalEvents(rw http.ResponseWriter, r *http.Request) {
	fl, ok := rw.(http.Flusher)
	if !ok {
		w.errorPage(rw, r, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(http.StatusOK)
	fmt.Fprint(rw, "retry: 2000\n\n")
	fl.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	for {
		ch := w.c.Approvals.Changed()
		select {
		case <-r.Context().Done():
			return
		case <-w.done:
			return
		case <-heartbeat.C:
			fmt.Fprint(rw, ": heartbeat\n\n")
		case <-ch:
			fmt.Fprint(rw, "event: changed\ndata: {}\n\n")
		}
		fl.Flush()
	}
}

// decide approves or denies as the logged-in human.
func (w *Console) decide(approve bool) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		if !approve && reason == "" {
			w.errorPage(rw, r, http.StatusBadRequest, "Say why you deny the request: the reason is recorded with your decision.")
			return
		}
		if len(reason) > 1000 {
			w.errorPage(rw, r, http.StatusBadRequest, "The reason is longer than 1,000 characters.")
			return
		}
		a, err := w.c.Approvals.Decide(r.Context(), id, approve, sessionOf(r.Context()).actor(), reason)
		switch {
		case errors.Is(err, approval.ErrSelfApproval):
			w.errorPage(rw, r, http.StatusForbidden, "You may not approve a request made on your own behalf: another approver must decide it.")
		case errors.Is(err, approval.ErrNotApprover):
			w.errorPage(rw, r, http.StatusForbidden, "You are not among the approvers of this request: its "+approval.ApproversText(a)+
				" (groups compare exactly, case-sensitive).")
		case errors.Is(err, store.ErrNotFound):
			w.errorPage(rw, r, http.StatusNotFound, "There is no approval request "+id+".")
		case errors.Is(err, store.ErrPrecondition):
			w.errorPage(rw, r, http.StatusConflict, "Request "+id+" is already "+a.State+".")
		case err == nil && a.State == store.ApprovalExpired:
			w.errorPage(rw, r, http.StatusConflict, "Request "+id+" expired before your decision.")
		case err != nil:
			w.fail(rw, r, "decide approval", err)
		default:
			http.Redirect(rw, r, "/ui/approvals?done="+a.State+"+"+id, http.StatusSeeOther)
		}
	}
}

func (w *Console) inventory(rw http.ResponseWriter, r *http.Request) {
	inv, err := w.c.Inventory(r.Context())
	if err != nil {
		w.fail(rw, r, "inventory", err)
		return
	}
	var pins []store.Pin
	if w.c.MCP != nil {
		if pins, err = w.c.MCP.Pins(r.Context(), ""); err != nil {
			w.fail(rw, r, "list MCP pins", err)
			return
		}
	}
	// Each section shows its first inventoryRows rows and says how many
	// it leaves out: a fleet's inventory would otherwise be megabytes of
	// HTML (writ inventory and GET /v1/inventory give everything).
	more := map[string]int{}
	inv.Identities, more["identities"] = firstRows(inv.Identities)
	inv.Instances, more["instances"] = firstRows(inv.Instances)
	inv.Discovered, more["discovered"] = firstRows(inv.Discovered)
	inv.Credentials, more["credentials"] = firstRows(inv.Credentials)
	pins, more["tools"] = firstRows(pins)
	w.render(rw, r, http.StatusOK, "inventory", map[string]any{"Inv": inv, "Tools": pins, "More": more})
}

// inventoryRows is how many rows each Inventory section shows.
const inventoryRows = 500

// firstRows returns the first inventoryRows of l and how many it left out.
func firstRows[T any](l []T) ([]T, int) {
	if len(l) <= inventoryRows {
		return l, 0
	}
	return l[:inventoryRows], len(l) - inventoryRows
}

func (w *Console) auditSearch(rw http.ResponseWriter, r *http.Request) {
	// A search form sends its empty fields too: they filter nothing.
	vals := r.URL.Query()
	for k, v := range vals {
		if len(v) == 1 && v[0] == "" {
			delete(vals, k)
		}
	}
	q, err := apitypes.ParseAuditQuery(vals)
	if err != nil {
		w.errorPage(rw, r, http.StatusBadRequest, err.Error())
		return
	}
	if q.Limit == 0 || q.Limit > 200 {
		q.Limit = 50
	}
	res, err := w.c.Audit.AuditSearch(r.Context(), q)
	if err != nil {
		w.fail(rw, r, "search the audit log", err)
		return
	}
	size, cp, signed := w.c.Audit.AuditStatus()
	next := ""
	if res.NextBefore > 0 {
		vals.Set("before", fmt.Sprint(res.NextBefore))
		next = "/ui/audit?" + vals.Encode()
	}
	w.render(rw, r, http.StatusOK, "audit", map[string]any{"Q": q, "Events": res.Events, "Next": next,
		"Size": size, "Checkpoint": cp, "Signed": signed})
}

func (w *Console) auditEvent(rw http.ResponseWriter, r *http.Request) {
	e, err := w.c.Audit.AuditEvent(r.Context(), r.PathValue("id"))
	var he *apitypes.Error
	if errors.As(err, &he) {
		w.errorPage(rw, r, he.Status, he.Msg)
		return
	}
	if err != nil {
		w.fail(rw, r, "read audit event", err)
		return
	}
	b, _ := json.MarshalIndent(e, "", "  ")
	w.render(rw, r, http.StatusOK, "event", map[string]any{"E": e, "JSON": string(b)})
}

func (w *Console) auditProof(rw http.ResponseWriter, r *http.Request) {
	p, err := w.c.Audit.AuditProof(r.Context(), r.PathValue("id"))
	var he *apitypes.Error
	if errors.As(err, &he) {
		w.errorPage(rw, r, he.Status, he.Msg)
		return
	}
	if err != nil {
		w.fail(rw, r, "prove audit event", err)
		return
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Content-Disposition", `attachment; filename="proof-`+safeFile(r.PathValue("id"))+`.json"`)
	rw.Write(append(b, '\n'))
}

// safeFile keeps the characters of an event id that are safe in a file
// name.
func safeFile(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			return c
		}
		return -1
	}, s)
}

func (w *Console) mcp(rw http.ResponseWriter, r *http.Request) {
	if w.c.MCP == nil {
		w.render(rw, r, http.StatusOK, "mcp", map[string]any{"Off": true})
		return
	}
	pins, err := w.c.MCP.Pins(r.Context(), "")
	if err != nil {
		w.fail(rw, r, "list MCP pins", err)
		return
	}
	w.render(rw, r, http.StatusOK, "mcp", map[string]any{"Servers": w.c.MCP.Servers(), "Pins": pins, "Notice": r.URL.Query().Get("done")})
}

func (w *Console) approveTool(rw http.ResponseWriter, r *http.Request) {
	server, tool := r.PathValue("server"), r.PathValue("tool")
	if w.c.MCP == nil {
		w.errorPage(rw, r, http.StatusNotFound, "The MCP gateway is off.")
		return
	}
	_, err := w.c.MCP.Approve(r.Context(), server, tool, sessionOf(r.Context()).actor())
	var he *apitypes.Error
	switch {
	case errors.As(err, &he):
		w.errorPage(rw, r, he.Status, he.Msg)
	case errors.Is(err, store.ErrNotFound):
		w.errorPage(rw, r, http.StatusNotFound, "There is no pin for "+server+"/"+tool+".")
	case err != nil:
		w.fail(rw, r, "approve MCP tool", err)
	default:
		http.Redirect(rw, r, "/ui/mcp?done=approved+"+server+"/"+tool, http.StatusSeeOther)
	}
}
