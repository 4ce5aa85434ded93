package token

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// dpopAlgs are the signature algorithms accepted in DPoP proofs: asymmetric
// only (RFC 9449 §4.3 forbids none and MACs).
var dpopAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.PS256, jose.RS256}

// DPoPProof is a verified DPoP proof.
type DPoPProof struct {
	// JKT is the base64url SHA-256 JWK thumbprint (RFC 7638) of the
	// proof's key, the value a bound token carries as cnf.jkt.
	JKT      string
	ID       string // jti
	IssuedAt time.Time
}

type dpopClaims struct {
	JTI string  `json:"jti"`
	HTM string  `json:"htm"`
	HTU string  `json:"htu"`
	IAT float64 `json:"iat"`
	ATH string  `json:"ath,omitempty"`
}

// DPoPCheck is what a DPoP proof must match.
type DPoPCheck struct {
	Method string // htm
	URL    string // htu; compared without query and fragment
	// AccessToken, when set, must hash to the proof's ath.
	AccessToken string
	Now         time.Time
	// MaxAge is how old iat may be; default 60s. Clock skew into the
	// future is allowed up to Leeway (default 5s).
	MaxAge, Leeway time.Duration
	// Replay, when set, refuses a proof jti seen before.
	Replay *ReplayCache
}

// VerifyDPoP checks a DPoP proof JWT per RFC 9449 §4.3 and returns its key
// thumbprint. Errors wrap [ErrDPoP].
func VerifyDPoP(proof string, c DPoPCheck) (*DPoPProof, error) {
	if proof == "" {
		return nil, fmt.Errorf("%w: the DPoP header is missing; this token is DPoP-bound", ErrDPoP)
	}
	if len(proof) > maxTokenBytes {
		return nil, fmt.Errorf("%w: proof is over %d bytes", ErrDPoP, maxTokenBytes)
	}
	jws, err := jose.ParseSignedCompact(proof, dpopAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: proof is not a compact JWS with an asymmetric algorithm", ErrDPoP)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: proof must have one signature", ErrDPoP)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "dpop+jwt") {
		return nil, fmt.Errorf("%w: proof typ %q is not dpop+jwt", ErrDPoP, typ)
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("%w: proof header has no public jwk", ErrDPoP)
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, fmt.Errorf("%w: proof signature does not verify with its jwk", ErrDPoP)
	}
	var cl dpopClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, fmt.Errorf("%w: proof claims are not a JSON object of the DPoP fields", ErrDPoP)
	}
	if cl.JTI == "" || len(cl.JTI) > 256 {
		return nil, fmt.Errorf("%w: proof jti must be 1 to 256 characters", ErrDPoP)
	}
	if cl.HTM != c.Method {
		return nil, fmt.Errorf("%w: proof htm %q does not match the request method %s", ErrDPoP, cl.HTM, c.Method)
	}
	want, err := normalizeHTU(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: request URL %q: %v", ErrDPoP, c.URL, err)
	}
	got, err := normalizeHTU(cl.HTU)
	if err != nil || got != want {
		return nil, fmt.Errorf("%w: proof htu %q does not match the request URL %s", ErrDPoP, cl.HTU, want)
	}
	maxAge, leeway := c.MaxAge, c.Leeway
	if maxAge <= 0 {
		maxAge = 60 * time.Second
	}
	if leeway <= 0 {
		leeway = 5 * time.Second
	}
	iat := time.Unix(int64(cl.IAT), 0)
	if cl.IAT <= 0 || iat.Before(c.Now.Add(-maxAge)) || iat.After(c.Now.Add(leeway)) {
		return nil, fmt.Errorf("%w: proof iat is outside the accepted window of %v", ErrDPoP, maxAge)
	}
	if c.AccessToken != "" {
		sum := sha256.Sum256([]byte(c.AccessToken))
		if cl.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("%w: proof ath does not match the access token", ErrDPoP)
		}
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: thumbprint of proof key: %v", ErrDPoP, err)
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	if c.Replay != nil {
		first, err := c.Replay.Use("dpop:"+jkt+":"+cl.JTI, iat.Add(maxAge+leeway), c.Now)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDPoP, err)
		}
		if !first {
			return nil, fmt.Errorf("%w: proof jti was already used (replayed proof)", ErrDPoP)
		}
	}
	return &DPoPProof{JKT: jkt, ID: cl.JTI, IssuedAt: iat}, nil
}

// normalizeHTU returns scheme://host[:port]/path with scheme and host lower
// case, default ports dropped, query and fragment removed (RFC 9449 §4.3).
func normalizeHTU(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("not an absolute URL")
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}
