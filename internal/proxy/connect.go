package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/access"
)

// serveConnect handles a CONNECT tunnel (HTTPS_PROXY). The target must be
// a Service's host. Without interception the tunnel is allowed or refused
// on host:port (policy sees method CONNECT and path /) and then spliced;
// with intercept: true the proxy terminates TLS and every request inside
// is enforced and injected like any other.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx := r.Context()
	x.req.Path, x.forward = "/", true
	hostport := r.Host
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		p.refuse(w, r, x, access.Refused(&access.Refusal{Class: access.Invalid, Message: fmt.Sprintf("CONNECT target %q is not host:port", hostport)}))
		return
	}
	svc := p.table.Load().ByHost(host, port)
	x.svc, x.req.Target = svc, svc.accessTarget()
	caller, idErr := p.identify(ctx, r, svc)
	x.req.Caller = caller
	if idErr != nil {
		p.refuse(w, r, x, access.Refused(idErr))
		return
	}
	if svc == nil {
		p.refuse(w, r, x, access.Refused(&access.Refusal{Class: access.Forbidden, Reason: fmt.Sprintf("no Service matches %s; the proxy only opens tunnels to hosts a Service names", hostport)}))
		return
	}
	if svc.Spec.Intercept && p.c.CA != nil {
		if err := p.c.Enforcer.Revoked(caller); err != nil {
			p.refuse(w, r, x, access.Refused(err))
			return
		}
		p.intercept(w, r, x, hostport, host)
		return
	}
	// A spliced tunnel: policy decides on host and port, and nothing can
	// be injected.
	x.req.Opaque = true
	out, err := p.c.Enforcer.Enforce(ctx, &x.req)
	if err != nil {
		p.c.Log.ErrorContext(ctx, "proxy request failed", "request_id", x.req.ID, "error", err)
	}
	if out.Effect != access.Allow || out.Class != access.OK {
		p.refuse(w, r, x, out)
		return
	}
	x.out = out
	dctx, cancel := context.WithTimeout(ctx, svc.Connect)
	up, err := (&net.Dialer{}).DialContext(dctx, "tcp", hostport)
	cancel()
	if err != nil {
		writeJSON(w, http.StatusBadGateway, errorBody{Error: fmt.Sprintf("Service/%s: connect to %s: %v", svc.Name, hostport, errText(err)), RequestID: x.req.ID})
		p.c.Enforcer.Record(ctx, &x.req, &x.out, access.Result{Status: http.StatusBadGateway, Reason: "dial upstream failed"})
		return
	}
	client, buf, err := http.NewResponseController(w).Hijack()
	if err == nil {
		defer connFrom(ctx).Close()
	}
	if err != nil {
		up.Close()
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "this connection cannot carry a tunnel", RequestID: x.req.ID})
		p.c.Enforcer.Record(ctx, &x.req, &x.out, access.Result{Status: http.StatusInternalServerError})
		return
	}
	if !p.track(client, up) {
		return
	}
	defer p.untrack(client, up)
	client.SetDeadline(time.Time{})
	io.WriteString(client, "HTTP/1.1 200 Connection Established\r\n\r\n")
	res := access.Result{Status: http.StatusOK}
	res.In, res.Out = splice(client, buf.Reader, up)
	p.c.Enforcer.Record(ctx, &x.req, &x.out, res)
}

// splice copies both ways until either side is done, then closes both.
// It returns the bytes sent upstream and back.
func splice(client net.Conn, pending *bufio.Reader, up io.ReadWriteCloser) (in, out int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var src io.Reader = client
		if pending != nil && pending.Buffered() > 0 {
			src = io.MultiReader(io.LimitReader(pending, int64(pending.Buffered())), client)
		}
		in, _ = io.Copy(up, src)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			up.Close()
		}
	}()
	out, _ = io.Copy(client, up)
	client.Close()
	up.Close()
	wg.Wait()
	return in, out
}

// intercept terminates the tunnel's TLS with a leaf for the host and
// serves the requests inside through the proxy, attributed to the caller
// established at CONNECT.
func (p *Proxy) intercept(w http.ResponseWriter, r *http.Request, x *exchange, hostport, host string) {
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "this connection cannot carry a tunnel", RequestID: x.req.ID})
		return
	}
	outer := connFrom(r.Context())
	defer outer.Close()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	client.SetDeadline(time.Time{})
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		client.Close()
		return
	}
	var raw net.Conn = client
	if buf.Reader.Buffered() > 0 {
		raw = &prefixConn{Conn: client, r: io.MultiReader(io.LimitReader(buf.Reader, int64(buf.Reader.Buffered())), client)}
	}
	tconn := tls.Server(raw, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := h.ServerName
			if name == "" {
				name = host
			}
			if name != host {
				return nil, fmt.Errorf("SNI %q does not match the CONNECT host %q", name, host)
			}
			return p.c.CA.Leaf(name)
		},
	})
	hctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	err = tconn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		p.c.Log.Debug("intercepted TLS handshake failed", "request_id", x.req.ID, "service", x.svc.Name, "error", err)
		tconn.Close()
		return
	}
	ti := &tunnelInfo{outer: outer, caller: x.req.Caller, service: x.svc, host: hostport}
	ln := newOneConnListener(tconn)
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(p.c.Log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, &connInfo{Conn: access.Conn{Local: outer.Local, Remote: outer.Remote}, tunnel: ti})
		},
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				ln.Close()
			}
		},
	}
	p.tunnelMu.Lock()
	closing := p.closing
	if !closing {
		p.inner[srv] = struct{}{}
	}
	p.tunnelMu.Unlock()
	if closing {
		tconn.Close()
		return
	}
	srv.Serve(ln)
	<-ln.done
	p.tunnelMu.Lock()
	delete(p.inner, srv)
	p.tunnelMu.Unlock()
}

// prefixConn reads buffered bytes before the connection's own.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
	once sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	return &oneConnListener{c: c, done: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return dummyAddr{} }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tunnel" }
func (dummyAddr) String() string  { return "tunnel" }

// track registers hijacked connections so that shutdown can close them;
// it reports false (and closes them) when the proxy is shutting down.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.tunnelMu.Lock()
	defer p.tunnelMu.Unlock()
	if p.closing {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.openConns[c] = struct{}{}
	}
	p.tunnels.Add(1)
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.tunnelMu.Lock()
	for _, c := range cs {
		delete(p.openConns, c)
	}
	p.tunnelMu.Unlock()
	p.tunnels.Done()
}

// Shutdown stops tunnels: intercepted tunnels finish their in-flight
// requests (like http.Server.Shutdown); spliced tunnels are given until
// ctx ends and are then closed. Call it after the listeners' servers have
// been shut down (hijacked connections are not theirs to drain).
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.tunnelMu.Lock()
	p.closing = true
	inner := make([]*http.Server, 0, len(p.inner))
	for s := range p.inner {
		inner = append(inner, s)
	}
	p.tunnelMu.Unlock()
	for _, s := range inner {
		s.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { p.tunnels.Wait(); p.c.Enforcer.Flush(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.tunnelMu.Lock()
	for c := range p.openConns {
		c.Close()
	}
	p.tunnelMu.Unlock()
	<-done
	return errors.Join(ctx.Err(), errors.New("closed tunnels that were still open"))
}
