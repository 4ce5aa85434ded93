package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

func TestOutboundHeader(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          http.Header
		want        http.Header
		wantUpgrade string
	}{
		{
			name: "credentials, caller choices and forwarding fields",
			in: http.Header{"Authorization": {"Bearer writ"}, "Proxy-Authorization": {"Basic x"}, "Dpop": {"proof"},
				"Writ-Identity": {"spiffe://writ.local/a"}, "Writ-Task": {"task_1"}, "Forwarded": {"for=1.2.3.4"},
				"X-Forwarded-For": {"1.2.3.4"}, "X-Forwarded-Host": {"h"}, "X-Forwarded-Proto": {"https"},
				"Accept": {"application/json"}, "User-Agent": {"agent/1"}},
			want: http.Header{"Accept": {"application/json"}, "User-Agent": {"agent/1"}},
		},
		{
			name: "hop-by-hop, listed and classic",
			in: http.Header{"Connection": {"keep-alive, X-Hop"}, "X-Hop": {"1"}, "Keep-Alive": {"timeout=5"},
				"Proxy-Connection": {"keep-alive"}, "Te": {"gzip"}, "Trailer": {"X-T"}, "Transfer-Encoding": {"chunked"},
				"Upgrade": {"websocket"}, "X-Kept": {"yes"}},
			want: http.Header{"X-Kept": {"yes"}, "User-Agent": nil},
		},
		{
			name: "trailers announced by the client",
			in:   http.Header{"Te": {"deflate, Trailers;q=1"}},
			want: http.Header{"Te": {"trailers"}, "User-Agent": nil},
		},
		{
			name:        "protocol upgrade",
			in:          http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"}},
			want:        http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"}, "User-Agent": nil},
			wantUpgrade: "websocket",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, up := outboundHeader(tc.in, nil)
			if !equalHeaders(got, tc.want) || up != tc.wantUpgrade {
				t.Errorf("outboundHeader(%v) = %v, %q; want %v, %q", tc.in, got, up, tc.want, tc.wantUpgrade)
			}
		})
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

const withKey = "  credential: {name: key}\n"

