// Package proxy is writ's access proxy: the HTTP front end of the
// enforcement core ([access]) that agents reach services through, with no
// code change (HTTP_PROXY / HTTPS_PROXY) or by reverse route
// (/svc/NAME/...). For every request it finds the Service it is for,
// hands what the request shows of its caller (client certificate, bearer
// token, loopback addresses) to [access.Enforcer.Identify], turns the
// request into an [access.Request] for [access.Enforcer.Enforce], and
// answers the [access.Outcome]: a refusal as a JSON error, an allow by
// stripping every credential the caller sent, injecting the upstream
// credential the outcome carries and forwarding the request with
// streaming bodies. The finished request goes back to
// [access.Enforcer.Record] for its one audit event.
//
// One listener serves all modes: reverse routes (path prefix or Host
// header), absolute-form forward requests, and CONNECT tunnels, which are
// either spliced after a host:port policy check or, for services marked
// intercept, terminated with a leaf from the proxy's own [CA] so that full
// L7 policy and injection apply before TLS is re-originated upstream.
package proxy

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/writ-dev/writ/internal/access"
)

// Config configures a [Proxy]. Enforcer is required; without CA no
// interception.
type Config struct {
	// Enforcer identifies callers, decides and records every request.
	Enforcer *access.Enforcer
	CA       *CA
	Log      *slog.Logger
	// MaxRequestBody bounds request bodies (default 64 MiB; negative: no
	// limit).
	MaxRequestBody int64
	// Transport, when set, replaces the upstream transport (tests).
	Transport func(*Service) http.RoundTripper
	// MCP, when set, serves origin-form requests for /mcp, /mcp/... and
	// /.well-known/oauth-protected-resource/mcp... (the MCP gateway,
	// which identifies callers with [ConnFrom] and the same Enforcer).
	MCP http.Handler
}

// Proxy is the access proxy handler. It is safe for concurrent use.
type Proxy struct {
	c     Config
	table atomic.Pointer[Table]

	mu         sync.Mutex
	transports map[*Service]http.RoundTripper

	tunnels   sync.WaitGroup
	tunnelMu  sync.Mutex
	openConns map[net.Conn]struct{}
	inner     map[*http.Server]struct{} // servers of intercepted tunnels
	closing   bool

	// isWritToken is c.Enforcer.HoldsWritToken, made once.
	isWritToken func(string) bool

	// conns are the client connections of the proxy's listeners (net.Conn
	// -> *connInfo), so that what enforcement holds for one is released
	// when it closes.
	conns sync.Map
}

// New returns a Proxy with an empty service table.
func New(c Config) (*Proxy, error) {
	if c.Enforcer == nil {
		return nil, errors.New("create access proxy: an access enforcer is required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.MaxRequestBody == 0 {
		c.MaxRequestBody = 64 << 20
	}
	p := &Proxy{c: c, transports: map[*Service]http.RoundTripper{}, openConns: map[net.Conn]struct{}{}, inner: map[*http.Server]struct{}{},
		isWritToken: c.Enforcer.HoldsWritToken}
	t, _ := NewTable(nil)
	p.table.Store(t)
	return p, nil
}

// SetServices installs a new routing table. Requests in flight keep the
// table they started with; idle upstream connections of replaced services
// are closed.
func (p *Proxy) SetServices(t *Table) {
	old := p.table.Swap(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, rt := range p.transports {
		if old != nil && t.Get(s.Name) != s {
			if tr, ok := rt.(*http.Transport); ok {
				tr.CloseIdleConnections()
			}
			delete(p.transports, s)
		}
	}
}

// Services returns the current routing table.
func (p *Proxy) Services() *Table { return p.table.Load() }

// newRequestID returns a random request id: "req_" and 16 characters of
// rand.Text's alphabet (80 bits), made with one allocation.
func newRequestID() string {
	var b [10]byte
	var enc [16]byte
	rand.Read(b[:])
	base32.StdEncoding.Encode(enc[:], b[:])
	var id strings.Builder
	id.Grow(4 + len(enc))
	id.WriteString("req_")
	id.Write(enc[:])
	return id.String()
}

// Flush waits until the audit events of finished requests are recorded.
func (p *Proxy) Flush() { p.c.Enforcer.Flush() }
