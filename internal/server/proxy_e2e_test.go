package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/config"
)

// Environment of the helper mode: when set, the test binary does one GET
// through the proxy and prints the status and body.
const (
	helperProxyEnv = "WRIT_PROXY_HELPER_PROXY"
	helperURLEnv   = "WRIT_PROXY_HELPER_URL"
)

// TestProxyHelperProcess is not a test: it is the child process of the
// process-attribution tests (the test binary re-executed).
func TestProxyHelperProcess(t *testing.T) {
	proxy := os.Getenv(helperProxyEnv)
	if proxy == "" {
		t.Skip("helper process for the proxy tests")
	}
	pu, err := url.Parse(proxy)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 20 * time.Second}
	resp, err := c.Get(os.Getenv(helperURLEnv))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d\n%s", resp.StatusCode, body)
	os.Exit(0)
}

// events collects the audit events a server logs (SlogEmitter) and passes
// warnings to the test log.
type events struct {
	t  *testing.T
	mu sync.Mutex
	ev []map[string]string
}

func (e *events) Enabled(context.Context, slog.Level) bool { return true }
func (e *events) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e *events) WithGroup(string) slog.Handler            { return e }
func (e *events) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "event" {
		if r.Level >= slog.LevelWarn {
			var b strings.Builder
			r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
			e.t.Logf("%s %s%s", r.Level, r.Message, b.String())
		}
		return nil
	}
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	e.mu.Lock()
	e.ev = append(e.ev, m)
	e.mu.Unlock()
	return nil
}

// find returns the last event of typ whose detail.path is path, waiting
// a little for it: the proxy records an event once its response is sent.
func (e *events) find(typ, path string) map[string]string {
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		e.mu.Lock()
		for i := len(e.ev) - 1; i >= 0; i-- {
			if ev := e.ev[i]; ev["type"] == typ && ev["detail.path"] == path {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		if time.Now().After(deadline) {
			return nil
		}
	}
}

// all returns every event so far, JSON-encoded, to search for leaks.
func (e *events) all() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, _ := json.Marshal(e.ev)
	return string(b)
}

func startLogged(t *testing.T, cfg config.Config) (*instance, *events) {
	t.Helper()
	ev := &events{t: t}
	return startWithLog(t, cfg, slog.New(ev)), ev
}

// seen is one request an upstream received.
type seen struct {
	Method, Path, Query string
	Header              http.Header
}

type upstreamLog struct {
	mu  sync.Mutex
	got []seen
}

func (u *upstreamLog) handler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.got = append(u.got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone()})
	u.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "upstream ok "+r.URL.Path)
}

func (u *upstreamLog) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

func (u *upstreamLog) last(t *testing.T) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return u.got[len(u.got)-1]
}

const upstreamSecret = "s3cret-upstream-VALUE"

func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required in CI (apt-get install curl)")
		}
		t.Skip("curl not installed; apt-get install curl")
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// curl runs curl with args and returns the body and the status code
// (written last by -w).
func curl(t *testing.T, curlPath string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curlPath, append([]string{"-sS", "--noproxy", "", "-w", "\n%{http_code}"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		t.Fatalf("curl %v: no status (stderr %s)", args, stderr.String())
	}
	code, err := strconv.Atoi(strings.TrimSpace(s[i+1:]))
	if err != nil {
		t.Fatalf("curl %v: status %q (stderr %s)", args, s[i+1:], stderr.String())
	}
	return s[:i], code
}

type proxyEnv struct {
	in       *instance
	ev       *events
	up       *upstreamLog
	tlsUp    *upstreamLog
	proxy    string // http://host:port
	caFile   string // the proxy CA, from the admin API
	curl     string
	upstream *httptest.Server
}

func apply(t *testing.T, c *client.Client, name, doc string) {
	t.Helper()
	if _, err := c.Apply(context.Background(), apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: name, Content: doc}}}); err != nil {
		t.Fatalf("apply %s: %v", name, err)
	}
}

