package token

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/revoke"
)

// Ways an agent authenticated.
const (
	ViaMTLS    = "mtls"
	ViaJWTSVID = "jwt-svid"
)

// Caller is an authenticated agent.
type Caller struct {
	ID       spiffeid.ID
	Instance string
	// Labels are the labels of the agent's registration entry, for policy
	// label selectors.
	Labels map[string]string
	// Via is ViaMTLS or ViaJWTSVID.
	Via string
	// Cert is the client certificate when Via is ViaMTLS.
	Cert *x509.Certificate
}

// ErrUnauthenticated reports a caller that did not prove an identity.
var ErrUnauthenticated = errors.New("agent not authenticated")

// Authenticator authenticates agents by their SVIDs: a JWT-SVID whose
// audience includes writ's issuer URL, or the X.509-SVID of an mTLS
// connection (RFC 8705). The agent's instance comes from the SVID (the
// agent_instance claim, the certificate subject serialNumber); revoked
// instances and SPIFFE IDs are refused.
type Authenticator struct {
	// Bundle verifies SVIDs. Required.
	Bundle *Bundle
	// Audience is the audience a JWT-SVID must carry (the issuer URL).
	Audience string
	// Labels returns the registration labels of a SPIFFE ID. Optional.
	Labels func(spiffeID string) map[string]string
	// Revocations refuses revoked instances and SPIFFE IDs. Optional.
	Revocations Revocations
	// Now returns the current time for certificate checks; default
	// time.Now.
	Now func() time.Time

	// svids caches JWT-SVIDs that validated (an agent presents the same
	// one for every exchange during its life); a hit still checks expiry,
	// that the signing key is trusted, and revocation.
	once  sync.Once
	svids *svidCache
}

type svidEntry struct {
	c   Caller
	exp time.Time
	kid string
}

type svidCache struct {
	mu sync.RWMutex
	m  map[[32]byte]svidEntry
}

const maxSVIDCache = 16384

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// JWTSVID authenticates a JWT-SVID.
func (a *Authenticator) JWTSVID(raw string) (Caller, error) {
	if raw == "" {
		return Caller{}, fmt.Errorf("%w: no JWT-SVID given", ErrUnauthenticated)
	}
	if len(raw) > maxTokenBytes {
		return Caller{}, fmt.Errorf("%w: JWT-SVID is over %d bytes", ErrUnauthenticated, maxTokenBytes)
	}
	a.once.Do(func() { a.svids = &svidCache{m: map[[32]byte]svidEntry{}} })
	h := tokenHash(raw)
	now := a.now()
	a.svids.mu.RLock()
	e, ok := a.svids.m[h]
	a.svids.mu.RUnlock()
	if ok && now.Before(e.exp) {
		if _, trusted := a.Bundle.FindJWTAuthority(e.kid); trusted {
			return a.finish(e.c)
		}
	}
	svid, err := jwtsvid.ParseAndValidate(raw, a.Bundle, []string{a.Audience})
	if err != nil {
		return Caller{}, fmt.Errorf("%w: JWT-SVID: %v (fetch a JWT-SVID with audience %q from the Workload API)",
			ErrUnauthenticated, err, a.Audience)
	}
	// go-spiffe allows a minute of clock skew past exp and reads the wall
	// clock; writ's own clock decides, strictly.
	if !now.Before(svid.Expiry) {
		return Caller{}, fmt.Errorf("%w: JWT-SVID expired at %s; fetch a fresh one from the Workload API",
			ErrUnauthenticated, svid.Expiry.Format(time.RFC3339))
	}
	inst, _ := svid.Claims["agent_instance"].(string)
	c := Caller{ID: svid.ID, Instance: inst, Via: ViaJWTSVID}
	if kid := headerKID(raw); kid != "" {
		a.svids.mu.Lock()
		if len(a.svids.m) >= maxSVIDCache {
			for k, x := range a.svids.m {
				if !now.Before(x.exp) {
					delete(a.svids.m, k)
				}
			}
			if len(a.svids.m) >= maxSVIDCache {
				clear(a.svids.m)
			}
		}
		a.svids.m[h] = svidEntry{c: c, exp: svid.Expiry, kid: kid}
		a.svids.mu.Unlock()
	}
	return a.finish(c)
}

// Peer authenticates the X.509-SVID of r's TLS connection. It reports
// false when the connection has no client certificate.
func (a *Authenticator) Peer(r *http.Request) (Caller, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return Caller{}, false, nil
	}
	id, _, err := x509svid.Verify(r.TLS.PeerCertificates, a.Bundle, x509svid.WithTime(a.now()))
	if err != nil {
		return Caller{}, true, fmt.Errorf("%w: client certificate: %v", ErrUnauthenticated, err)
	}
	leaf := r.TLS.PeerCertificates[0]
	c, err := a.finish(Caller{ID: id, Instance: leaf.Subject.SerialNumber, Via: ViaMTLS, Cert: leaf})
	return c, true, err
}

// Request authenticates the agent behind r: its mTLS client certificate,
// or else a JWT-SVID in "Authorization: Bearer".
func (a *Authenticator) Request(r *http.Request) (Caller, error) {
	if c, ok, err := a.Peer(r); ok {
		return c, err
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return Caller{}, fmt.Errorf("%w: present an X.509-SVID over mutual TLS or send Authorization: Bearer JWT-SVID (audience %q)",
			ErrUnauthenticated, a.Audience)
	}
	return a.JWTSVID(strings.TrimSpace(tok))
}

func (a *Authenticator) finish(c Caller) (Caller, error) {
	if a.Revocations != nil {
		if r, dead := a.Revocations.Check(revoke.Target{SpiffeID: c.ID.String(), Instance: c.Instance}); dead {
			return Caller{}, fmt.Errorf("%w: %s %s was revoked", ErrUnauthenticated, r.Kind, r.Value)
		}
	}
	if a.Labels != nil {
		c.Labels = a.Labels(c.ID.String())
	}
	return c, nil
}

// headerKID returns the kid of a compact JWS's protected header ("" when
// it cannot be read).
func headerKID(raw string) string {
	hdr, _, ok := strings.Cut(raw, ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(hdr)
	if err != nil {
		return ""
	}
	var h struct {
		KID string `json:"kid"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.KID
}
