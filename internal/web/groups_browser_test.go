package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/writ-dev/writ/internal/apitypes"
)

// TestConsoleGroupApprovers: a call held by a rule whose approvers are
// group:payroll-leads is decided from the Approvals page only by an
// approver in that group, as the account's groups are at the decision.
// A non-member approver (one in "Payroll-Leads": names are
// case-sensitive) sees the buttons greyed out with the rule's approvers
// and is refused; a viewer in the group cannot decide; the member
// approves and the held call completes, recorded as that human. When the
// member leaves the group, the next request is refused to them.
func TestConsoleGroupApprovers(t *testing.T) {
	exe := chromium(t)
	e := setup(t)
	c := e.in.Client
	ctx := context.Background()
	for _, u := range []struct {
		name, role string
		groups     []string
	}{
		{"carol", "approver", []string{"payroll-leads"}},
		{"dan", "approver", []string{"Payroll-Leads", "ops"}},
		{"val", "viewer", []string{"payroll-leads"}},
	} {
		if _, err := c.AddUser(ctx, u.name, u.role, password(u.name), u.groups...); err != nil {
			t.Fatal(err)
		}
	}
	task, err := c.OpenTask(ctx, apitypes.OpenTaskRequest{SpiffeID: "spiffe://writ.local/agent/me", Purpose: "group approvals",
		OnBehalfOf: "alice", Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		body string
	}
	held := make(chan result, 2)
	hold := func(path string) apitypes.Approval {
		t.Helper()
		n := len(waitPending(t, c, 0))
		go func() {
			code, body := e.call(t, path, task.ID)
			held <- result{code, body}
		}()
		for _, a := range waitPending(t, c, n+1) {
			if strings.Contains(a.Target, path) {
				return a
			}
		}
		t.Fatalf("no pending request for %s", path)
		return apitypes.Approval{}
	}
	ap := hold("/group-approval/payroll")
	if len(ap.Approvers) != 1 || ap.Approvers[0] != "group:payroll-leads" {
		t.Fatalf("pending approval names %q, want group:payroll-leads", ap.Approvers)
	}
	disabled := func(b *browser, id string) bool { return eval[bool](b, disabledJS(id)) }

	// dan: an approver, in Payroll-Leads, not payroll-leads.
	dan := newBrowser(t, exe, e.in.Addr)
	dan.login("dan", password("dan"))
	dan.do(chromedp.Navigate(e.in.Addr + "/ui/approvals"))
	dan.waitShown(ap.ID)
	if !disabled(dan, ap.ID) {
		t.Error("a non-member approver's buttons are enabled")
	}
	if hint := dan.text("#" + ap.ID + " .not-approver"); !strings.Contains(hint, "group:payroll-leads") {
		t.Errorf("non-member hint %q does not name the rule's approvers", hint)
	}
	dan.screenshot("approvals-not-in-group")
	if st := dan.post("/ui/approvals/"+ap.ID+"/approve", dan.csrf()); st != http.StatusForbidden {
		t.Errorf("non-member approval: status %d, want 403", st)
	}
	msg := eval[string](dan, `fetch("/ui/approvals/`+ap.ID+`/deny", {method: "POST", headers: {"X-CSRF-Token": "`+dan.csrf()+
		`", "Content-Type": "application/x-www-form-urlencoded"}, body: "reason=no"}).then(r => r.text())`)
	if !strings.Contains(msg, "group:payroll-leads") || !strings.Contains(msg, "payroll-leads of me") {
		t.Errorf("the refusal does not name the rule and its approvers: %.400s", msg)
	}

	// val: in the group, but a viewer.
	val := newBrowser(t, exe, e.in.Addr)
	val.login("val", password("val"))
	val.do(chromedp.Navigate(e.in.Addr + "/ui/approvals"))
	val.waitShown(ap.ID)
	if forms := eval[int](val, `document.querySelectorAll("form.decide").length`); forms != 0 {
		t.Errorf("a viewer sees %d decision forms", forms)
	}
	if st := val.post("/ui/approvals/"+ap.ID+"/approve", val.csrf()); st != http.StatusForbidden {
		t.Errorf("viewer's approval: status %d, want 403", st)
	}
	if list, _ := c.ListApprovals(ctx, "pending"); len(list) != 1 {
		t.Fatalf("after the refused attempts %d requests are pending, want 1", len(list))
	}

	// carol: an approver in payroll-leads approves; the call completes.
	carol := newBrowser(t, exe, e.in.Addr)
	carol.login("carol", password("carol"))
	carol.do(chromedp.Navigate(e.in.Addr + "/ui/approvals"))
	carol.waitShown(ap.ID)
	if disabled(carol, ap.ID) {
		t.Error("the member's buttons are disabled")
	}
	before := e.upstream.Load()
	carol.do(chromedp.SendKeys(chromedp.ID("reason-"+ap.ID), "leads approve"),
		chromedp.Click(chromedp.CSS("#"+ap.ID+" button.approve")))
	carol.waitShown("notice")
	r := <-held
	if r.code != 200 || !strings.Contains(r.body, "upstream says hello to /group-approval/payroll") || e.upstream.Load() != before+1 {
		t.Errorf("held call after the member's approval: %d %q", r.code, r.body)
	}
	if got, err := c.ListApprovals(ctx, "approved"); err != nil || len(got) != 1 || got[0].ID != ap.ID || got[0].DecidedBy != "user:carol" {
		t.Errorf("approved: %+v, %v; want %s approved by user:carol", got, err, ap.ID)
	}

	// carol leaves the group: the next request is not hers to decide,
	// though her session is the same.
	if _, err := c.ChangeUserGroups(ctx, "carol", apitypes.GroupsRequest{Remove: []string{"payroll-leads"}}); err != nil {
		t.Fatal(err)
	}
	ap2 := hold("/group-approval/second")
	// Her open page reloads itself with the new request.
	carol.waitShown(ap2.ID)
	carol.waitTrue(disabledJS(ap2.ID))
	if st := carol.post("/ui/approvals/"+ap2.ID+"/approve", carol.csrf()); st != http.StatusForbidden {
		t.Errorf("approval after leaving the group: status %d, want 403", st)
	}
	// The admin credential decides what it did not ask for.
	if _, err := c.DecideApproval(ctx, ap2.ID, false, "cleanup"); err != nil {
		t.Fatalf("admin deny: %v", err)
	}
	if r := <-held; r.code == 200 {
		t.Errorf("the denied call went through: %d %q", r.code, r.body)
	}
}

// disabledJS is true when both decision buttons of request id are there
// and disabled.
func disabledJS(id string) string {
	return `(() => { const a = document.querySelector("#` + id + ` button.approve"), d = document.querySelector("#` + id + ` button.deny");
		return !!a && !!d && a.disabled && d.disabled; })()`
}
