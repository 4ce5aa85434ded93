package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/store"
)

// Caller is who made a request, as the proxy established it.
type Caller struct {
	SpiffeID string
	Instance string
	Labels   map[string]string
	// Via is how the caller was identified: mtls, token or process.
	Via string
	// TokenID and Task come from a writ access token.
	TokenID string
	Task    string
	// PID is the attested process, for Via process.
	PID int
}

// Identity header names a caller may send. They never reach an upstream.
const (
	// HeaderIdentity picks one SPIFFE ID when a process matches several.
	HeaderIdentity = "Writ-Identity"
	// HeaderTask names the task a call belongs to.
	HeaderTask = "Writ-Task"
)

// connInfo is what the proxy knows about one client connection. The
// caller found by process attestation or mTLS is cached for the life of the
// connection (its holder cannot change); revocation is still checked per
// request.
type connInfo struct {
	local, remote netip.AddrPort

	mu     sync.Mutex
	done   bool
	caller *Caller // from the connection (mtls or process), nil if none
	err    error

	// For connections inside an intercepted CONNECT tunnel.
	tunnel *tunnelInfo
}

type tunnelInfo struct {
	caller  *Caller
	service *Service
	host    string // host:port the client asked for
}

type connKey struct{}

// ConnContext is the http.Server ConnContext hook: it records the client
// connection so that the proxy can attribute requests to its process.
func (p *Proxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	ci := &connInfo{}
	if a, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		ci.local = a
	}
	if a, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		ci.remote = a
	}
	return context.WithValue(ctx, connKey{}, ci)
}

func connFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connKey{}).(*connInfo)
	if ci == nil {
		ci = &connInfo{}
	}
	return ci
}

// identifyError is an identification failure with the status to answer.
type identifyError struct {
	status int
	msg    string
}

func (e *identifyError) Error() string { return e.msg }

const howToIdentify = "writ could not tell who is calling. Get an identity in one of three ways: " +
	"run the agent on this host and point it at the proxy (HTTP_PROXY=http://127.0.0.1:8181) after registering it with " +
	"`writ entry create --spiffe-id spiffe://writ.local/agent/NAME --selector unix:sha256:<exe digest>`; " +
	"connect to the proxy's TLS listener with an X.509-SVID from the Workload API; " +
	"or send a writ access token for this service (`writ token exchange`)."

// identify establishes the caller of r: mTLS SVID, then writ access token,
// then the local process behind a loopback connection.
func (p *Proxy) identify(ctx context.Context, r *http.Request, svc *Service, forward bool) (*Caller, error) {
	ci := connFrom(ctx)
	if ci.tunnel != nil && ci.tunnel.caller != nil {
		return ci.tunnel.caller, nil
	}
	unauth := http.StatusUnauthorized
	if forward {
		unauth = http.StatusProxyAuthRequired
	}
	// 1. mTLS with an X.509-SVID.
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c, err := p.fromConn(ctx, ci, func() (*Caller, error) { return p.mtlsCaller(r) })
		if err != nil {
			return nil, &identifyError{unauth, "client certificate refused: " + err.Error()}
		}
		return c, nil
	}
	// 2. A writ access token for this service.
	var tokenErr error
	if p.c.Tokens != nil && svc != nil && hasToken(r) {
		claims, err := p.c.Tokens.VerifyRequest(ctx, r, svc.Audience)
		switch {
		case err == nil:
			return &Caller{SpiffeID: claims.SpiffeID, Instance: claims.Instance, Task: claims.Task, TokenID: claims.ID,
				Labels: p.labelsOf(claims.SpiffeID), Via: "token"}, nil
		case !errors.Is(err, ErrNotWritToken):
			return nil, &identifyError{http.StatusUnauthorized, "access token refused: " + err.Error()}
		}
		tokenErr = err
	}
	// 3. The local process behind a loopback connection.
	if p.c.Attestor != nil && ci.remote.IsValid() && ci.remote.Addr().Unmap().IsLoopback() {
		c, err := p.fromConn(ctx, ci, func() (*Caller, error) { return p.processCaller(ctx, ci) })
		if err != nil {
			if c, ok := pick(err, r); ok {
				return c, nil
			}
			var a *ambiguous
			if errors.As(err, &a) {
				return nil, &identifyError{http.StatusForbidden, err.Error()}
			}
			return nil, &identifyError{unauth, err.Error() + ". " + howToIdentify}
		}
		return c, nil
	}
	msg := howToIdentify
	if tokenErr != nil {
		msg = "the credential sent is not a writ access token. " + msg
	}
	return nil, &identifyError{unauth, msg}
}

