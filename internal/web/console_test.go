package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/writ-dev/writ/internal/apitypes"
)

// TestConsoleRolesAndApprovals drives the console in headless Chromium:
// every role logs in; a call held for approval appears live on the
// Approvals page; a viewer cannot approve it, nor can the human it is made
// on behalf of; a state change without the CSRF token, or from another
// site, is refused; another approver approves it from the page, the held
// call completes, and the decision is recorded as that human. The CSP
// header is present and an inline script does not run. Every page is
// saved as a screenshot (see artifactDir).
func TestConsoleRolesAndApprovals(t *testing.T) {
	exe := chromium(t)
	e := setup(t)
	c := e.in.Client
	ctx := context.Background()

	// The agent (this test process) calls, in a task on behalf of alice.
	task, err := c.OpenTask(ctx, apitypes.OpenTaskRequest{SpiffeID: "spiffe://writ.local/agent/me", Purpose: "console test",
		OnBehalfOf: "alice", Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.call(t, "/allowed/x", task.ID); code != 200 {
		t.Fatalf("allowed call: %d %s", code, body)
	}
	// A wrong password is refused with the same message as an unknown
	// name; then every role logs in and sees its name and role.
	ada := newBrowser(t, exe, e.in.Addr)
	ada.do(chromedp.Navigate(e.in.Addr+"/ui/login"), chromedp.SendKeys(chromedp.ID("name"), "ada"),
		chromedp.SendKeys(chromedp.ID("password"), "not-the-password"), chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS(".error")))
	if msg := ada.text(".error"); msg != "Name or password is wrong." {
		t.Errorf("wrong password: %q", msg)
	}
	ada.screenshot("login")
	ada.login("ada", password("ada"))
	vic := newBrowser(t, exe, e.in.Addr)
	vic.login("vic", password("vic"))
	for _, b := range []struct {
		b          *browser
		name, role string
	}{{ada, "ada", "admin"}, {vic, "vic", "viewer"}} {
		if who := b.b.text(".who span"); who != b.name+" · "+b.role {
			t.Errorf("%s logged in; header says %q", b.name, who)
		}
	}

	// bob (approver) keeps the Approvals page open; it updates itself.
	bob := newBrowser(t, exe, e.in.Addr)
	bob.login("bob", password("bob"))
	bob.do(chromedp.Navigate(e.in.Addr+"/ui/approvals"), chromedp.WaitVisible(chromedp.ID("none-pending")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-live="1"]`)))

	type result struct {
		code int
		body string
	}
	held := make(chan result, 1)
	go func() {
		code, body := e.call(t, "/needs-approval/payroll", task.ID)
		held <- result{code, body}
	}()
	ap := waitPending(t, c, 1)[0]
	if ap.OnBehalfOf != "alice" || !strings.Contains(ap.Target, "/needs-approval/payroll") {
		t.Fatalf("pending approval %+v", ap)
	}
	// Live: the request appears on bob's open page without a reload by hand.
	bob.waitShown(ap.ID)
	if got := bob.text("#" + ap.ID + " h3"); !strings.Contains(got, "/needs-approval/payroll") {
		t.Errorf("the page shows %q, want the exact request", got)
	}
	bob.screenshot("approvals")

	// A viewer sees it but cannot decide: no form, and a forged POST
	// with a valid CSRF token is refused.
	vic.do(chromedp.Navigate(e.in.Addr + "/ui/approvals"))
	vic.waitShown(ap.ID)
	if forms := eval[int](vic, `document.querySelectorAll("form.decide").length`); forms != 0 {
		t.Errorf("a viewer sees %d decision forms", forms)
	}
	if st := vic.post("/ui/approvals/"+ap.ID+"/approve", vic.csrf()); st != http.StatusForbidden {
		t.Errorf("viewer's approval: status %d, want 403", st)
	}

	// alice is the human the request is made for: she cannot approve it.
	alice := newBrowser(t, exe, e.in.Addr)
	alice.login("alice", password("alice"))
	alice.do(chromedp.Navigate(e.in.Addr + "/ui/approvals"))
	alice.waitShown(ap.ID)
	if !eval[bool](alice, `document.querySelector("#`+ap.ID+` button.approve").disabled`) {
		t.Error("the requester's Approve button is enabled")
	}
	if st := alice.post("/ui/approvals/"+ap.ID+"/approve", alice.csrf()); st != http.StatusForbidden {
		t.Errorf("requester's own approval: status %d, want 403", st)
	}

	// Without the CSRF token, or from another site, a state change is refused.
	if st := bob.post("/ui/approvals/"+ap.ID+"/deny", ""); st != http.StatusForbidden {
		t.Errorf("deny without the CSRF token: status %d, want 403", st)
	}
	if st := bob.post("/ui/approvals/"+ap.ID+"/deny", "forged-token"); st != http.StatusForbidden {
		t.Errorf("deny with a wrong CSRF token: status %d, want 403", st)
	}
	req, _ := http.NewRequest("POST", e.in.Addr+"/ui/approvals/"+ap.ID+"/deny", strings.NewReader(url.Values{"reason": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %v %v, want 403", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	if list, _ := c.ListApprovals(ctx, "pending"); len(list) != 1 {
		t.Fatalf("after the refused attempts %d requests are pending, want 1", len(list))
	}

	// bob approves with a reason; the held call completes.
	before := e.upstream.Load()
	bob.do(chromedp.Navigate(e.in.Addr+"/ui/approvals"), chromedp.WaitVisible(chromedp.ID("reason-"+ap.ID)),
		chromedp.SendKeys(chromedp.ID("reason-"+ap.ID), "payroll run approved"),
		chromedp.Click(chromedp.CSS("#"+ap.ID+" button.approve")),
		chromedp.WaitVisible(chromedp.ID("notice")))
	r := <-held
	if r.code != 200 || !strings.Contains(r.body, "upstream says hello to /needs-approval/payroll") || e.upstream.Load() != before+1 {
		t.Errorf("held call after approval: %d %q", r.code, r.body)
	}
	got, err := c.ListApprovals(ctx, "approved")
	if err != nil || len(got) != 1 || got[0].DecidedBy != "user:bob" || got[0].Comment != "payroll run approved" {
		t.Errorf("decision recorded as %+v, %v; want user:bob with the reason", got, err)
	}
	res, err := c.AuditSearch(ctx, apitypes.AuditQuery{Type: "approval.granted"})
	if err != nil || len(res.Events) != 1 || res.Events[0].Actor != "user:bob" {
		t.Errorf("approval.granted events %+v, %v", res.Events, err)
	}

	// CSP: present and strict; an inline script is not run.
	resp, err := http.Get(e.in.Addr + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cspHdr := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(cspHdr, "script-src 'self'") || strings.Contains(cspHdr, "unsafe-inline") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("console headers: CSP %q, X-Frame-Options %q", cspHdr, resp.Header.Get("X-Frame-Options"))
	}
	if eval[bool](bob, `(() => { const s = document.createElement("script"); s.textContent = "window.__inline = true"; document.body.appendChild(s); return window.__inline === true; })()`) {
		t.Error("an inline script ran despite the CSP")
	}

	// Every page renders; save a screenshot of each.
	for _, p := range []struct{ path, name, want string }{
		{"/ui/", "overview", "Decisions per minute"},
		{"/ui/inventory", "inventory", "spiffe://writ.local/agent/me"},
		{"/ui/approvals", "approvals-decided", "payroll run approved"},
		{"/ui/audit", "audit", "approval.granted"},
		{"/ui/audit?type=access.allowed", "audit-filtered", "access.allowed"},
		{"/ui/policies", "policies", "me version 1"},
		{"/ui/mcp", "mcp", "Servers"},
	} {
		bob.do(chromedp.Navigate(e.in.Addr+p.path), chromedp.WaitVisible(chromedp.CSS("main")))
		if body := bob.text("main"); !strings.Contains(body, p.want) {
			t.Errorf("%s does not show %q", p.path, p.want)
		}
		bob.screenshot(p.name)
	}
	// An event's detail page links its inclusion proof.
	bob.do(chromedp.Navigate(e.in.Addr+"/ui/audit?type=approval.granted"), chromedp.Click(chromedp.CSS("#events a")),
		chromedp.WaitVisible(chromedp.ID("proof")))
	bob.screenshot("audit-event")
	href := get(bob, chromedp.AttributeValue(chromedp.ID("proof"), "href")).Value
	proof := eval[string](bob, `fetch("`+href+`").then(r => r.text())`)
	if !strings.Contains(proof, `"checkpoint"`) || !strings.Contains(proof, `"proof"`) {
		t.Errorf("inclusion proof download: %.200s", proof)
	}
	// Phone-sized screen.
	bob.do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.in.Addr+"/ui/"), chromedp.WaitVisible(chromedp.CSS("main")))
	bob.screenshot("overview-phone")
}
