package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
)

// TestOIDCLogin logs in through a real OpenID Connect provider running in
// the test (oauth2-proxy's mockoidc: discovery, authorization code with
// PKCE S256, signed ID tokens): the human gets the role their groups claim
// maps to and the groups of the groups claim (values writ cannot hold
// left out), is recorded as an OIDC account, decides a request whose rule
// names one of those groups, loses it when a later login's claim drops the
// group, and a human whose groups map to no role is refused.
func TestOIDCLogin(t *testing.T) {
	exe := chromium(t)
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	cfg := servertest.Config(t.TempDir())
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(m.ClientSecret+"\n"), 0o600)
	o := &cfg.Console.OIDC
	o.Issuer, o.ClientID, o.ClientSecretFile = m.Issuer(), m.ClientID, secretFile
	o.Roles.Approver = []string{"writ-approvers"}
	o.Roles.Viewer = []string{"staff"}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	in := servertest.StartWith(t, cfg, server.Options{Argon2: account.Params{Memory: 64, Time: 1, Threads: 1}})

	ctx := context.Background()
	if _, err := in.Client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "p.yaml", Content: groupTaskPolicy}}}); err != nil {
		t.Fatal(err)
	}
	m.QueueUser(&mockoidc.MockUser{Subject: "u-1", Email: "olga@example.com", EmailVerified: true,
		Groups: []string{"staff", "writ-approvers", "payroll-leads", "bad,group"}})
	b := newBrowser(t, exe, in.Addr)
	b.do(chromedp.Navigate(in.Addr+"/ui/login"), chromedp.Click(chromedp.ID("oidc")), chromedp.WaitVisible(chromedp.CSS("nav")))
	if who := b.text(".who span"); who != "olga@example.com · approver" {
		t.Errorf("after OIDC login the header says %q", who)
	}
	b.screenshot("oidc-overview")
	users, err := in.Client.ListUsers(context.Background())
	if err != nil || len(users) != 1 || users[0].Name != "olga@example.com" || users[0].Source != "oidc" || users[0].Role != "approver" ||
		!slices.Equal(users[0].Groups, []string{"payroll-leads", "staff", "writ-approvers"}) {
		t.Errorf("accounts after OIDC login: %+v, %v", users, err)
	}

	// olga is in payroll-leads: she approves a task the rule holds for it.
	openTask := func() string {
		t.Helper()
		tk, err := in.Client.OpenTask(ctx, apitypes.OpenTaskRequest{SpiffeID: "spiffe://writ.local/agent/me", Purpose: "pay", Audiences: []string{"bank"}})
		if err != nil || tk.Approval == "" {
			t.Fatalf("open task: %+v, %v", tk, err)
		}
		return tk.Approval
	}
	first := openTask()
	b.do(chromedp.Navigate(in.Addr + "/ui/approvals"))
	b.waitShown(first)
	b.do(chromedp.Click(chromedp.CSS("#" + first + " button.approve")))
	b.waitShown("notice")
	if got, err := in.Client.ListApprovals(ctx, "approved"); err != nil || len(got) != 1 || got[0].DecidedBy != "user:olga@example.com" {
		t.Errorf("approved: %+v, %v; want decided by user:olga@example.com", got, err)
	}
	// A later login whose claim no longer has payroll-leads: every session
	// of hers loses it.
	m.QueueUser(&mockoidc.MockUser{Subject: "u-1", Email: "olga@example.com", EmailVerified: true, Groups: []string{"writ-approvers"}})
	b2 := newBrowser(t, exe, in.Addr)
	b2.do(chromedp.Navigate(in.Addr+"/ui/login"), chromedp.Click(chromedp.ID("oidc")), chromedp.WaitVisible(chromedp.CSS("nav")))
	second := openTask()
	b.waitShown(second) // the first browser's page reloads itself
	b.waitTrue(disabledJS(second))
	if st := b.post("/ui/approvals/"+second+"/approve", b.csrf()); st != http.StatusForbidden {
		t.Errorf("approval after the provider dropped the group: %d, want 403", st)
	}

	// No mapped group: refused, and no session.
	m.QueueUser(&mockoidc.MockUser{Subject: "u-2", Email: "mallory@example.com", Groups: []string{"contractors"}})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(in.Addr + "/ui/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "grants no console role") {
		t.Errorf("login without a role: %d %.300s", resp.StatusCode, body)
	}
	// A callback with a state this browser did not start is refused.
	resp, err = hc.Get(in.Addr + "/ui/oidc/callback?state=forged&code=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged callback: %d, want 400", resp.StatusCode)
	}
}

// groupTaskPolicy holds every task of agent/me for a member of
// payroll-leads.
const groupTaskPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: me}
spec:
  subjects: [spiffe://writ.local/agent/me]
  rules:
    - name: pay
      effect: allow
      targets: [{task: {}}]
      approval: {approvers: [group:payroll-leads], timeout: 5m}
    - name: bank-token
      effect: allow
      targets: [{token: {audiences: [bank]}}]
`
