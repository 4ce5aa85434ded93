package access

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// accessTokenType is the JOSE typ of writ access tokens (RFC 9068).
const accessTokenType = "at+jwt"

// HoldsWritToken reports whether s (a header value, a cookie string, ...)
// contains a writ access token anywhere in it: a compact JWT whose header
// says typ at+jwt and whose issuer is this writ (Config.Issuer). The
// signature is not checked: anything that claims to be one is treated as
// one. Front ends strip such values before forwarding, so that a caller's
// writ token never reaches an upstream whatever header it is put in. A
// value with more than 32 places that could start a JWT is reported as
// holding one without looking further (that bounds the work on hostile
// values). It reports false when no issuer is configured.
func (e *Enforcer) HoldsWritToken(s string) bool {
	if e.c.Issuer == "" {
		return false
	}
	for tries := 0; ; tries++ {
		i := strings.Index(s, "eyJ") // base64url of `{"`, how a JWT starts
		if i < 0 {
			return false
		}
		if tries == maxCandidates {
			return true // too many to look at: stripping it is the safe side
		}
		s = s[i:]
		if e.isWritToken(s) {
			return true
		}
		s = s[3:]
	}
}

// Bounds on the segments of a token looked at: a writ token's header is
// about 100 bytes, its claims a few hundred. They also bound the work on a
// value made of many "eyJ".
const (
	maxCandidates    = 32
	maxHeaderSegment = 256
	maxClaimsSegment = 8 << 10
)

// segment returns the token bytes at the start of s up to a '.', and what
// follows the '.'; ok is false when there is no '.' within max bytes.
func segment(s string, max int) (seg, rest string, ok bool) {
	for n := 0; n < len(s) && n <= max; n++ {
		switch c := s[n]; {
		case c == '.':
			return s[:n], s[n+1:], true
		case !isTokenByte(c):
			return "", "", false
		}
	}
	return "", "", false
}

// isTokenByte reports a base64url byte.
func isTokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// isWritToken reports whether s starts with a compact JWT of type at+jwt
// issued by this writ (its signature, after the second '.', is not read).
func (e *Enforcer) isWritToken(s string) bool {
	h, rest, ok := segment(s, maxHeaderSegment)
	if !ok {
		return false
	}
	p, _, ok := segment(rest, maxClaimsSegment)
	if !ok {
		return false
	}
	var head struct {
		Typ string `json:"typ"`
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if !decodeSegment(h, &head) || !strings.EqualFold(head.Typ, accessTokenType) && !strings.EqualFold(head.Typ, "application/"+accessTokenType) {
		return false
	}
	return decodeSegment(p, &claims) && claims.Iss == e.c.Issuer
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	return err == nil && json.Unmarshal(b, v) == nil
}
