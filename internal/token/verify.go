package token

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
)

// Verification failures. Every error from [Verifier.Verify] wraps exactly
// one of them, so a resource server can map it to a response (all are 401
// invalid_token, except ErrDPoP which is invalid_dpop_proof).
var (
	ErrMalformed = errors.New("malformed token")
	ErrSignature = errors.New("bad token signature")
	ErrType      = errors.New("wrong token type")
	ErrIssuer    = errors.New("wrong token issuer")
	ErrAudience  = errors.New("token not for this audience")
	ErrExpired   = errors.New("token expired or not yet valid")
	ErrBinding   = errors.New("token binding not satisfied")
	ErrDPoP      = errors.New("invalid DPoP proof")
	ErrRevoked   = errors.New("token revoked")
	ErrReplayed  = errors.New("single-use token already used")
)

// Revocations answers whether a credential is dead. *revoke.List
// implements it.
type Revocations interface {
	Check(revoke.Target) (store.Revocation, bool)
}

// VerifierConfig configures a [Verifier].
type VerifierConfig struct {
	// Issuer is the expected iss (writ's server.public_url). Required.
	Issuer string
	// Keys finds the signing key by kid. Required.
	Keys KeySource
	// Revocations, when set, makes revoked tokens, tasks, instances and
	// SPIFFE IDs fail verification.
	Revocations Revocations
	// Replay is the single-use cache (and DPoP proof jti cache). Default:
	// a fresh cache of 1,000,000 entries. Share one per enforcement point.
	Replay *ReplayCache
	// Emitter, when set, records the use of each single-use token.
	Emitter audit.Emitter
	// Leeway is the allowed clock skew for exp, nbf and iat; default 30s.
	Leeway time.Duration
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// CacheSize bounds the cache of tokens whose signature verified
	// (default 65536; negative disables it). Claims checks, binding,
	// revocation and replay are never cached.
	CacheSize int
}

// VerifyOptions describe the request a token was presented with.
type VerifyOptions struct {
	// Audience is this resource server's audience; the token's aud must
	// contain it. Required.
	Audience string
	// HTTPMethod and HTTPURL are the request's method and external URL,
	// for DPoP proofs.
	HTTPMethod, HTTPURL string
	// DPoPProof is the request's DPoP header.
	DPoPProof string
	// PeerCert is the client certificate of the mTLS connection, if any.
	PeerCert *x509.Certificate
	// SkipReplay checks a single-use token without consuming it (for
	// introspection).
	SkipReplay bool
}

// Verifier checks writ access tokens. It is safe for concurrent use.
type Verifier struct {
	c     VerifierConfig
	cache *sigCache
}

