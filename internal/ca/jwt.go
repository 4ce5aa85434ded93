package ca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// JWTSVIDParams describes one JWT-SVID to sign.
type JWTSVIDParams struct {
	// ID is the SPIFFE ID, carried as "sub". It must be in the authority's
	// trust domain.
	ID spiffeid.ID
	// Audience is the "aud" claim: at least one non-empty audience.
	Audience []string
	// TTL is the requested lifetime; 0 means the configured default. It is
	// capped at the signing key's NotAfter.
	TTL time.Duration
	// Instance, when set, is carried as the claim "agent_instance".
	Instance string
}

// svidClaims is the JWT-SVID claim set.
type svidClaims struct {
	Subject  string       `json:"sub"`
	Audience jwt.Audience `json:"aud"`
	Expiry   int64        `json:"exp"`
	IssuedAt int64        `json:"iat"`
	Instance string       `json:"agent_instance,omitempty"`
}

// SignJWTSVID signs a JWT-SVID for p with the active JWT key, per the SPIFFE
// JWT-SVID specification: header alg ES256, kid and typ "JWT"; claims sub,
// aud, exp and iat. It returns the token and its expiry.
func (a *Authority) SignJWTSVID(ctx context.Context, p JWTSVIDParams) (string, time.Time, error) {
	if err := a.checkID(p.ID); err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID: %w", err)
	}
	if len(p.Audience) == 0 {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: no audience given", p.ID)
	}
	for i, aud := range p.Audience {
		if aud == "" {
			return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: audience %d is empty", p.ID, i+1)
		}
	}
	if err := checkInstance(p.Instance); err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: %w", p.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: %w", p.ID, err)
	}
	k := a.snapshot().jwt
	now := a.now()
	_, notAfter, err := a.lifetime(k, now, p.TTL, a.jwtSVIDTTL)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: %w", p.ID, err)
	}
	// NumericDates are whole seconds; round exp down so it never passes
	// the key's NotAfter.
	exp := notAfter.Unix()
	if exp <= now.Unix() {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: jwt key %s expires within a second and was not replaced; check that the authority's rotation loop (Run) is running and see its errors", p.ID, k.id)
	}
	payload, err := json.Marshal(svidClaims{
		Subject:  p.ID.String(),
		Audience: jwt.Audience(p.Audience),
		Expiry:   exp,
		IssuedAt: now.Unix(),
		Instance: p.Instance,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: %w", p.ID, err)
	}
	token, err := sign(k.jws, payload)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: %w", p.ID, err)
	}
	return token, time.Unix(exp, 0).UTC(), nil
}

// SignJWT signs an arbitrary claim set with the active JWT key (ES256, with
// kid) and the given typ header, such as "at+jwt" for RFC 9068 access
// tokens. The claims are the caller's: nothing is added or capped. They
// must carry a numeric "exp" in the future and no later than the signing
// key's NotAfter, so that the key outlives the token in every bundle.
// Verifiers find the public key by kid in [Authority.JWTBundle].
func (a *Authority) SignJWT(ctx context.Context, typ string, claims map[string]any) (string, error) {
	if typ == "" || len(typ) > 64 {
		return "", fmt.Errorf("sign JWT: typ %q must be 1 to 64 characters", typ)
	}
	for i := 0; i < len(typ); i++ {
		if typ[i] <= ' ' || typ[i] > '~' {
			return "", fmt.Errorf("sign JWT: typ %q has byte %#x; only printable ASCII without spaces is allowed", typ, typ[i])
		}
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	k := a.snapshot().jwt
	now := a.now()
	exp, err := numericDate(claims["exp"])
	switch {
	case err != nil:
		return "", fmt.Errorf("sign JWT: claim exp: %w", err)
	case !exp.After(now):
		return "", fmt.Errorf("sign JWT: claim exp %s is not in the future", exp.UTC().Format(time.RFC3339))
	case exp.After(k.notAfter):
		return "", fmt.Errorf("sign JWT: claim exp %s is after jwt key %s expires (%s); shorten the token's lifetime",
			exp.UTC().Format(time.RFC3339), k.id, k.notAfter.UTC().Format(time.RFC3339))
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign JWT: encode claims: %w", err)
	}
	s, err := k.newJOSESigner(typ)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	token, err := sign(s, payload)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return token, nil
}

// sign signs payload and returns the compact serialization.
func sign(s jose.Signer, payload []byte) (string, error) {
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// numericDate converts a claim value holding a JWT NumericDate (seconds
// since the epoch) to a time.
func numericDate(v any) (time.Time, error) {
	var secs float64
	switch v := v.(type) {
	case nil:
		return time.Time{}, errors.New("missing; every token needs an expiry")
	case int:
		secs = float64(v)
	case int64:
		secs = float64(v)
	case float64:
		secs = v
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a number", v)
		}
		secs = f
	case jwt.NumericDate:
		return v.Time(), nil
	case *jwt.NumericDate:
		if v == nil {
			return time.Time{}, errors.New("missing; every token needs an expiry")
		}
		return v.Time(), nil
	case time.Time:
		return time.Time{}, errors.New("is a time.Time, which encodes as a string; use its Unix() seconds")
	default:
		return time.Time{}, fmt.Errorf("has type %T; want seconds since the epoch as int64 or float64", v)
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 || secs > 1<<40 {
		return time.Time{}, fmt.Errorf("%v is not a valid time in seconds", secs)
	}
	whole := math.Floor(secs)
	return time.Unix(int64(whole), int64((secs-whole)*1e9)), nil
}
