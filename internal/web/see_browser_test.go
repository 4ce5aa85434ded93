package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
)

type searchArgs struct {
	Query string `json:"query"`
}

// seePolicy is version 2 of the console policy: the MCP server's search
// tool is added (the Policies page shows the diff).
const seePolicy = consolePolicy + `    - name: notes
      effect: allow
      targets: [{mcp: {server: notes, tools: [search]}}]
`

// observedPolicy stands in for me in observe mode, without the read rule:
// its would-deny count grows, and its replay shows the reads newly denied.
const observedPolicy = `---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: me-observed}
spec:
  mode: observe
  replaces: [me]
  subjects: [spiffe://writ.local/agent/me, "user:*"]
  rules:
    - {name: tasks, effect: allow, targets: [{task: {}}]}
    - {name: api-token, effect: allow, targets: [{token: {audiences: [api]}}]}
`

// TestConsoleLineageAlertsPosture drives the pages built over the
// lineage graph, the alerts and posture in headless Chromium, after a
// scripted scenario: an agent acting for alice reads through the proxy
// (its key injected), is denied once, calls an MCP tool through the
// gateway, and has a call held and denied. The lineage map shows the
// user, agent, service (a crown jewel), tool and credential with their
// edges, and a node's detail lists the events behind it; an approver
// acknowledges and resolves the alert the held call raised (a viewer and
// a request without the CSRF token are refused), recorded as that human;
// the Posture page ranks findings; the Policies page shows the history
// with its diff and replays the recorded traffic; Overview shows alerts
// and the tier; Inventory lists the MCP tool.
func TestConsoleLineageAlertsPosture(t *testing.T) {
	exe := chromium(t)
	ctx := context.Background()
	up := sdk.NewServer(&sdk.Implementation{Name: "notes", Version: "1"}, nil)
	sdk.AddTool(up, &sdk.Tool{Name: "search", Description: "Search the notes."},
		func(_ context.Context, _ *sdk.CallToolRequest, in searchArgs) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "found " + in.Query}}}, nil, nil
		})
	upHTTP := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return up }, nil))
	// Registered before writ starts, so it closes after writ stopped
	// (and ended the gateway's session with it).
	t.Cleanup(upHTTP.Close)
	e := setup(t)
	c := e.in.Client
	svc, err := c.ListResources(ctx, "Service")
	if err != nil || len(svc) != 1 {
		t.Fatalf("services %+v %v", svc, err)
	}
	var upstream struct {
		Upstream string `json:"upstream"`
	}
	if err := json.Unmarshal(svc[0].Spec, &upstream); err != nil {
		t.Fatal(err)
	}
	apply := func(doc string) {
		t.Helper()
		if _, err := c.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "see.yaml", Content: doc}}}); err != nil {
			t.Fatal(err)
		}
	}
	apply(seePolicy + observedPolicy + fmt.Sprintf(`---
apiVersion: writ.dev/v1
kind: Service
metadata: {name: api}
spec:
  upstream: %s
  credential: {name: upstream-key}
  labels: [crown_jewel]
---
apiVersion: writ.dev/v1
kind: MCPServer
metadata: {name: notes}
spec:
  url: %s
`, upstream.Upstream, upHTTP.URL))

	task, err := c.OpenTask(ctx, apitypes.OpenTaskRequest{SpiffeID: "spiffe://writ.local/agent/me", Purpose: "lineage test",
		OnBehalfOf: "alice", Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.call(t, "/allowed/x", task.ID); code != 200 {
		t.Fatalf("allowed call: %d %s", code, body)
	}
	if code, _ := e.call(t, "/forbidden", task.ID); code != 403 {
		t.Fatalf("denied call: %d", code)
	}
	mc := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cs, err := mc.Connect(cctx, &sdk.StreamableClientTransport{Endpoint: e.proxy + "/mcp/notes"}, nil)
	if err != nil {
		t.Fatalf("connect to the gateway: %v", err)
	}
	defer cs.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tools) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway never listed the search tool")
		}
	}
	if res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "search", Arguments: map[string]any{"query": "q3"}}); err != nil || res.IsError {
		t.Fatalf("tool call: %+v %v", res, err)
	}
	// A held call, denied by an operator: it raises an approval alert.
	held := make(chan int, 1)
	go func() {
		code, _ := e.call(t, "/needs-approval/x", task.ID)
		held <- code
	}()
	ap := waitPending(t, c, 1)[0]
	if _, err := c.DecideApproval(ctx, ap.ID, false, "not now"); err != nil {
		t.Fatal(err)
	}
	if code := <-held; code != 403 {
		t.Fatalf("the denied held call answered %d", code)
	}

	bob := newBrowser(t, exe, e.in.Addr)
	bob.login("bob", password("bob"))

	// The lineage map: nodes of every kind, and the edges between them.
	bob.do(chromedp.Navigate(e.in.Addr+"/ui/lineage"), chromedp.WaitVisible(chromedp.ID("lineage-map")))
	for _, id := range []string{"user:alice", "identity:spiffe://writ.local/agent/me", "service:api", "mcp_server:notes",
		"tool:notes/search", "credential:upstream-key"} {
		if !eval[bool](bob, fmt.Sprintf(`document.querySelector('#lineage-map a[data-id=%q]') !== null`, id)) {
			t.Errorf("the map has no node %s", id)
		}
	}
	if !eval[bool](bob, `document.querySelector('#lineage-map a[data-id="service:api"]').classList.contains("crown")`) {
		t.Error("the crown-jewel service is not marked")
	}
	for _, edge := range [][2]string{{"user:alice", "identity:spiffe://writ.local/agent/me"}, {"mcp_server:notes", "tool:notes/search"},
		{"service:api", "credential:upstream-key"}} {
		if !eval[bool](bob, fmt.Sprintf(`document.querySelector('#lineage-map g.e[data-from=%q][data-to=%q]') !== null`, edge[0], edge[1])) {
			t.Errorf("the map has no edge %s → %s", edge[0], edge[1])
		}
	}
	// The agent's instance reached the service: allowed, denied and held
	// calls on one edge, drawn as denied and on a path into the jewel.
	reach := eval[string](bob, `(() => { const g = [...document.querySelectorAll('#lineage-map g.e[data-to="service:api"]')].find(g => g.dataset.kind === "reached"); return g ? g.getAttribute("class") + " | " + g.querySelector("title").textContent : ""; })()`)
	if !strings.Contains(reach, "denied") || !strings.Contains(reach, "jewel") || !strings.Contains(reach, "1 allowed, ") {
		t.Errorf("the edge into the service: %q", reach)
	}
	bob.screenshot("lineage")
	// A node opens its detail with the events behind it.
	bob.do(chromedp.Click(chromedp.CSS(`#lineage-map a[data-id="service:api"]`)), chromedp.WaitVisible(chromedp.ID("node-name")))
	if got := bob.text("#node-name"); got != "api" {
		t.Errorf("node detail of %q", got)
	}
	if ev := bob.text("#node-events"); !strings.Contains(ev, "access.allowed") || !strings.Contains(ev, "access.denied") {
		t.Errorf("the service's events: %q", ev)
	}
	bob.screenshot("lineage-node")
	// Filters: a task that made no call leaves an empty map.
	bob.do(chromedp.Navigate(e.in.Addr+"/ui/lineage"), chromedp.WaitVisible(chromedp.ID("f-task")),
		chromedp.SendKeys(chromedp.ID("f-task"), "task_NONE"), chromedp.Submit(chromedp.ID("f-task")))
	// The submission replaces the page: wait for the filtered one.
	bob.waitTrue(`location.search.includes("task_NONE") && document.readyState === "complete" && !!document.getElementById("map-summary")`)
	if s := bob.text("#map-summary"); !strings.HasPrefix(s, "0 nodes") {
		t.Errorf("filtered by an unknown task: %q", s)
	}

	// Alerts: the held call raised approval_pending.
	list, err := c.Alerts(ctx, client.AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var alertID string
	for _, a := range list.Alerts {
		if a.Rule == "approval_pending" {
			alertID = a.ID
		}
	}
	if alertID == "" {
		t.Fatalf("no approval_pending alert in %+v", list.Alerts)
	}
	vic := newBrowser(t, exe, e.in.Addr)
	vic.login("vic", password("vic"))
	vic.do(chromedp.Navigate(e.in.Addr+"/ui/alerts"), chromedp.WaitVisible(chromedp.ID(alertID)))
	if n := eval[int](vic, `document.querySelectorAll("form.alert-decide").length`); n != 0 {
		t.Errorf("a viewer sees %d alert forms", n)
	}
	if st := vic.post("/ui/alerts/"+alertID+"/ack", vic.csrf()); st != http.StatusForbidden {
		t.Errorf("viewer's acknowledgement: %d, want 403", st)
	}
	bob.do(chromedp.Navigate(e.in.Addr+"/ui/alerts"), chromedp.WaitVisible(chromedp.ID(alertID)))
	if st := bob.post("/ui/alerts/"+alertID+"/ack", ""); st != http.StatusForbidden {
		t.Errorf("acknowledgement without the CSRF token: %d, want 403", st)
	}
	bob.screenshot("alerts")
	bob.do(chromedp.SendKeys(chromedp.ID("note-"+alertID), "looking into it"),
		chromedp.Click(chromedp.CSS("#"+alertID+" button.ack")), landed("acknowledged"), chromedp.WaitVisible(chromedp.ID(alertID)))
	if who := bob.text("#" + alertID + " .who-did"); !strings.Contains(who, "Acknowledged by user:bob") {
		t.Errorf("after acknowledging: %q", who)
	}
	bob.do(chromedp.SendKeys(chromedp.ID("note-"+alertID), "the request was denied"),
		chromedp.Click(chromedp.CSS("#"+alertID+" button.resolve")), landed("resolved"))
	got, err := c.Alerts(ctx, client.AlertQuery{State: "resolved"})
	if err != nil || len(got.Alerts) != 1 || got.Alerts[0].AckedBy != "user:bob" || got.Alerts[0].ResolvedBy != "user:bob" ||
		got.Alerts[0].Note != "the request was denied" {
		t.Errorf("resolved alerts %+v %v", got.Alerts, err)
	}
	bob.screenshot("alerts-resolved")

	for _, p := range []struct{ path, name, sel, want string }{
		{"/ui/posture", "posture", "#findings", "identity_without_owner"},
		{"/ui/posture", "posture", "#tier-reached", ""},
		{"/ui/policies", "policies-history", "#policy-me", "version 2"},
		{"/ui/policies", "policies-observed", "#policy-me-observed", "would-deny"},
		{"/ui/policies?replay=me-observed", "policies-replay", "#replay-summary", "newly denied"},
		{"/ui/", "overview-alerts", "#tier", ""},
		{"/ui/", "overview-alerts", "#open-alerts", ""},
		{"/ui/inventory", "inventory-tools", "#mcp-tools", "search"},
	} {
		bob.do(chromedp.Navigate(e.in.Addr+p.path), chromedp.WaitReady(chromedp.CSS(p.sel)))
		if body := get(bob, chromedp.TextContent(chromedp.CSS(p.sel))); !strings.Contains(body, p.want) {
			t.Errorf("%s %s does not show %q: %.300s", p.path, p.sel, p.want, body)
		}
		bob.screenshot(p.name)
	}
	// The diff of version 2 shows the added rule.
	bob.do(chromedp.Navigate(e.in.Addr+"/ui/policies"), chromedp.WaitReady(chromedp.CSS("#policy-me pre.diff")))
	if d := get(bob, chromedp.TextContent(chromedp.CSS("#policy-me pre.diff"))); !strings.Contains(d, `+ `) || !strings.Contains(d, `"notes"`) {
		t.Errorf("the diff of version 2: %q", d)
	}
}

// landed waits for the page the decision answered with: the alerts of
// state, with its notice (the page before may have a notice too).
func landed(state string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS("#notice.done-" + state))
}
