package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/store"
)

// fakes: the console's services, recording every decision.
type fakes struct {
	mu        sync.Mutex
	decisions []string // "approval ID actor comment" or "alert ID state actor note"
}

func (f *fakes) record(s string) { f.mu.Lock(); f.decisions = append(f.decisions, s); f.mu.Unlock() }
func (f *fakes) taken() int      { f.mu.Lock(); defer f.mu.Unlock(); return len(f.decisions) }

type fakeAccounts struct{}

func (fakeAccounts) Login(_ context.Context, name, password, _ string) (string, account.Session, error) {
	if name == "ada" && password == "right-password" {
		return "sess", account.Session{User: store.User{Name: "ada", Role: store.RoleAdmin}, CSRF: "tok"}, nil
	}
	return "", account.Session{}, account.ErrLogin
}
func (fakeAccounts) LoginOIDC(_ context.Context, name, role string, _ []string, _ string) (string, account.Session, error) {
	return "oidc-sess", account.Session{User: store.User{Name: name, Role: role}, CSRF: "tok"}, nil
}
func (fakeAccounts) Session(_ context.Context, secret string) (account.Session, error) {
	if secret == "sess" {
		return account.Session{User: store.User{Name: "ada", Role: store.RoleAdmin}, CSRF: "tok"}, nil
	}
	return account.Session{}, account.ErrNoSession
}
func (fakeAccounts) Logout(context.Context, string, string) error { return nil }

type fakeApprovals struct{ f *fakes }

var pendingApproval = store.Approval{ID: "apr_1", Kind: "http", SpiffeID: "spiffe://writ.local/agent/a", OnBehalfOf: "erin",
	Target: "GET api /x", State: store.ApprovalPending}

func (a fakeApprovals) List(context.Context, string) ([]store.Approval, error) {
	return []store.Approval{pendingApproval}, nil
}
func (a fakeApprovals) Get(_ context.Context, id string) (store.Approval, error) {
	if id != "apr_1" {
		return store.Approval{}, store.ErrNotFound
	}
	return pendingApproval, nil
}
func (a fakeApprovals) Decide(_ context.Context, id string, approve bool, actor, comment string) (store.Approval, error) {
	if id != "apr_1" {
		return store.Approval{}, store.ErrNotFound
	}
	a.f.record("approval " + id + " " + actor + " " + comment)
	out := pendingApproval
	out.State = store.ApprovalDenied
	if approve {
		out.State = store.ApprovalApproved
	}
	return out, nil
}
func (a fakeApprovals) Changed() <-chan struct{} { return make(chan struct{}) }

type fakeAudit struct{}

func (fakeAudit) AuditSearch(context.Context, apitypes.AuditQuery) (apitypes.AuditSearchResult, error) {
	return apitypes.AuditSearchResult{}, nil
}
func (fakeAudit) AuditEvent(_ context.Context, id string) (apitypes.AuditEntry, error) {
	return apitypes.AuditEntry{}, apitypes.Errorf(http.StatusNotFound, apitypes.CodeNotFound, "no event %q", id)
}
func (fakeAudit) AuditProof(_ context.Context, id string) (apitypes.InclusionProof, error) {
	return apitypes.InclusionProof{}, apitypes.Errorf(http.StatusNotFound, apitypes.CodeNotFound, "no event %q", id)
}
func (fakeAudit) AuditStatus() (int64, apitypes.Checkpoint, bool) {
	return 0, apitypes.Checkpoint{}, false
}

type fakeResources struct{}

func (fakeResources) ListResources(context.Context, string) ([]apitypes.Resource, error) {
	return nil, nil
}

type fakeTasks struct{}

func (fakeTasks) List(context.Context, store.TaskFilter) ([]store.Task, error) { return nil, nil }

type fakeAlerts struct{ f *fakes }

func (a fakeAlerts) List(context.Context, store.AlertFilter) ([]store.Alert, alert.Summary, error) {
	return []store.Alert{{ID: "alr_1", Rule: "repeated_denials", Severity: "medium", Title: "Repeated denials", State: store.AlertOpen}}, alert.Summary{}, nil
}
func (a fakeAlerts) SetState(_ context.Context, id, state, who, note string) (store.Alert, error) {
	if id != "alr_1" {
		return store.Alert{}, store.ErrNotFound
	}
	a.f.record("alert " + id + " " + state + " " + who + " " + note)
	return store.Alert{ID: id, State: state}, nil
}

type fakeLineage struct{}

