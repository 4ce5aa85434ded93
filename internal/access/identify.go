package access

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/store"
)

// Caller is who makes an access, as enforcement established it.
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

// Conn is what enforcement knows about one client connection. The caller
// found by mTLS is cached for the life of the connection; the caller found
// by process attestation for as long as the process runs the executable it
// was attested with (an exec, or the process's end, makes the next request
// identify it again); revocation is checked per request. A front end keeps
// one per connection, with Local and Remote set before its first use, and
// closes it when the connection ends; it must not be copied.
type Conn struct {
	// Local is the address the connection was accepted on, Remote the
	// client's.
	Local, Remote netip.AddrPort

	mu     sync.Mutex
	done   bool
	caller *Caller // from the connection (mtls or process), nil if none
	err    error
	// image is the process image a cached process caller (or ambiguous
	// outcome) was attested from.
	image *attest.ImageWatch
}

// Close releases what the Conn holds (the watch on the calling process).
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget()
}

// forget drops the cached caller; c.mu is held.
func (c *Conn) forget() {
	if c.image != nil {
		c.image.Close()
		c.image = nil
	}
	c.done, c.caller, c.err = false, nil, nil
}

// Recheck refuses a request on conn when the process it was attributed to
// no longer runs the executable it was attested with. Front ends call it
// where they keep using a caller found earlier on the connection (the
// requests inside an intercepted tunnel); [Enforcer.Identify] does it
// itself.
func (e *Enforcer) Recheck(conn *Conn) error {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.image == nil {
		return nil
	}
	if err := conn.image.Check(); err != nil {
		return unidentified("the process behind this connection is not the one it was attributed to any more (" + err.Error() + "); open a new connection")
	}
	return nil
}

// Presented is what a request shows of its caller.
type Presented struct {
	// PeerCerts is the certificate chain the client presented on a TLS
	// connection, leaf first.
	PeerCerts []*x509.Certificate
	// Token is the writ access token the request carries; nil if none.
	Token *TokenProof
	// Identity is the SPIFFE ID the caller picks when its process
	// matches several identities (the Writ-Identity header).
	Identity string
}

const howToIdentify = "writ could not tell who is calling. Get an identity in one of three ways: " +
	"run the agent on this host and point it at the proxy (HTTP_PROXY=http://127.0.0.1:8181) after registering it with " +
	"`writ entry create --spiffe-id spiffe://writ.local/agent/NAME --selector unix:sha256:<exe digest>`; " +
	"connect to the proxy's TLS listener with an X.509-SVID from the Workload API; " +
	"or send a writ access token for this service (`writ token exchange`)."

// unidentified refuses an access whose caller is not identified.
func unidentified(msg string) *Refusal {
	return &Refusal{Class: Unidentified, Message: "caller not identified", Reason: msg}
}

// Identify establishes the caller of a request on conn for target t (nil
// when the request matched none): an mTLS X.509-SVID, then a writ access
// token for t's audience, then the local process behind a loopback
// connection. It fails with a [Refusal].
func (e *Enforcer) Identify(ctx context.Context, conn *Conn, p *Presented, t *Target) (*Caller, error) {
	// 1. mTLS with an X.509-SVID.
	if len(p.PeerCerts) > 0 {
		c, err := e.fromConn(conn, func() (*Caller, error) { return e.mtlsCaller(p.PeerCerts) })
		if err != nil {
			return nil, unidentified("client certificate refused: " + err.Error())
		}
		return c, nil
	}
	// 2. A writ access token for this target.
	var tokenErr error
	if e.c.Tokens != nil && t != nil && p.Token != nil {
		claims, err := e.c.Tokens.VerifyToken(ctx, *p.Token, t.Audience)
		switch {
		case err == nil:
			return &Caller{SpiffeID: claims.SpiffeID, Instance: claims.Instance, Task: claims.Task, TokenID: claims.ID,
				Labels: e.labelsOf(claims.SpiffeID), Via: "token"}, nil
		case !errors.Is(err, ErrNotWritToken):
			return nil, &Refusal{Class: TokenRefused, Message: "caller not identified", Reason: "access token refused: " + err.Error()}
		}
		tokenErr = err
	}
	// 3. The local process behind a loopback connection.
	if e.c.Attestor != nil && conn.Remote.IsValid() && conn.Remote.Addr().Unmap().IsLoopback() {
		c, err := e.fromConn(conn, func() (*Caller, error) { return e.processCaller(ctx, conn) })
		if err != nil {
			if c, ok := pick(err, p.Identity); ok {
				return c, nil
			}
			var a *ambiguous
			if errors.As(err, &a) {
				if a.chosen != nil && p.Identity == "" {
					return a.chosen, nil // the most specific entry
				}
				if a.chosen != nil {
					return nil, &Refusal{Class: Forbidden, Message: "caller not identified",
						Reason: fmt.Sprintf("the calling process (pid %d) holds no identity %q (Writ-Identity); see `writ entry explain --pid %d`", a.pid, p.Identity, a.pid)}
				}
				return nil, &Refusal{Class: Forbidden, Message: "caller not identified", Reason: err.Error()}
			}
			return nil, unidentified(err.Error() + ". " + howToIdentify)
		}
		return c, nil
	}
	msg := howToIdentify
	if tokenErr != nil {
		msg = "the credential sent is not a writ access token. " + msg
	}
	return nil, unidentified(msg)
}

