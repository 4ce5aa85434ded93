package proxy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/writ-dev/writ/internal/access"
)

// Identity header names a caller may send. They never reach an upstream.
const (
	// HeaderIdentity picks one SPIFFE ID when a process matches several.
	HeaderIdentity = "Writ-Identity"
	// HeaderTask names the task a call belongs to.
	HeaderTask = "Writ-Task"
)

// connInfo is what the proxy knows about one client connection: its
// [access.Conn], where enforcement caches the caller the connection proves,
// and, inside an intercepted CONNECT tunnel, the tunnel.
type connInfo struct {
	access.Conn

	// For connections inside an intercepted CONNECT tunnel.
	tunnel *tunnelInfo
}

type tunnelInfo struct {
	outer   *connInfo // the connection the tunnel runs in
	caller  *access.Caller
	service *Service
	host    string // host:port the client asked for
}

type connKey struct{}

// ConnContext is the http.Server ConnContext hook: it records the client
// connection so that the proxy can attribute requests to its process.
func (p *Proxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	ci := &connInfo{}
	if a, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		ci.Local = a
	}
	if a, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		ci.Remote = a
	}
	p.conns.Store(c, ci)
	return context.WithValue(ctx, connKey{}, ci)
}

// ConnState is the http.Server ConnState hook: when a client connection
// closes, what enforcement holds for it is released. A hijacked
// connection is released by the code that took it over.
func (p *Proxy) ConnState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateClosed:
		if ci, ok := p.conns.LoadAndDelete(c); ok {
			ci.(*connInfo).Close()
		}
	case http.StateHijacked:
		p.conns.Delete(c)
	}
}

// ConnFrom returns what enforcement knows of the client connection a
// request arrived on (for front ends mounted on the proxy, like the MCP
// gateway); a fresh Conn when ctx holds none.
func ConnFrom(ctx context.Context) *access.Conn { return &connFrom(ctx).Conn }

// isMCPPath reports whether r is for the MCP gateway.
func isMCPPath(r *http.Request) bool {
	if r.Method == http.MethodConnect || r.URL.IsAbs() {
		return false
	}
	p := r.URL.Path
	return p == "/mcp" || strings.HasPrefix(p, "/mcp/") || strings.HasPrefix(p, "/.well-known/oauth-protected-resource/mcp")
}

func connFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connKey{}).(*connInfo)
	if ci == nil {
		ci = &connInfo{}
	}
	return ci
}

// identify establishes the caller of r (see [access.Enforcer.Identify]):
// the caller of the tunnel it came through, or what the connection and
// the request show: client certificate, writ access token, the local
// process behind a loopback connection.
func (p *Proxy) identify(ctx context.Context, r *http.Request, svc *Service) (*access.Caller, error) {
	ci := connFrom(ctx)
	if ci.tunnel != nil && ci.tunnel.caller != nil {
		// The caller of the CONNECT, as long as its process runs what it
		// ran then.
		if err := p.c.Enforcer.Recheck(&ci.tunnel.outer.Conn); err != nil {
			return nil, err
		}
		return ci.tunnel.caller, nil
	}
	pr := access.Presented{Identity: r.Header.Get(HeaderIdentity)}
	if r.TLS != nil {
		pr.PeerCerts = r.TLS.PeerCertificates
	}
	if hasToken(r) {
		pr.Token = &access.TokenProof{Authorization: r.Header.Get("Authorization"), DPoP: r.Header.Get("DPoP"),
			Method: r.Method, URL: requestURL(r)}
		if len(pr.PeerCerts) > 0 {
			pr.Token.PeerCert = pr.PeerCerts[0]
		}
	}
	return p.c.Enforcer.Identify(ctx, &ci.Conn, &pr, svc.accessTarget())
}

func hasToken(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	return strings.HasPrefix(a, "Bearer ") || strings.HasPrefix(a, "DPoP ") || r.Header.Get("DPoP") != ""
}

// requestURL is the URL the client addressed, as a DPoP proof names it.
func requestURL(r *http.Request) string {
	if r.URL.IsAbs() {
		return r.URL.String()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}
