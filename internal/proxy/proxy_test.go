package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// testTokens accepts "Bearer test:SPIFFE_ID" as a writ token and reports
// every other credential as not a writ token. It stands in for the token
// service so these tests can focus on forwarding.
type testTokens struct{}

func (testTokens) VerifyToken(_ context.Context, p access.TokenProof, _ string) (access.TokenClaims, error) {
	id, ok := strings.CutPrefix(p.Authorization, "Bearer test:")
	if !ok {
		return access.TokenClaims{}, access.ErrNotWritToken
	}
	return access.TokenClaims{SpiffeID: id, Instance: "inst_test", ID: "tok_1"}, nil
}

type testCreds map[string]string

func (c testCreds) Get(_ context.Context, name string) (broker.Info, broker.Secret, error) {
	v, ok := c[name]
	if !ok {
		return broker.Info{}, broker.Secret{}, broker.ErrNotFound
	}
	return broker.Info{Name: name, Type: broker.Bearer}, broker.NewSecret([]byte(v)), nil
}

func compilePolicy(t testing.TB, src string) *policy.Snapshot {
	t.Helper()
	docs, err := resource.Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

const allowAll = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: p}
spec:
  subjects: [spiffe://writ.local/agent/a]
  rules:
    - name: all
      effect: allow
      targets: [{http: {service: up}}]
`

func service(t testing.TB, name, upstream, extra string) *Service {
	t.Helper()
	src := "apiVersion: writ.dev/v1\nkind: Service\nmetadata: {name: " + name + "}\nspec:\n  upstream: " + upstream + "\n" + extra
	docs, err := resource.Parse("svc.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := StoredSpec(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	s, err := CompileService(store.Resource{Kind: resource.KindService, Name: name, Version: 1, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fixture struct {
	p      *Proxy
	enf    *access.Enforcer
	events *audittest.Recorder
	front  *httptest.Server
	srv    *http.Server
}

// fixtureConfig configures a fixture's enforcer and, in Proxy, its proxy.
type fixtureConfig struct {
	access.Config
	Proxy Config
}

func newFixture(t testing.TB, upstream string, extra string, mutate func(*fixtureConfig)) *fixture {
	t.Helper()
	return newFixtureServer(t, upstream, extra, mutate, ServerConfig{})
}

func newFixtureServer(t testing.TB, upstream string, extra string, mutate func(*fixtureConfig), sc ServerConfig) *fixture {
	t.Helper()
	ev := &audittest.Recorder{}
	cfg := fixtureConfig{Config: access.Config{
		Policy:      policy.NewEngine(policy.Config{}, compilePolicy(t, allowAll)),
		Emitter:     ev,
		Tokens:      testTokens{},
		Credentials: testCreds{"key": "the-secret"},
	}}
	if mutate != nil {
		mutate(&cfg)
	}
	if cfg.Journal == "" {
		cfg.Journal = filepath.Join(t.TempDir(), "proxy.journal")
	}
	enf, err := access.New(context.Background(), cfg.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enf.Close() })
	cfg.Proxy.Enforcer = enf
	p, err := New(cfg.Proxy)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTable([]*Service{service(t, "up", upstream, extra)})
	if err != nil {
		t.Fatal(err)
	}
	p.SetServices(tab)
	srv := p.NewServer(sc)
	front := httptest.NewUnstartedServer(p)
	front.Config = srv
	front.Start()
	t.Cleanup(front.Close)
	return &fixture{p: p, enf: enf, events: ev, front: front, srv: srv}
}

func (f *fixture) get(t testing.TB, path string, h ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.front.URL+path, nil)
	req.Header.Set("Authorization", "Bearer test:spiffe://writ.local/agent/a")
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := f.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.p.Flush() // events are recorded once the response is complete
	return resp, string(b)
}

func TestForwardStripsAndInjects(t *testing.T) {
	var got http.Header
	var gotPath string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotPath = r.Header.Clone(), r.URL.RequestURI()
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	f := newFixture(t, up.URL+"/base", "  credential: {name: key, inject: query, query: api_key}\n", nil)
	resp, body := f.get(t, "/svc/up/a%2Fb/c?x=1&api_key=agent-supplied", "Connection", "X-Hop", "X-Hop", "1", "Writ-Task", "", "Dpop", "proof", "Proxy-Authorization", "Basic x")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if gotPath != "/base/a%2Fb/c?api_key=the-secret&x=1" {
		t.Errorf("upstream request URI %q", gotPath)
	}
	for _, h := range []string{"Authorization", "Dpop", "X-Hop", "Proxy-Authorization"} {
		if got.Get(h) != "" {
			t.Errorf("upstream got %s: %q", h, got.Get(h))
		}
	}
	// One event for the request, with the decision and the outcome; the
	// journal record of the decision is settled.
	evs := f.events.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Type != audit.AccessAllowed || e.Credential != "key" || e.Details["query"] != "api_key&x" || e.Details["path"] != "/a/b/c" || strings.Contains(e.Details["query"], "the-secret") ||
		e.Details["status"] != "200" || e.Details["bytes_out"] != "2" || !strings.HasPrefix(e.ID, "evt_") || e.RequestID == "" {
		t.Errorf("access.allowed event %+v", e)
	}
	if n := f.enf.Pending(); n != 0 {
		t.Errorf("%d decisions pending in the journal after the event was recorded", n)
	}
}

// TestFailClosedWhenAuditUnavailable: while the audit log refuses events,
// or the journal cannot take the decision, an allowed request is not
// forwarded.
func TestFailClosedWhenAuditUnavailable(t *testing.T) {
	hits := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer up.Close()
	for _, tc := range []struct {
		name    string
		breakIt func(*fixture)
	}{
		{"audit log failed", nil},
		{"journal closed", func(f *fixture) { f.enf.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, up.URL, "", func(c *fixtureConfig) {
				if tc.breakIt == nil {
					c.AuditFailed = func() error { return errors.New("the audit store failed to sync") }
				}
			})
			if tc.breakIt != nil {
				tc.breakIt(f)
			}
			resp, body := f.get(t, "/svc/up/x")
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "fails closed") {
				t.Fatalf("%d %s, want 503 fail closed", resp.StatusCode, body)
			}
			if hits != 0 {
				t.Fatalf("the upstream was reached %d times although the access was not recorded", hits)
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	for _, tc := range []struct {
		name, upstream, extra string
		want                  int
		wantMsg               string
	}{
		{"timeout", slow.URL, "  timeouts: {response: 200ms}\n", http.StatusGatewayTimeout, "did not answer in time"},
		{"unreachable", deadURL, "", http.StatusBadGateway, "could not be reached"},
		{"missing credential", slow.URL, "  credential: {name: nope}\n", http.StatusBadGateway, "writ credential put nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.upstream, tc.extra, nil)
			resp, body := f.get(t, "/svc/up/x")
			if resp.StatusCode != tc.want || !strings.Contains(body, tc.wantMsg) || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%d %q", resp.StatusCode, body)
			}
			if e := f.events.Latest(); e.Details["status"] != strconv.Itoa(tc.want) {
				t.Errorf("event status %q", e.Details["status"])
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer up.Close()
	f := newFixture(t, up.URL, "", func(c *fixtureConfig) { c.Proxy.MaxRequestBody = 1000 })
	req, _ := http.NewRequest("POST", f.front.URL+"/svc/up/x", strings.NewReader(strings.Repeat("a", 5000)))
	req.Header.Set("Authorization", "Bearer test:spiffe://writ.local/agent/a")
	resp, err := f.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

func TestUnidentifiedAndDenied(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("upstream reached") }))
	defer up.Close()
	f := newFixture(t, up.URL, "", nil)
	req, _ := http.NewRequest("GET", f.front.URL+"/svc/up/x", nil)
	resp, err := f.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), "writ entry create") {
		t.Errorf("no credentials: %d %s", resp.StatusCode, b)
	}
	resp2, body := f.get(t, "/svc/up/x", "Authorization", "Bearer test:spiffe://writ.local/agent/other")
	if resp2.StatusCode != 403 || !strings.Contains(body, `"request_id"`) {
		t.Errorf("other agent: %d %s", resp2.StatusCode, body)
	}
	if e := f.events.Latest(); e.Type != audit.AccessDenied || e.SpiffeID != "spiffe://writ.local/agent/other" {
		t.Errorf("event %+v", e)
	}
	resp3, _ := f.get(t, "/nothing/here")
	if resp3.StatusCode != 404 {
		t.Errorf("no route: %d", resp3.StatusCode)
	}
}

// Cancelled requests must not leave goroutines behind.
func TestCancelledRequestsDoNotLeak(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			io.Copy(io.Discard, r.Body) // until the proxy gives up
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		if r.URL.Path == "/warm" {
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	f := newFixture(t, up.URL, "", nil)
	f.get(t, "/svc/up/warm")
	base := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", f.front.URL+"/svc/up/hang", nil)
		// Every other request is an upload still being sent when it is
		// cancelled, before any answer.
		pr, pw := io.Pipe()
		if i%2 == 1 {
			req, _ = http.NewRequestWithContext(ctx, "POST", f.front.URL+"/svc/up/hang", pr)
			go io.WriteString(pw, "part of a body")
			time.AfterFunc(50*time.Millisecond, func() { cancel(); pw.CloseWithError(context.Canceled) })
		}
		req.Header.Set("Authorization", "Bearer test:spiffe://writ.local/agent/a")
		resp, err := f.front.Client().Do(req)
		if err == nil {
			cancel()
			resp.Body.Close()
		} else {
			cancel()
		}
		pw.Close()
	}
	f.front.Client().CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+4 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after cancelled requests, %d before\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// Shutdown lets an in-flight request finish.
func TestShutdownDrains(t *testing.T) {
	started := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "done")
	}))
	defer up.Close()
	f := newFixture(t, up.URL, "", nil)
	type result struct {
		code int
		body string
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", f.front.URL+"/svc/up/slow", nil)
		req.Header.Set("Authorization", "Bearer test:spiffe://writ.local/agent/a")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b)}
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.code != 200 || r.body != "done" {
		t.Errorf("in-flight request during shutdown: %d %q", r.code, r.body)
	}
}

// Slow clients are cut off by the header timeout.
func TestSlowClientHeaderTimeout(t *testing.T) {
	f := newFixtureServer(t, "http://127.0.0.1:1", "", nil, ServerConfig{ReadHeaderTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /svc/up/x HTTP/1.1\r\nHost: x\r\n")
	// The server must end the connection itself; our own deadline is only
	// there so that a broken server fails the test instead of hanging it.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	_, err = br.ReadString('\n')
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("slow client held the connection for a minute: the header timeout did not cut it off")
	}
}