func setupProxy(t *testing.T, extraPolicy string) *proxyEnv {
	t.Helper()
	curlPath := needCurl(t)
	cfg := testConfig(t.TempDir())
	cfg.Proxy.TLSListen = "127.0.0.1:0"
	cfg.Proxy.ApprovalWait = 5 * time.Second
	in, ev := startLogged(t, cfg)
	ctx := context.Background()
	env := &proxyEnv{in: in, ev: ev, up: &upstreamLog{}, tlsUp: &upstreamLog{}, proxy: "http://" + in.srv.ProxyAddr(), curl: curlPath}

	env.upstream = httptest.NewServer(http.HandlerFunc(env.up.handler))
	t.Cleanup(env.upstream.Close)
	tlsUp := httptest.NewTLSServer(http.HandlerFunc(env.tlsUp.handler))
	t.Cleanup(tlsUp.Close)
	upCA := filepath.Join(t.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(upCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsUp.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, err := in.client.ProxyCA(ctx)
	if err != nil || !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("ProxyCA: %q, %v", ca, err)
	}
	env.caFile = filepath.Join(t.TempDir(), "proxy-ca.pem")
	os.WriteFile(env.caFile, ca, 0o644)

	if _, err := in.client.PutCredential(ctx, "upstream-key", "bearer", upstreamSecret); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	uid := strconv.Itoa(os.Getuid())
	for _, e := range []apitypes.Entry{
		{Name: "curl", SpiffeID: "spiffe://writ.local/agent/curl", Selectors: []string{"unix:uid:" + uid, "unix:sha256:" + sha256File(t, curlPath)}},
		{Name: "helper", SpiffeID: "spiffe://writ.local/agent/helper", Selectors: []string{"unix:uid:" + uid, "unix:sha256:" + sha256File(t, self)}},
	} {
		if _, err := in.client.CreateEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tlsPort := tlsUp.Listener.Addr().(interface{ String() string }).String()
	apply(t, in.client, "services.yaml", fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: api}
spec:
  upstream: %s
  match: {host: api.test.internal}
  credential: {name: upstream-key}
  labels: [private_data]
---
apiVersion: writ.dev/v1
kind: Service
metadata: {name: secure}
spec:
  upstream: https://%s
  match: {host: "secure.test.internal:443"}
  intercept: true
  tls: {ca_file: %s, server_name: example.com}
  credential: {name: upstream-key, inject: header, header: X-Api-Key, template: "key {value}"}
---
apiVersion: writ.dev/v1
kind: Service
metadata: {name: tunnel}
spec:
  upstream: https://%s
  match: {host: "%s"}
`, env.upstream.URL, tlsPort, upCA, tlsPort, tlsPort))
	apply(t, in.client, "policy.yaml", `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: agents}
spec:
  subjects: [spiffe://writ.local/agent/curl, spiffe://writ.local/agent/helper]
  rules:
    - name: read-allowed
      effect: allow
      targets:
        - http: {service: api, methods: [GET, POST], paths: ["/allowed/**"]}
        - http: {service: secure, methods: [GET], paths: ["/allowed/**"]}
        - http: {service: tunnel, methods: [CONNECT]}
    - name: limited
      effect: allow
      targets:
        - http: {service: api, methods: [GET], paths: ["/limited"]}
      rate: {limit: 2/1m, per: subject}
`+extraPolicy)
	return env
}

func checkInjected(t *testing.T, s seen) {
	t.Helper()
	if got := s.Header.Get("Authorization"); got != "Bearer "+upstreamSecret {
		t.Errorf("upstream Authorization = %q, want the injected credential", got)
	}
	for _, h := range []string{"Proxy-Authorization", "Writ-Task", "Writ-Identity", "Proxy-Connection"} {
		if v := s.Header.Get(h); v != "" {
			t.Errorf("upstream received %s: %q", h, v)
		}
	}
}

func TestProxyCurl(t *testing.T) {
	env := setupProxy(t, "")

	t.Run("forward allowed with injection", func(t *testing.T) {
		body, code := curl(t, env.curl, "-x", env.proxy, "-H", "Authorization: Bearer agent-held-token", "-H", "Writ-Identity: spiffe://writ.local/agent/x",
			"http://api.test.internal/allowed/one?q=private-query-value&page=2")
		if code != 200 || !strings.Contains(body, "upstream ok /allowed/one") {
			t.Fatalf("status %d body %q", code, body)
		}
		s := env.up.last(t)
		checkInjected(t, s)
		if s.Path != "/allowed/one" || !strings.Contains(s.Query, "q=private-query-value") {
			t.Errorf("upstream saw %s?%s", s.Path, s.Query)
		}
		e := env.ev.find("access.allowed", "/allowed/one")
		if e == nil {
			t.Fatalf("no access.allowed event; events: %s", env.ev.all())
		}
		if e["spiffe_id"] != "spiffe://writ.local/agent/curl" || !strings.HasPrefix(e["instance"], "inst_") || e["credential"] != "upstream-key" ||
			e["detail.via"] != "process" || e["target"] != "Service/api" || e["policy"] != "agents@1" || e["rule"] != "read-allowed" {
			t.Errorf("event = %v", e)
		}
		// One event per request, with the outcome.
		if e["detail.status"] != "200" || e["detail.bytes_out"] != "24" {
			t.Errorf("access.allowed without its outcome: %v", e)
		}
		if e["detail.query"] != "page&q" {
			t.Errorf("event query = %q, want parameter names only", e["detail.query"])
		}
	})

	t.Run("reverse route allowed", func(t *testing.T) {
		body, code := curl(t, env.curl, "-H", "Authorization: Bearer agent-held-token", env.proxy+"/svc/api/allowed/two")
		if code != 200 || !strings.Contains(body, "upstream ok /allowed/two") {
			t.Fatalf("status %d body %q", code, body)
		}
		checkInjected(t, env.up.last(t))
	})

	t.Run("denied path never reaches the upstream", func(t *testing.T) {
		before := env.up.count()
		for _, args := range [][]string{
			{"-x", env.proxy, "http://api.test.internal/denied/x"},
			{env.proxy + "/svc/api/denied/x"},
			{"-x", env.proxy, "-X", "DELETE", "http://api.test.internal/allowed/one"},
		} {
			body, code := curl(t, env.curl, args...)
			if code != 403 {
				t.Fatalf("%v: status %d body %q, want 403", args, code, body)
			}
			var eb struct{ Error, Reason, Policy, Rule, RequestID string }
			var raw map[string]any
			if err := json.Unmarshal([]byte(body), &raw); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			json.Unmarshal([]byte(body), &eb)
			if raw["error"] == nil || raw["reason"] == nil || !strings.HasPrefix(fmt.Sprint(raw["request_id"]), "req_") {
				t.Errorf("deny body = %s, want error, reason and request_id", body)
			}
		}
		if env.up.count() != before {
			t.Errorf("the upstream received %d denied requests", env.up.count()-before)
		}
		if e := env.ev.find("access.denied", "/denied/x"); e == nil || e["decision"] != "deny" || e["spiffe_id"] != "spiffe://writ.local/agent/curl" {
			t.Errorf("deny event = %v", e)
		}
	})

	t.Run("host no Service names is refused", func(t *testing.T) {
		body, code := curl(t, env.curl, "-x", env.proxy, "http://elsewhere.test.internal/allowed/x")
		if code != 403 || !strings.Contains(body, "no Service matches host") {
			t.Errorf("status %d body %q", code, body)
		}
	})

	t.Run("rate limit answers 429 with Retry-After", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if _, code := curl(t, env.curl, "-x", env.proxy, "http://api.test.internal/limited"); code != 200 {
				t.Fatalf("call %d: %d", i, code)
			}
		}
		body, code := curl(t, env.curl, "-i", "-x", env.proxy, "http://api.test.internal/limited")
		if code != 429 || !strings.Contains(strings.ToLower(body), "retry-after: ") {
			t.Errorf("third call: %d %q", code, body)
		}
	})

	t.Run("TLS interception with injection", func(t *testing.T) {
		body, code := curl(t, env.curl, "-x", env.proxy, "--cacert", env.caFile, "-H", "Authorization: Bearer agent-held-token",
			"https://secure.test.internal/allowed/tls")
		if code != 200 || !strings.Contains(body, "upstream ok /allowed/tls") {
			t.Fatalf("status %d body %q", code, body)
		}
		s := env.tlsUp.last(t)
		if s.Header.Get("X-Api-Key") != "key "+upstreamSecret || s.Header.Get("Authorization") != "" {
			t.Errorf("upstream headers X-Api-Key %q Authorization %q", s.Header.Get("X-Api-Key"), s.Header.Get("Authorization"))
		}
		if e := env.ev.find("access.allowed", "/allowed/tls"); e == nil || e["target"] != "Service/secure" || e["spiffe_id"] != "spiffe://writ.local/agent/curl" {
			t.Errorf("event = %v", e)
		}
		before := env.tlsUp.count()
		if _, code := curl(t, env.curl, "-x", env.proxy, "--cacert", env.caFile, "https://secure.test.internal/denied"); code != 403 {
			t.Errorf("denied path inside the tunnel: %d", code)
		}
		if env.tlsUp.count() != before {
			t.Error("denied intercepted request reached the upstream")
		}
	})

	t.Run("CONNECT to a host no Service names is refused", func(t *testing.T) {
		_, code := curl(t, env.curl, "-x", env.proxy, "-w", "\n%{http_connect}", "https://nowhere.test.internal/")
		// -w is given twice; the last wins: the CONNECT status.
		if code != 403 {
			t.Errorf("CONNECT status %d, want 403", code)
		}
	})

	t.Run("CONNECT without interception is spliced", func(t *testing.T) {
		tlsAddr := strings.TrimPrefix(env.tlsUpstreamURL(t), "https://")
		body, code := curl(t, env.curl, "-x", env.proxy, "-k", "https://"+tlsAddr+"/spliced")
		if code != 200 || !strings.Contains(body, "upstream ok /spliced") {
			t.Errorf("status %d body %q", code, body)
		}
	})

	t.Run("no secret in events", func(t *testing.T) {
		if all := env.ev.all(); strings.Contains(all, upstreamSecret) || strings.Contains(all, "private-query-value") || strings.Contains(all, "agent-held-token") {
			t.Errorf("an event holds a secret or query value: %s", all)
		}
	})
}

func (env *proxyEnv) tlsUpstreamURL(t *testing.T) string {
	t.Helper()
	res, err := env.in.client.GetResource(context.Background(), "Service", "tunnel")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct{ Upstream string }
	json.Unmarshal(res.Spec, &spec)
	return spec.Upstream
}

func TestProxyProcessAttribution(t *testing.T) {
	env := setupProxy(t, "")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy with different bytes: another digest, no identity.
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other-agent")
	if err := os.WriteFile(other, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(exe, target string) (int, string) {
		t.Helper()
		cmd := exec.Command(exe, "-test.run=^TestProxyHelperProcess$")
		cmd.Env = append(os.Environ(), helperProxyEnv+"="+env.proxy, helperURLEnv+"="+target)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper %s: %v (%s)", exe, err, out)
		}
		status, body, _ := strings.Cut(string(out), "\n")
		code, err := strconv.Atoi(status)
		if err != nil {
			t.Fatalf("helper output %q", out)
		}
		return code, body
	}
	code, body := run(self, "http://api.test.internal/allowed/child")
	if code != 200 {
		t.Fatalf("registered child: %d %s", code, body)
	}
	checkInjected(t, env.up.last(t))
	e := env.ev.find("access.allowed", "/allowed/child")
	if e == nil || e["spiffe_id"] != "spiffe://writ.local/agent/helper" || e["detail.via"] != "process" || e["detail.pid"] == "" {
		t.Errorf("event = %v", e)
	}
	before := env.up.count()
	code, body = run(other, "http://api.test.internal/allowed/child2")
	if code != http.StatusProxyAuthRequired || !strings.Contains(body, "writ entry create") {
		t.Errorf("unregistered child: %d %s, want 407 saying how to get an identity", code, body)
	}
	if env.up.count() != before {
		t.Error("the unregistered child's request reached the upstream")
	}
}

func TestProxyMTLS(t *testing.T) {
	env := setupProxy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// This test process runs the helper executable, so it is
	// spiffe://writ.local/agent/helper.
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(env.in.addr))
	if err != nil {
		t.Fatalf("FetchX509SVID: %v", err)
	}
	var cert tls.Certificate
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	cert.PrivateKey = svid.PrivateKey
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(env.caFile)
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	resp, err := c.Get("https://" + env.in.srv.ProxyTLSAddr() + "/svc/api/allowed/mtls")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("mTLS call: %d %s", resp.StatusCode, body)
	}
	checkInjected(t, env.up.last(t))
	e := env.ev.find("access.allowed", "/allowed/mtls")
	if e == nil || e["detail.via"] != "mtls" || e["spiffe_id"] != "spiffe://writ.local/agent/helper" || e["instance"] != svid.Certificates[0].Subject.SerialNumber {
		t.Errorf("event = %v", e)
	}
}

// Two Services may not claim the same host: the apply is refused before
// anything is stored, and the proxy keeps routing as before.
func TestProxyServiceConflict(t *testing.T) {
	cfg := testConfig(t.TempDir())
	in := start(t, cfg)
	svc := func(name, host string) string {
		return fmt.Sprintf("apiVersion: writ.dev/v1\nkind: Service\nmetadata: {name: %s}\nspec:\n  upstream: http://127.0.0.1:1\n  match: {host: %s}\n", name, host)
	}
	apply(t, in.client, "a.yaml", svc("a", "api.example"))
	_, err := in.client.Apply(context.Background(), apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "b.yaml", Content: svc("b", "api.example")}}})
	if err == nil || !strings.Contains(err.Error(), "host api.example is also matched by Service/") {
		t.Fatalf("conflicting apply: %v", err)
	}
	if _, err := in.client.GetResource(context.Background(), "Service", "b"); err == nil {
		t.Error("the refused Service was stored")
	}
	// Changing the one Service in place is not a conflict with itself.
	apply(t, in.client, "a.yaml", svc("a", "api2.example"))
}
