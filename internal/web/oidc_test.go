package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
)

// TestOIDCLogin logs in through a real OpenID Connect provider running in
// the test (oauth2-proxy's mockoidc: discovery, authorization code with
// PKCE S256, signed ID tokens): the human gets the role their groups claim
// maps to, is recorded as an OIDC account, and a human whose groups map to
// no role is refused.
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

	m.QueueUser(&mockoidc.MockUser{Subject: "u-1", Email: "olga@example.com", EmailVerified: true, Groups: []string{"staff", "writ-approvers"}})
	b := newBrowser(t, exe, in.Addr)
	b.do(chromedp.Navigate(in.Addr+"/ui/login"), chromedp.Click(chromedp.ID("oidc")), chromedp.WaitVisible(chromedp.CSS("nav")))
	if who := b.text(".who span"); who != "olga@example.com · approver" {
		t.Errorf("after OIDC login the header says %q", who)
	}
	b.screenshot("oidc-overview")
	users, err := in.Client.ListUsers(context.Background())
	if err != nil || len(users) != 1 || users[0].Name != "olga@example.com" || users[0].Source != "oidc" || users[0].Role != "approver" {
		t.Errorf("accounts after OIDC login: %+v, %v", users, err)
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
