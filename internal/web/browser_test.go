package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
)

// artifactDir is where screenshots go: $WRIT_ARTIFACTS/console, else
// internal/web/testdata/artifacts (ignored by git).
func artifactDir(t *testing.T) string {
	dir := filepath.Join("testdata", "artifacts")
	if a := os.Getenv("WRIT_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium finds Debian's chromium; the browser tests skip without it
// locally and fail without it in CI (.ci/run installs it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: .ci/run installs it with apt-get install chromium")
	}
	t.Skip("chromium is not installed (apt-get install chromium); the console's browser tests need it")
	return ""
}

// browser is one headless Chromium with its own profile (cookies).
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, exe, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	// The first call starts the browser: no timeout on it (it would stop
	// the browser).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base}
}

// get runs one action that returns a value, with a time limit.
func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	get(b, chromedp.Steps(steps...))
}

// waitShown waits until the element with id is in the page and rendered.
func (b *browser) waitShown(id string) {
	b.t.Helper()
	b.waitTrue(fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && e.offsetParent !== null; })()`, id))
}

// waitTrue waits until the expression js is true in the page. The live
// approvals page reloads itself on each change, and a form's submission
// replaces the page, so an evaluation may meet a detached node ("No node
// with given id found") or a destroyed context ("Cannot find context with
// specified id"): it evaluates again in the page that replaced it, until
// the test's browser deadline.
func (b *browser) waitTrue(js string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		switch {
		case err == nil && ok:
			return
		case ctx.Err() != nil:
			b.t.Fatalf("waiting for %s: %v (last: %v)", js, ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *browser) login(name, password string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("nav")))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	png := get(b, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(artifactDir(b.t), name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates js in the page (awaiting a promise).
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	return get(b, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// post sends a same-origin POST from the page with fetch and returns the
// status; csrf "" leaves the token out.
func (b *browser) post(path, csrf string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf(`(async () => { const f = new URLSearchParams(); if (%q !== "") f.append("csrf", %q); f.append("reason", "because");
		const r = await fetch(%q, {method: "POST", body: f, redirect: "manual"}); return r.status; })()`, csrf, csrf, path))
}

func (b *browser) csrf() string {
	b.t.Helper()
	return get(b, chromedp.AttributeValue(chromedp.CSS(`header form input[name="csrf"]`), "value")).Value
}

// text returns the text of the first element sel selects, once there is
// one. Like waitTrue it asks again in a page that replaced the one it
// asked (the live approvals page reloads on each change), rather than
// holding a node that may be detached.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? [true, e.innerText] : [false, ""]; })()`, sel)
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]any](js))
		if err == nil && len(got) == 2 && got[0] == true {
			s, _ := got[1].(string)
			return strings.TrimSpace(s)
		}
		if ctx.Err() != nil {
			b.t.Fatalf("text of %s: %v (last: %v)", sel, ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

const consolePolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: me}
spec:
  subjects: [spiffe://writ.local/agent/me, "user:*"]
  rules:
    - name: tasks
      effect: allow
      targets: [{task: {}}]
    - name: api-token
      effect: allow
      targets: [{token: {audiences: [api]}}]
    - name: read
      effect: allow
      targets: [{http: {service: api, methods: [GET], paths: ["/allowed/**"]}}]
    - name: sensitive
      effect: allow
      targets: [{http: {service: api, methods: [GET], paths: ["/needs-approval/**"]}}]
      approval: {timeout: 2m}
    - name: payroll-leads
      effect: allow
      targets: [{http: {service: api, methods: [GET], paths: ["/group-approval/**"]}}]
      approval: {approvers: [group:payroll-leads], timeout: 2m}
`

type env struct {
	in       *servertest.Instance
	proxy    string
	upstream atomic.Int64
}

func setup(t *testing.T) *env {
	t.Helper()
	cfg := servertest.Config(t.TempDir())
	cfg.Proxy.ApprovalWait = 2 * time.Minute
	in := servertest.StartWith(t, cfg, server.Options{Argon2: account.Params{Memory: 64, Time: 1, Threads: 1}})
	e := &env{in: in, proxy: "http://" + in.Server.ProxyAddr()}
	ctx := context.Background()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.upstream.Add(1)
		io.WriteString(w, "upstream says hello to "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	c := in.Client
	if _, err := c.CreateEntry(ctx, apitypes.Entry{Name: "me", SpiffeID: "spiffe://writ.local/agent/me",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutCredential(ctx, "upstream-key", "bearer", "upstream-secret-value-123"); err != nil {
		t.Fatal(err)
	}
	doc := consolePolicy + fmt.Sprintf(`---
apiVersion: writ.dev/v1
kind: Service
metadata: {name: api}
spec:
  upstream: %s
  credential: {name: upstream-key}
`, up.URL)
	if _, err := c.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "all.yaml", Content: doc}}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"ada", "admin"}, {"alice", "approver"}, {"bob", "approver"}, {"vic", "viewer"}} {
		if _, err := c.AddUser(ctx, u.name, u.role, password(u.name)); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func password(name string) string { return name + "-long-password" }

// call makes a request through the access proxy as the test process
// (identified by its uid), in task, and returns status and body.
func (e *env) call(t *testing.T, path, task string) (int, string) {
	req, _ := http.NewRequest("GET", e.proxy+"/svc/api"+path, nil)
	if task != "" {
		req.Header.Set("Writ-Task", task)
	}
	resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitPending(t *testing.T, c *client.Client, n int) []apitypes.Approval {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := c.ListApprovals(context.Background(), "pending")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) >= n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pending approvals after 30s, want %d", len(list), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
