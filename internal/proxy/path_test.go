package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/policy"
)

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{"/allowed/x", true},
		{"/allowed/a%2Fb/c", true},
		{"/allowed/file.txt", true},
		{"/allowed/.well-known/x", true},
		{"/allowed/...", true},
		{"/allowed/a..b/", true},
		{"/allowed/%41", true},
		{"/allowed/%2541", false},
		{"/allowed/00%2500", false},
		{"/", true},
		{"/allowed/..;/admin/x", false},
		{"/allowed/..\\admin/x", false},
		{"/allowed/%5c..%5cadmin/x", false},
		{"/allowed/%5C..%5Cadmin/x", false},
		{"/allowed/../admin/x", false},
		{"/allowed/./x", false},
		{"/allowed/..", false},
		{"/allowed/.", false},
		{"/allowed/%2e%2e/admin", false},
		{"/allowed/%2E%2E/admin", false},
		{"/allowed/.%2e/admin", false},
		{"/allowed/..%2fadmin", false},
		{"/allowed/x%2f..%2f..%2fadmin", false},
		{"/allowed;jsessionid=1/x", false},
		{"/admin%3b/x", false},
		{"/allowed/%252e%252e/admin", false},
		{"/allowed/%252f", false},
		{"/allowed/%255c", false},
		{"/allowed/%25%32%65%25%32%65/admin", false},
		{"/allowed/%00", false},
		{"/allowed/%0a", false},
		{"/allowed/%7f", false},
		{"/allowed/100%25", true},
	} {
		u, err := url.ParseRequestURI(tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		err = checkPath(u.Path, u.EscapedPath())
		if (err == nil) != tc.ok {
			t.Errorf("checkPath(%q) = %v, want ok %v", tc.raw, err, tc.ok)
		}
	}
}

// readings are what servers make of a path the proxy forwards: the path
// decoded once, with ";params" dropped from each segment (Tomcat, Jetty),
// with \ as a separator (IIS), decoded twice; each with dot segments
// resolved.
func readings(escaped string) []string {
	once, err := url.PathUnescape(escaped)
	if err != nil {
		return nil
	}
	var out []string
	segs := strings.Split(once, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		segs[i] = s
	}
	out = append(out, resolveDots(strings.Join(segs, "/")), resolveDots(strings.ReplaceAll(once, "\\", "/")))
	if twice, err := url.PathUnescape(once); err == nil {
		out = append(out, resolveDots(twice))
	}
	return out
}

func resolveDots(p string) string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case ".":
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// FuzzCheckPath: a path the proxy accepts is read by every kind of
// server as the path policy decided on.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/a/..;/b", "/a/%2e%2e/b", "/a/%5c..%5cb", "/a%2Fb", "/a/%252e%252e/b", "/a;x/b", "/a/%25%32%65"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil || u.Opaque != "" || u.Host != "" || !strings.HasPrefix(raw, "/") {
			return
		}
		if checkPath(u.Path, u.EscapedPath()) != nil {
			return
		}
		for _, r := range readings(u.EscapedPath()) {
			if r != u.Path {
				t.Fatalf("accepted %q: policy sees %q, a server reads %q", raw, u.Path, r)
			}
		}
	})
}

// rawUpstream is an upstream that logs the request line of every request
// as it arrives on the wire, and answers 200.
type rawUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

func newRawUpstream(t *testing.T) *rawUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.lines = append(u.lines, req.Method+" "+req.RequestURI+" "+req.Proto)
		u.mu.Unlock()
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

func (u *rawUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.lines...)
}

// rawGet sends a request line as written, which no HTTP client would.
func rawGet(t *testing.T, addr, target string, header ...string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer test:spiffe://writ.local/agent/a\r\nConnection: close\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	io.WriteString(c, req+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPathConfusion (#12 item 1): with a policy that allows GET /allowed/**,
// paths an upstream could read as another path never reach it; the ones
// that do arrive exactly as policy saw them.
func TestPathConfusion(t *testing.T) {
	up := newRawUpstream(t)
	f := newFixture(t, "http://"+up.ln.Addr().String(), "", func(c *fixtureConfig) {
		c.Policy = newEngine(t, `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: p}
spec:
  subjects: [spiffe://writ.local/agent/a]
  rules:
    - {name: allowed, effect: allow, targets: [{http: {service: up, methods: [GET], paths: ["/allowed/**"]}}]}
`)
	})
	addr := f.front.Listener.Addr().String()
	for _, p := range []string{
		"/svc/up/allowed/..;/admin/x",
		"/svc/up/allowed/..\\admin/x",
		"/svc/up/allowed/%5c..%5cadmin/x",
		"/svc/up/allowed/%2e%2e/admin/x",
		"/svc/up/allowed/../admin/x",
		"/svc/up/allowed/..%2fadmin/x",
		"/svc/up/allowed;x=1/../admin",
		"/svc/up/allowed/%252e%252e/admin/x",
	} {
		if code := rawGet(t, addr, p); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", p, code)
		}
	}
	if got := up.seen(); len(got) != 0 {
		t.Fatalf("the upstream got %q", got)
	}
	f.p.Flush()
	if e := f.events.Latest(); e.Type != audit.AccessDenied || !strings.Contains(e.Reason, "request path") {
		t.Errorf("event of a refused path %+v", e)
	}
	// Paths policy allows arrive exactly as policy saw them (an encoded
	// slash stays encoded; policy saw it as a separator).
	for _, tc := range []struct{ path, want string }{
		{"/svc/up/allowed/x", "GET /allowed/x HTTP/1.1"},
		{"/svc/up/allowed/a%2Fb?q=1", "GET /allowed/a%2Fb?q=1 HTTP/1.1"},
		{"/svc/up/allowed/file.txt", "GET /allowed/file.txt HTTP/1.1"},
	} {
		if code := rawGet(t, addr, tc.path); code != 200 {
			t.Errorf("GET %s: %d, want 200", tc.path, code)
			continue
		}
		if got := up.seen(); got[len(got)-1] != tc.want {
			t.Errorf("GET %s reached the upstream as %q, want %q", tc.path, got[len(got)-1], tc.want)
		}
	}
}

func newEngine(t testing.TB, src string) *policy.Engine {
	return policy.NewEngine(policy.Config{}, compilePolicy(t, src))
}
