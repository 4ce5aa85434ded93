package token

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Token type identifiers (RFC 8693 §3) and the JOSE typ of access tokens
// (RFC 9068 §2.1).
const (
	TypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
	TypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	GrantExchange    = "urn:ietf:params:oauth:grant-type:token-exchange"
	AccessTokenType  = "at+jwt"
	maxTokenBytes    = 8 << 10 // a larger token is refused before parsing
	defaultLeeway    = 30 * time.Second
	defaultLifetime  = 5 * time.Minute
	thumbprintSHA256 = "x5t#S256"
)

// Claims are the claims of a writ access token (RFC 9068 plus writ's
// agent, task and binding claims).
type Claims struct {
	Issuer               string            `json:"iss"`
	Subject              string            `json:"sub"` // the agent's SPIFFE ID
	Audience             Audience          `json:"aud"`
	Expiry               int64             `json:"exp"`
	IssuedAt             int64             `json:"iat"`
	NotBefore            int64             `json:"nbf,omitempty"`
	ID                   string            `json:"jti"`
	ClientID             string            `json:"client_id"`
	Scope                string            `json:"scope,omitempty"` // space-separated
	Instance             string            `json:"agent_instance,omitempty"`
	Task                 string            `json:"task,omitempty"`
	Purpose              string            `json:"purpose,omitempty"`
	OnBehalfOf           string            `json:"on_behalf_of,omitempty"`
	Act                  *Actor            `json:"act,omitempty"`
	Cnf                  *Confirmation     `json:"cnf,omitempty"`
	SingleUse            bool              `json:"single_use,omitempty"`
	AuthorizationDetails []json.RawMessage `json:"authorization_details,omitempty"`
}

// Actor is the RFC 8693 §4.1 act claim: who is acting for the subject,
// nested when the actor itself acted for another.
type Actor struct {
	Subject  string `json:"sub"`
	Instance string `json:"agent_instance,omitempty"`
	Act      *Actor `json:"act,omitempty"`
}

// Confirmation is the cnf claim: the key the token is bound to (RFC 8705
// §3.1 certificate thumbprint, RFC 9449 §6.1 JWK thumbprint).
type Confirmation struct {
	X5tS256 string `json:"x5t#S256,omitempty"`
	JKT     string `json:"jkt,omitempty"`
}

// Scopes returns the scope claim as a list.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool {
	for _, x := range strings.Fields(c.Scope) {
		if x == s {
			return true
		}
	}
	return false
}

// ExpiresAt returns exp as a time.
func (c *Claims) ExpiresAt() time.Time { return time.Unix(c.Expiry, 0).UTC() }

// Audience is the aud claim: a string or an array of strings on the wire
// (RFC 7519 §4.1.3); writ writes a single audience as a string.
type Audience []string

// MarshalJSON writes one audience as a string and several as an array.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = Audience{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = list
	return nil
}

// Contains reports whether a includes s.
func (a Audience) Contains(s string) bool {
	for _, x := range a {
		if x == s {
			return true
		}
	}
	return false
}