// The relay's end of the contract: what reaches the upstream, what comes
// back, and that bodies stream.
func TestRelay(t *testing.T) {
	t.Run("strips and injects both ways", func(t *testing.T) {
		var got http.Header
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.Header.Clone()
			w.Header().Set("Connection", "X-Up-Hop")
			w.Header().Set("X-Up-Hop", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("X-Up", "kept")
			io.WriteString(w, "ok")
		}))
		defer up.Close()
		f := newFixture(t, up.URL, withKey, nil)
		resp, body := f.get(t, "/svc/up/x", "Connection", "X-Hop", "X-Hop", "1", "Dpop", "proof",
			"Writ-Identity", "spiffe://writ.local/agent/a", "X-Forwarded-For", "10.0.0.1", "Te", "trailers", "X-Agent", "kept")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if a := got.Values("Authorization"); len(a) != 1 || a[0] != "Bearer the-secret" {
			t.Errorf("upstream Authorization %q, want the injected credential once", a)
		}
		for _, h := range []string{"X-Hop", "Dpop", "Writ-Identity", "X-Forwarded-For"} {
			if v, ok := got[h]; ok {
				t.Errorf("upstream got %s: %q", h, v)
			}
		}
		if got.Get("X-Agent") != "kept" || got.Get("Te") != "trailers" {
			t.Errorf("upstream header %v", got)
		}
		for _, h := range []string{"X-Up-Hop", "Keep-Alive"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("client got %s: %q", h, v)
			}
		}
		if resp.Header.Get("X-Up") != "kept" {
			t.Errorf("client header %v", resp.Header)
		}
	})

	t.Run("encodings pass through", func(t *testing.T) {
		var asked string
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked = r.Header.Get("Accept-Encoding")
			if asked != "" {
				w.Header().Set("Content-Encoding", asked)
			}
			io.WriteString(w, "body")
		}))
		defer up.Close()
		f := newFixture(t, up.URL, "", nil)
		c := &http.Client{Transport: &http.Transport{DisableCompression: true}} // sends what it is told
		defer c.CloseIdleConnections()
		for _, ae := range []string{"", "gzip"} {
			req, _ := http.NewRequest("GET", f.front.URL+"/svc/up/x", nil)
			req.Header.Set("Authorization", "Bearer test:spiffe://writ.local/agent/a")
			if ae != "" {
				req.Header.Set("Accept-Encoding", ae)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != ae || asked != ae {
				t.Errorf("client sent Accept-Encoding %q; upstream got %q, answer encoded %q", ae, asked, got)
			}
		}
	})

	t.Run("streams the answer", func(t *testing.T) {
		release := make(chan struct{})
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "second\n")
		}))
		defer up.Close()
		defer close(release)
		f := newFixture(t, up.URL, "", nil)
		resp, err := f.send("GET", "/svc/up/stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := readLineWithin(resp.Body, 5*time.Second)
		if err != nil || line != "first" {
			t.Fatalf("first part %q, %v; want it before the upstream finishes", line, err)
		}
	})

	t.Run("streams the request body", func(t *testing.T) {
		gotFirst := make(chan struct{})
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := make([]byte, 4)
			if _, err := io.ReadFull(r.Body, b); err != nil {
				t.Error(err)
				return
			}
			close(gotFirst)
			rest, _ := io.ReadAll(r.Body)
			w.Write(append(b, rest...))
		}))
		defer up.Close()
		f := newFixture(t, up.URL, "", nil)
		pr, pw := io.Pipe()
		go func() {
			io.WriteString(pw, "ping")
			select {
			case <-gotFirst:
				io.WriteString(pw, "pong")
				pw.Close()
			case <-time.After(5 * time.Second):
				pw.CloseWithError(io.ErrUnexpectedEOF) // the body was held back
			}
		}()
		resp, err := f.send("POST", "/svc/up/echo", pr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "pingpong" {
			t.Fatalf("echo %q", b)
		}
		f.p.Flush()
		if e := f.events.Latest(); e.Details["bytes_in"] != "8" || e.Details["bytes_out"] != "8" {
			t.Errorf("event %v", e.Details)
		}
	})

	t.Run("trailers", func(t *testing.T) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "data")
			w.Header().Set("X-Sum", "42")
		}))
		defer up.Close()
		f := newFixture(t, up.URL, "", nil)
		resp, err := f.send("GET", "/svc/up/t", nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Trailer.Get("X-Sum") != "42" {
			t.Errorf("trailer %v", resp.Trailer)
		}
	})

	t.Run("an answer that breaks off is cut off and recorded", func(t *testing.T) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "0123456789")
			w.(http.Flusher).Flush()
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
		}))
		defer up.Close()
		f := newFixture(t, up.URL, "", nil)
		resp, err := f.send("GET", "/svc/up/broken", nil)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Error("the client read a broken answer as complete")
		}
		e := f.waitFor(audit.AccessAllowed)
		if e.Type != audit.AccessAllowed || !strings.Contains(e.Reason, "broke off") || e.Details["bytes_out"] != "10" {
			t.Errorf("event %+v", e)
		}
	})

	t.Run("protocol switch", func(t *testing.T) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "echo" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
				http.Error(w, "no upgrade", 400)
				return
			}
			c, brw, _ := http.NewResponseController(w).Hijack()
			defer c.Close()
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			io.Copy(c, brw)
		}))
		defer up.Close()
		f := newFixture(t, up.URL, "", nil)
		c, err := net.Dial("tcp", f.front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /svc/up/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test:spiffe://writ.local/agent/a\r\n"+
			"Connection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%v %v", resp, err)
		}
		io.WriteString(c, "hello")
		b := make([]byte, 5)
		if _, err := io.ReadFull(br, b); err != nil || string(b) != "hello" {
			t.Fatalf("echo %q %v", b, err)
		}
		c.Close()
		if e := f.waitFor(audit.AccessAllowed); e.Type != audit.AccessAllowed || e.Details["status"] != "101" || e.Details["bytes_in"] != "5" {
			t.Errorf("event %+v", e)
		}
	})
}

// send sends a request as agent a.
func (f *fixture) send(method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, f.front.URL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer test:spiffe://writ.local/agent/a")
	return f.front.Client().Do(req)
}

// waitFor returns the last event once it is of type typ (or after 5s).
// Unlike Flush it does not need the request to have ended before it is
// called, which a client that sees its connection cut cannot know.
func (f *fixture) waitFor(typ audit.Type) audit.Event {
	deadline := time.Now().Add(5 * time.Second)
	for f.events.Latest().Type != typ && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return f.events.Latest()
}

// readLineWithin reads one line from r, failing after d.
func readLineWithin(r io.Reader, d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		ch <- res{strings.TrimSuffix(s, "\n"), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(d):
		return "", io.ErrNoProgress
	}
}
