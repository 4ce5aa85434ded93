package token

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// OAuth error codes (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707 §2).
const (
	CodeInvalidRequest = "invalid_request"
	CodeInvalidClient  = "invalid_client"
	CodeInvalidGrant   = "invalid_grant"
	CodeInvalidTarget  = "invalid_target"
	CodeInvalidScope   = "invalid_scope"
	CodeAccessDenied   = "access_denied"
	CodeUnsupported    = "unsupported_grant_type"
	CodeInvalidDPoP    = "invalid_dpop_proof"
	CodeServerError    = "server_error"
)

// Error is an OAuth error response. Description is safe to show the
// client; it never holds a stack trace or an internal cause.
type Error struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func oauthErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// Limits on the token endpoint's form.
const (
	maxFormBytes   = 64 << 10
	maxScopes      = 64
	maxScopeLen    = 128
	maxAudienceLen = 512
	maxDetails     = 16
)

// ExchangeRequest is a decoded RFC 8693 token exchange request.
type ExchangeRequest struct {
	SubjectToken     string
	SubjectTokenType string
	ActorToken       string
	ActorTokenType   string
	// Audience is the one audience asked for (audience or resource).
	Audience string
	Scopes   []string
	Task     string
	// SingleUse asks for a token the enforcement side accepts once.
	SingleUse bool
	// AuthorizationDetails are RFC 9396 entries, each a JSON object with
	// a string "type".
	AuthorizationDetails []json.RawMessage
}

// ParseExchange decodes and checks the parameters of a token exchange. It
// never panics on any input; errors are *Error with the OAuth code.
func ParseExchange(v url.Values) (*ExchangeRequest, error) {
	for k, vs := range v {
		if len(vs) > 1 && k != "audience" && k != "resource" {
			return nil, oauthErr(400, CodeInvalidRequest, "parameter %s is repeated; send each parameter once (RFC 6749 §3.2)", k)
		}
	}
	get := func(k string) string { return v.Get(k) }
	switch gt := get("grant_type"); gt {
	case GrantExchange:
	case "":
		return nil, oauthErr(400, CodeInvalidRequest, "grant_type is missing; use %s", GrantExchange)
	default:
		return nil, oauthErr(400, CodeUnsupported, "grant_type %q is not supported; use %s", clip(gt), GrantExchange)
	}
	r := &ExchangeRequest{
		SubjectToken: get("subject_token"), SubjectTokenType: get("subject_token_type"),
		ActorToken: get("actor_token"), ActorTokenType: get("actor_token_type"), Task: get("task"),
	}
	if r.SubjectToken != "" && r.SubjectTokenType != TypeJWT {
		return nil, oauthErr(400, CodeInvalidRequest, "subject_token_type %q is not supported; send a JWT-SVID with subject_token_type %s",
			clip(r.SubjectTokenType), TypeJWT)
	}
	if r.SubjectToken == "" && r.SubjectTokenType != "" {
		return nil, oauthErr(400, CodeInvalidRequest, "subject_token_type given without subject_token")
	}
	if r.ActorToken != "" && r.ActorTokenType != TypeJWT && r.ActorTokenType != TypeAccessToken {
		return nil, oauthErr(400, CodeInvalidRequest, "actor_token_type %q is not supported; use %s (a JWT-SVID) or %s (a writ access token)",
			clip(r.ActorTokenType), TypeJWT, TypeAccessToken)
	}
	if r.ActorToken == "" && r.ActorTokenType != "" {
		return nil, oauthErr(400, CodeInvalidRequest, "actor_token_type given without actor_token")
	}
	for _, t := range []string{r.SubjectToken, r.ActorToken} {
		if len(t) > maxTokenBytes {
			return nil, oauthErr(400, CodeInvalidRequest, "a token parameter is over %d bytes", maxTokenBytes)
		}
	}
	auds := append(append([]string(nil), v["audience"]...), v["resource"]...)
	switch {
	case len(auds) == 0:
		return nil, oauthErr(400, CodeInvalidTarget, "audience is missing; name the one service the token is for with audience or resource")
	case len(auds) > 1:
		return nil, oauthErr(400, CodeInvalidTarget, "%d audiences asked for; a token is for exactly one audience", len(auds))
	}
	r.Audience = auds[0]
	if r.Audience == "" || len(r.Audience) > maxAudienceLen || !printable(r.Audience) {
		return nil, oauthErr(400, CodeInvalidTarget, "audience must be 1 to %d printable characters", maxAudienceLen)
	}
	if s := get("scope"); s != "" {
		r.Scopes = strings.Fields(s)
		if len(r.Scopes) > maxScopes {
			return nil, oauthErr(400, CodeInvalidScope, "%d scopes asked for; at most %d", len(r.Scopes), maxScopes)
		}
		for _, sc := range r.Scopes {
			if len(sc) > maxScopeLen || !scopeToken(sc) {
				return nil, oauthErr(400, CodeInvalidScope, "scope %q is not a valid scope token (RFC 6749 §3.3)", clip(sc))
			}
		}
	}
	if r.Task == "" {
		return nil, oauthErr(400, CodeInvalidRequest, "task is missing; open a task (POST /v1/tasks) and name it in the task parameter")
	}
	if len(r.Task) > 128 || !printable(r.Task) {
		return nil, oauthErr(400, CodeInvalidRequest, "task must be a task id of at most 128 printable characters")
	}
	switch su := get("single_use"); su {
	case "", "false":
	case "true":
		r.SingleUse = true
	default:
		return nil, oauthErr(400, CodeInvalidRequest, "single_use must be true or false, not %q", clip(su))
	}
	if ad := get("authorization_details"); ad != "" {
		var list []json.RawMessage
		if err := json.Unmarshal([]byte(ad), &list); err != nil {
			return nil, oauthErr(400, "invalid_authorization_details", "authorization_details must be a JSON array of objects (RFC 9396)")
		}
		if len(list) == 0 || len(list) > maxDetails {
			return nil, oauthErr(400, "invalid_authorization_details", "authorization_details must hold 1 to %d entries", maxDetails)
		}
		for i, raw := range list {
			var d struct {
				Type      *string  `json:"type"`
				Locations []string `json:"locations"`
			}
			if err := json.Unmarshal(raw, &d); err != nil || d.Type == nil || *d.Type == "" {
				return nil, oauthErr(400, "invalid_authorization_details", "authorization_details[%d] must be an object with a string type", i)
			}
			for _, l := range d.Locations {
				if l != r.Audience {
					return nil, oauthErr(400, "invalid_authorization_details",
						"authorization_details[%d].locations names %q, outside the token's audience %q", i, clip(l), r.Audience)
				}
			}
		}
		r.AuthorizationDetails = list
	}
	return r, nil
}

// readForm reads an application/x-www-form-urlencoded body of at most
// maxFormBytes. Parameters in the URL query are refused (they would leak
// tokens into logs).
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *Error) {
	if r.URL.RawQuery != "" {
		return nil, oauthErr(400, CodeInvalidRequest, "send parameters in the request body, not the URL query")
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(strings.ToLower(mt)) != "application/x-www-form-urlencoded" {
		return nil, oauthErr(400, CodeInvalidRequest, "Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, oauthErr(400, CodeInvalidRequest, "the form body is malformed or over %d bytes", maxFormBytes)
	}
	return r.PostForm, nil
}

// scopeToken reports whether s is a scope-token: %x21 / %x23-5B / %x5D-7E.
func scopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// clip shortens client-supplied text echoed in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