// NewVerifier returns a verifier for c.
func NewVerifier(c VerifierConfig) (*Verifier, error) {
	if c.Issuer == "" {
		return nil, errors.New("token verifier: no issuer configured; set it to writ's server.public_url")
	}
	if c.Keys == nil {
		return nil, errors.New("token verifier: no key source configured")
	}
	if c.Replay == nil {
		c.Replay = NewReplayCache(0)
	}
	if c.Leeway <= 0 {
		c.Leeway = defaultLeeway
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Verifier{c: c, cache: newSigCache(c.CacheSize)}, nil
}

var accessTokenAlgs = []jose.SignatureAlgorithm{jose.ES256}

// Verify checks raw and returns its claims (which the caller must not
// modify). See the package doc for what is checked; each failure wraps one
// of the Err values of this package.
func (v *Verifier) Verify(ctx context.Context, raw string, o VerifyOptions) (*Claims, error) {
	c, err := v.parseCached(raw)
	if err != nil {
		return nil, err
	}
	if err := v.check(ctx, raw, c, o); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseOwn checks that raw is an access token this issuer signed (a
// trusted key, its signature, typ and issuer) and returns its claims,
// whatever its expiry, audience or revocation: the kill switch uses it to
// find the jti of a token an operator pastes.
func (v *Verifier) ParseOwn(raw string) (*Claims, error) {
	c, err := v.parseCached(raw)
	if err != nil {
		return nil, err
	}
	if c.Issuer != v.c.Issuer {
		return nil, fmt.Errorf("%w: iss %q, want %q", ErrIssuer, c.Issuer, v.c.Issuer)
	}
	return c, nil
}

// parseCached is parse with the signature cache.
func (v *Verifier) parseCached(raw string) (*Claims, error) {
	if v.cache == nil || len(raw) > maxTokenBytes {
		c, _, err := v.parse(raw)
		return c, err
	}
	h := tokenHash(raw)
	if e, ok := v.cache.get(h); ok {
		if _, trusted := v.c.Keys.FindJWTAuthority(e.kid); trusted {
			return e.c, nil
		}
	}
	c, kid, err := v.parse(raw)
	if err != nil {
		return nil, err
	}
	v.cache.put(h, sigEntry{c: c, kid: kid}, v.c.Now())
	return c, nil
}

// parse checks the JWS (size, algorithm, typ, kid, signature) and decodes
// the claims.
func (v *Verifier) parse(raw string) (*Claims, string, error) {
	if raw == "" {
		return nil, "", fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(raw) > maxTokenBytes {
		return nil, "", fmt.Errorf("%w: %d bytes is over the %d allowed", ErrMalformed, len(raw), maxTokenBytes)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, "", fmt.Errorf("%w: not a compact JWS (three dot-separated parts)", ErrMalformed)
	}
	jws, err := jose.ParseSignedCompact(raw, accessTokenAlgs)
	if err != nil {
		// Includes alg none, HS256 and every algorithm other than ES256.
		return nil, "", fmt.Errorf("%w: not an ES256 JWS: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", fmt.Errorf("%w: want one signature", ErrMalformed)
	}
	h := jws.Signatures[0].Protected
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, AccessTokenType) && !strings.EqualFold(typ, "application/"+AccessTokenType) {
		return nil, "", fmt.Errorf("%w: typ %q is not at+jwt", ErrType, typ)
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, "", fmt.Errorf("%w: crit header is not supported", ErrMalformed)
	}
	if h.KeyID == "" {
		return nil, "", fmt.Errorf("%w: header has no kid", ErrMalformed)
	}
	key, ok := v.c.Keys.FindJWTAuthority(h.KeyID)
	if !ok {
		return nil, "", fmt.Errorf("%w: signing key %q is not in the trust bundle", ErrSignature, h.KeyID)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, "", fmt.Errorf("%w: signature does not verify with key %q", ErrSignature, h.KeyID)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "", fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if c.Subject == "" || c.ID == "" || c.Expiry == 0 {
		return nil, "", fmt.Errorf("%w: sub, jti and exp are required", ErrMalformed)
	}
	return &c, h.KeyID, nil
}

func (v *Verifier) check(ctx context.Context, raw string, c *Claims, o VerifyOptions) error {
	now := v.c.Now()
	if c.Issuer != v.c.Issuer {
		return fmt.Errorf("%w: iss %q, want %q", ErrIssuer, c.Issuer, v.c.Issuer)
	}
	if o.Audience == "" {
		return fmt.Errorf("%w: the resource server named no audience to check", ErrAudience)
	}
	if !c.Audience.Contains(o.Audience) {
		return fmt.Errorf("%w: aud %q does not include %q", ErrAudience, []string(c.Audience), o.Audience)
	}
	if !now.Before(time.Unix(c.Expiry, 0).Add(v.c.Leeway)) {
		return fmt.Errorf("%w: expired at %s", ErrExpired, c.ExpiresAt().Format(time.RFC3339))
	}
	if c.NotBefore != 0 && now.Add(v.c.Leeway).Before(time.Unix(c.NotBefore, 0)) {
		return fmt.Errorf("%w: not valid before %s", ErrExpired, time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339))
	}
	if c.IssuedAt != 0 && now.Add(v.c.Leeway).Before(time.Unix(c.IssuedAt, 0)) {
		return fmt.Errorf("%w: issued in the future", ErrExpired)
	}
	if err := v.checkBinding(raw, c, o, now); err != nil {
		return err
	}
	if v.c.Revocations != nil {
		if r, dead := v.c.Revocations.Check(revoke.Target{SpiffeID: c.Subject, Instance: c.Instance, Task: c.Task, TokenID: c.ID}); dead {
			return fmt.Errorf("%w: its %s %s was revoked", ErrRevoked, r.Kind, r.Value)
		}
	}
	if c.SingleUse && !o.SkipReplay {
		first, err := v.c.Replay.Use("at:"+c.ID, time.Unix(c.Expiry, 0).Add(v.c.Leeway), now)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrReplayed, err)
		}
		if !first {
			return fmt.Errorf("%w: jti %s was presented before", ErrReplayed, c.ID)
		}
		if v.c.Emitter != nil {
			if err := v.c.Emitter.Emit(ctx, audit.Event{Type: audit.TokenUsed, SpiffeID: c.Subject, Instance: c.Instance,
				Task: c.Task, OnBehalfOf: c.OnBehalfOf, Target: o.Audience, Credential: c.ID, Action: o.HTTPMethod}); err != nil {
				return fmt.Errorf("%w: the use of single-use token %s could not be audited: %v", ErrReplayed, c.ID, err)
			}
		}
	}
	return nil
}

func (v *Verifier) checkBinding(raw string, c *Claims, o VerifyOptions, now time.Time) error {
	if c.Cnf == nil {
		return nil
	}
	if c.Cnf.X5tS256 == "" && c.Cnf.JKT == "" {
		return fmt.Errorf("%w: cnf names no key", ErrBinding)
	}
	if c.Cnf.X5tS256 != "" {
		if o.PeerCert == nil {
			return fmt.Errorf("%w: the token is bound to a client certificate; present it over mutual TLS", ErrBinding)
		}
		if subtle.ConstantTimeCompare([]byte(CertThumbprint(o.PeerCert)), []byte(c.Cnf.X5tS256)) != 1 {
			return fmt.Errorf("%w: the client certificate is not the one the token is bound to", ErrBinding)
		}
	}
	if c.Cnf.JKT != "" {
		p, err := VerifyDPoP(o.DPoPProof, DPoPCheck{Method: o.HTTPMethod, URL: o.HTTPURL, AccessToken: raw, Now: now, Replay: v.c.Replay})
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(c.Cnf.JKT)) != 1 {
			return fmt.Errorf("%w: the DPoP proof is signed by another key than the token is bound to", ErrDPoP)
		}
	}
	return nil
}

// CertThumbprint returns the base64url SHA-256 of a certificate's DER, the
// RFC 8705 x5t#S256 value.
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// introspect checks what introspection reports on: issuer, expiry and
// revocation (not audience, binding or single use, which are the resource
// server's to check).
func (v *Verifier) introspect(c *Claims) error {
	now := v.c.Now()
	if c.Issuer != v.c.Issuer {
		return fmt.Errorf("%w: iss %q", ErrIssuer, c.Issuer)
	}
	if !now.Before(time.Unix(c.Expiry, 0).Add(v.c.Leeway)) {
		return fmt.Errorf("%w: expired at %s", ErrExpired, c.ExpiresAt().Format(time.RFC3339))
	}
	if v.c.Revocations != nil {
		if r, dead := v.c.Revocations.Check(revoke.Target{SpiffeID: c.Subject, Instance: c.Instance, Task: c.Task, TokenID: c.ID}); dead {
			return fmt.Errorf("%w: its %s %s was revoked", ErrRevoked, r.Kind, r.Value)
		}
	}
	return nil
}