// fromConn runs find once per connection and caches its outcome.
func (p *Proxy) fromConn(ctx context.Context, ci *connInfo, find func() (*Caller, error)) (*Caller, error) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if !ci.done {
		ci.caller, ci.err = find()
		// Do not cache failures that a retry on the same connection could
		// cure (a new entry registered meanwhile).
		var a *ambiguous
		ci.done = ci.err == nil || errors.As(ci.err, &a)
	}
	return ci.caller, ci.err
}

func hasToken(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	return strings.HasPrefix(a, "Bearer ") || strings.HasPrefix(a, "DPoP ") || r.Header.Get("DPoP") != ""
}

// mtlsCaller verifies the client certificate as an X.509-SVID of the
// bundle and returns its SPIFFE ID and instance (subject serialNumber).
func (p *Proxy) mtlsCaller(r *http.Request) (*Caller, error) {
	if p.c.Bundle == nil {
		return nil, errors.New("this proxy does not accept X.509-SVIDs (no trust bundle configured)")
	}
	id, _, err := x509svid.Verify(r.TLS.PeerCertificates, p.c.Bundle)
	if err != nil {
		return nil, fmt.Errorf("not a valid X.509-SVID of this trust domain: %v", err)
	}
	leaf := r.TLS.PeerCertificates[0]
	return &Caller{SpiffeID: id.String(), Instance: leaf.Subject.SerialNumber, Labels: p.labelsOf(id.String()), Via: "mtls"}, nil
}

// processCaller attests the process holding the client end of the
// connection and matches it to identities.
func (p *Proxy) processCaller(ctx context.Context, ci *connInfo) (*Caller, error) {
	peer, err := p.c.Attestor.PeerFromTCP(ctx, ci.local, ci.remote)
	if err != nil {
		switch {
		case errors.Is(err, attest.ErrNoTCPPeer):
			return nil, errors.New("no local process holds this connection (it comes from another host, container or network namespace)")
		case errors.Is(err, attest.ErrSharedSocket):
			return nil, errors.New("the connection is shared by several processes, so it cannot be attributed to one")
		}
		return nil, fmt.Errorf("find the process behind the connection: %v", err)
	}
	defer peer.Close()
	res, err := p.c.Attestor.Attest(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("attest the calling process: %v", err)
	}
	ids := p.c.Registry.Match(res.Selectors)
	switch len(ids) {
	case 0:
		return nil, fmt.Errorf("no identity is registered for the calling process (pid %d, %s)", res.PID, res.Exe)
	case 1:
		id := ids[0]
		return &Caller{SpiffeID: id.SpiffeID, Instance: res.Instance.ID, Labels: id.Labels, Via: "process", PID: res.PID}, nil
	}
	// Several identities: the request must pick one; keep them all.
	return nil, &ambiguous{inst: res.Instance.ID, pid: res.PID, ids: ids}
}

// ambiguous is cached per connection: the caller picks with a header.
type ambiguous struct {
	inst string
	pid  int
	ids  []store.Identity
}

func (a *ambiguous) Error() string {
	var s []string
	for _, id := range a.ids {
		s = append(s, id.SpiffeID)
	}
	return fmt.Sprintf("the calling process (pid %d) matches several identities (%s); send the %s header naming one", a.pid, strings.Join(s, ", "), HeaderIdentity)
}

// pick resolves an ambiguous process caller with the Writ-Identity header.
func pick(err error, r *http.Request) (*Caller, bool) {
	var a *ambiguous
	if !errors.As(err, &a) {
		return nil, false
	}
	want := r.Header.Get(HeaderIdentity)
	for _, id := range a.ids {
		if id.SpiffeID == want {
			return &Caller{SpiffeID: id.SpiffeID, Instance: a.inst, Labels: id.Labels, Via: "process", PID: a.pid}, true
		}
	}
	return nil, false
}

// labelsOf returns the labels of the entry with spiffeID (the first, if
// several entries name it).
func (p *Proxy) labelsOf(spiffeID string) map[string]string {
	if p.c.Registry == nil {
		return nil
	}
	for _, id := range p.c.Registry.List() {
		if id.SpiffeID == spiffeID {
			return id.Labels
		}
	}
	return nil
}