// fromConn runs find once per connection and caches its outcome.
func (e *Enforcer) fromConn(conn *Conn, find func() (*Caller, error)) (*Caller, error) {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.done && conn.image != nil {
		if err := conn.image.Check(); err != nil {
			// The process exec'd (or exited, leaving the socket to another
			// process): who calls now is a new question.
			e.c.Log.Debug("the process behind a connection changed; identifying it again", "local", conn.Local, "remote", conn.Remote, "error", err)
			conn.forget()
		}
	}
	if !conn.done {
		conn.caller, conn.err = find()
		// Do not cache failures that a retry on the same connection could
		// cure (a new entry registered meanwhile).
		var a *ambiguous
		conn.done = conn.err == nil || errors.As(conn.err, &a)
		if !conn.done && conn.image != nil {
			conn.image.Close()
			conn.image = nil
		}
	}
	return conn.caller, conn.err
}

// mtlsCaller verifies a client certificate chain as an X.509-SVID of the
// bundle and returns its SPIFFE ID and instance (subject serialNumber).
func (e *Enforcer) mtlsCaller(certs []*x509.Certificate) (*Caller, error) {
	if e.c.Bundle == nil {
		return nil, errors.New("this proxy does not accept X.509-SVIDs (no trust bundle configured)")
	}
	id, _, err := x509svid.Verify(certs, e.c.Bundle)
	if err != nil {
		return nil, fmt.Errorf("not a valid X.509-SVID of this trust domain: %v", err)
	}
	return &Caller{SpiffeID: id.String(), Instance: certs[0].Subject.SerialNumber, Labels: e.labelsOf(id.String()), Via: "mtls"}, nil
}

// processCaller attests the process holding the client end of the
// connection and matches it to identities.
func (e *Enforcer) processCaller(ctx context.Context, conn *Conn) (*Caller, error) {
	peer, err := e.c.Attestor.PeerFromTCP(ctx, conn.Local, conn.Remote)
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
	res, err := e.c.Attestor.Attest(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("attest the calling process: %v", err)
	}
	// The outcome is cached for the connection, bound to the executable
	// attested: an exec after this is seen by the next request.
	w, err := e.c.Attestor.WatchImage(peer, res)
	if err != nil {
		return nil, fmt.Errorf("attest the calling process: %v", err)
	}
	conn.image = w
	ids := e.c.Registry.Match(res.Selectors)
	if len(ids) == 0 {
		return nil, fmt.Errorf("no identity is registered for the calling process (pid %d, %s)", res.PID, res.Exe)
	}
	// The most specific entry wins (registry.Choose); the process may
	// still name another of its identities with Writ-Identity.
	if id, _, ok := registry.Choose(ids); ok {
		c := &Caller{SpiffeID: id.SpiffeID, Instance: res.Instance.ID, Labels: id.Labels, Via: "process", PID: res.PID}
		if len(ids) == 1 {
			return c, nil
		}
		return nil, &ambiguous{inst: res.Instance.ID, pid: res.PID, ids: ids, chosen: c}
	}
	// No entry is the most specific: the request must pick one.
	return nil, &ambiguous{inst: res.Instance.ID, pid: res.PID, ids: ids}
}

// ambiguous is cached per connection: the caller picks with a header.
type ambiguous struct {
	inst string
	pid  int
	ids  []store.Entry
	// chosen is the most specific entry's caller, used when the request
	// names no identity; nil when no entry is the most specific.
	chosen *Caller
}

func (a *ambiguous) Error() string {
	var s []string
	for _, id := range a.ids {
		s = append(s, id.SpiffeID)
	}
	return fmt.Sprintf("the calling process (pid %d) matches several identities (%s) and none is the most specific; send the Writ-Identity header naming one (see `writ entry explain --pid %d`)", a.pid, strings.Join(s, ", "), a.pid)
}

// pick resolves an ambiguous process caller with the identity it names.
func pick(err error, want string) (*Caller, bool) {
	var a *ambiguous
	if !errors.As(err, &a) {
		return nil, false
	}
	for _, id := range a.ids {
		if id.SpiffeID == want {
			return &Caller{SpiffeID: id.SpiffeID, Instance: a.inst, Labels: id.Labels, Via: "process", PID: a.pid}, true
		}
	}
	return nil, false
}

// labelsOf returns the labels of the entry with spiffeID (the first, if
// several entries name it).
func (e *Enforcer) labelsOf(spiffeID string) map[string]string {
	if e.c.Registry == nil {
		return nil
	}
	for _, id := range e.c.Registry.List() {
		if id.SpiffeID == spiffeID {
			return id.Labels
		}
	}
	return nil
}