func (fakeLineage) Query(context.Context, graph.Query) (*graph.Graph, error) {
	return smallGraph(), nil
}

func fakeConsole(t testing.TB, o *OIDC) (*Console, *fakes) {
	f := &fakes{}
	c, err := New(Config{Accounts: fakeAccounts{}, Approvals: fakeApprovals{f}, Audit: fakeAudit{}, Resources: fakeResources{},
		Tasks: fakeTasks{}, Alerts: fakeAlerts{f}, Lineage: fakeLineage{}, OIDC: o,
		Inventory: func(context.Context) (apitypes.Inventory, error) { return apitypes.Inventory{}, nil },
		Now:       func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

// serve runs one request through the console and checks what holds for
// every answer: no server error, redirects stay in the console, and the
// only script is our file (no input reaches the page unescaped).
func serve(t *testing.T, c *Console, r *http.Request) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, r)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		t.Fatalf("%s %s: %d %.300s", r.Method, r.URL, resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); loc != "" && (!strings.HasPrefix(loc, "/ui/") || strings.HasPrefix(loc, "//")) {
		t.Fatalf("%s %s redirects out of the console to %q", r.Method, r.URL, loc)
	}
	if n := strings.Count(strings.ToLower(string(body)), "<script"); n > 1 {
		t.Fatalf("%s %s: %d script elements in %.500s", r.Method, r.URL, n, body)
	}
	return resp
}

// FuzzConsoleForms sends every form of the console hostile values: the
// approval decision (id, reason), the alert decision (id, note), the
// login (name, password, next), and the query strings of the lineage,
// audit and alerts pages. No input causes a server error, a redirect
// out of the console or markup on the page; a state change without the
// session's CSRF token changes nothing, and one with it is recorded as
// the logged-in human with the text given (trimmed, at most 1,000 bytes).
func FuzzConsoleForms(f *testing.F) {
	f.Add("apr_1", "looks fine", "tok", "approve", "ada", "right-password", "/ui/alerts", "window=24h&identity=x")
	f.Add("alr_1", "<script>alert(1)</script>", "tok", "ack", "ada", "wrong", "//evil.example", "task=<b>&crown_jewels=on")
	f.Add("../x", strings.Repeat("é", 600), "", "resolve", "\x00", "", "/ui/\\evil", "window=-1h")
	f.Add("apr_1", "", "forged", "deny", "ada", "right-password", "https://evil.example/", "state=all&x=1")
	c, fk := fakeConsole(f, nil)
	f.Fuzz(func(t *testing.T, id, text, csrf, action, name, password, next, query string) {
		form := url.Values{"csrf": {csrf}, "reason": {text}, "note": {text}}
		var path string
		switch action {
		case "approve", "deny":
			path = "/ui/approvals/" + url.PathEscape(id) + "/" + action
		case "ack", "resolve":
			path = "/ui/alerts/" + url.PathEscape(id) + "/" + action
		default:
			path = "/ui/alerts/" + url.PathEscape(id) + "/ack"
		}
		before := fk.taken()
		req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: "writ_session", Value: "sess"})
		resp := serve(t, c, req)
		after := fk.taken()
		if csrf != "tok" && after != before {
			t.Fatalf("a POST with CSRF token %q changed something (%d)", csrf, resp.StatusCode)
		}
		if after != before {
			fk.mu.Lock()
			d := fk.decisions[len(fk.decisions)-1]
			fk.mu.Unlock()
			want := strings.TrimSpace(text)
			if !strings.Contains(d, " user:ada ") || !strings.HasSuffix(d, " "+want) || len(want) > 1000 {
				t.Fatalf("decision recorded as %q for text %q", d, text)
			}
		}

		login := url.Values{"name": {name}, "password": {password}, "next": {next}}
		req = httptest.NewRequest("POST", "/ui/login", strings.NewReader(login.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp = serve(t, c, req)
		if resp.StatusCode == http.StatusSeeOther && (name != "ada" || password != "right-password") {
			t.Fatalf("login as %q with %q succeeded", name, password)
		}

		for _, p := range []string{"/ui/lineage", "/ui/lineage/node", "/ui/audit", "/ui/alerts", "/ui/login"} {
			u := &url.URL{Path: p, RawQuery: query}
			req := httptest.NewRequest("GET", "/", nil)
			req.URL, req.RequestURI = u, u.RequestURI()
			req.AddCookie(&http.Cookie{Name: "writ_session", Value: "sess"})
			serve(t, c, req)
		}
	})
}

var (
	oidcOnce    sync.Once
	oidcMock    *mockoidc.MockOIDC
	oidcConsole *Console
	oidcErr     error
)

// FuzzOIDCCallback sends the OIDC callback hostile query strings and
// state cookies, against a real provider (mockoidc) with a login this
// browser started: none logs anyone in, none is a server error, and the
// provider's error text reaches the page escaped.
func FuzzOIDCCallback(f *testing.F) {
	oidcOnce.Do(func() {
		if oidcMock, oidcErr = mockoidc.Run(); oidcErr != nil {
			return
		}
		var o *OIDC
		o, oidcErr = NewOIDC(context.Background(), OIDCConfig{Issuer: oidcMock.Issuer(), ClientID: oidcMock.ClientID,
			ClientSecret: oidcMock.ClientSecret, RedirectURL: "http://console.example/ui/oidc/callback",
			Roles: map[string][]string{store.RoleViewer: {"staff"}}})
		if oidcErr == nil {
			oidcConsole, _ = fakeConsole(f, o)
		}
	})
	if oidcErr != nil {
		f.Fatal(oidcErr)
	}
	f.Add("", "code", "", "", true)
	f.Add("x", "", "access_denied", "<script>alert(1)</script>", false)
	f.Add("\x00", "%zz", "", "", true)
	f.Fuzz(func(t *testing.T, state, code, errParam, errDesc string, useStarted bool) {
		c := oidcConsole
		// A login this browser started: its state cookie.
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/oidc/login", nil))
		var started *http.Cookie
		for _, ck := range rec.Result().Cookies() {
			if ck.Name == oidcCookie {
				started = ck
			}
		}
		if started == nil {
			t.Fatal("the OIDC login set no state cookie")
		}
		q := url.Values{"code": {code}}
		if useStarted {
			q.Set("state", started.Value)
		} else {
			q.Set("state", state)
		}
		if errParam != "" {
			q.Set("error", errParam)
			q.Set("error_description", errDesc)
		}
		req := httptest.NewRequest("GET", "/ui/oidc/callback?"+q.Encode(), nil)
		req.AddCookie(started)
		rec = httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		resp := rec.Result()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 || resp.StatusCode < 400 {
			t.Fatalf("callback %s: %d %.300s", q.Encode(), resp.StatusCode, body)
		}
		for _, ck := range resp.Cookies() {
			if strings.HasSuffix(ck.Name, "writ_session") && ck.Value != "" {
				t.Fatalf("callback %s set a session", q.Encode())
			}
		}
		if strings.Count(strings.ToLower(string(body)), "<script") > 1 {
			t.Fatalf("callback %s: markup from the query on the page", q.Encode())
		}
	})
}

// BenchmarkInventoryPage renders the Inventory page of 10,000 items
// (2,500 identities, instances, discovered processes and credentials
// each): the console's share of the page, with the inventory read from
// memory.
func BenchmarkInventoryPage(b *testing.B) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var inv apitypes.Inventory
	for i := range 2500 {
		inv.Identities = append(inv.Identities, apitypes.InventoryIdentity{Name: "agent-" + strconv.Itoa(i),
			SpiffeID: "spiffe://writ.local/fleet/agent-" + strconv.Itoa(i), Selectors: []string{"unix:uid:1000", "unix:sha256:" + strings.Repeat("ab", 32)}, Owner: "team"})
		inv.Instances = append(inv.Instances, apitypes.InventoryInstance{ID: "inst_" + strconv.Itoa(i), PID: 1000 + i, UID: 1000,
			Exe: "/usr/bin/python3.12", FirstSeen: now, LastSeen: now, Live: i%2 == 0})
		inv.Discovered = append(inv.Discovered, apitypes.InventoryItem{Kind: "agent", Name: "claude " + strconv.Itoa(i), Host: "vm", LastSeen: now, Shadow: i%3 == 0})
		inv.Credentials = append(inv.Credentials, apitypes.InventoryCredential{Name: "OPENAI_API_KEY", Source: "env", Kind: "openai", Host: "vm",
			Fingerprint: "hmac-sha256:" + strings.Repeat("0f", 16), Shadow: true, LastSeen: now})
	}
	c, _ := fakeConsole(b, nil)
	c.c.Inventory = func(context.Context) (apitypes.Inventory, error) { return inv, nil }
	var size int
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/ui/inventory", nil)
		req.AddCookie(&http.Cookie{Name: "writ_session", Value: "sess"})
		c.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("inventory: %d", rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes")
}
