package token

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
)

// AdminCheck authenticates a caller that is not an agent (an operator's
// admin credential) and returns its actor name.
type AdminCheck func(r *http.Request) (actor string, ok bool)

// Register adds the OAuth endpoints to mux: /oauth2/token,
// /oauth2/introspect, /oauth2/revoke, the RFC 8414 and OpenID discovery
// documents and /jwks.json. Introspection and revocation need an
// authenticated agent or, through admin, an operator.
func (i *Issuer) Register(mux *http.ServeMux, admin AdminCheck) {
	mux.HandleFunc("POST /oauth2/token", i.handleToken)
	mux.HandleFunc("POST /oauth2/introspect", func(w http.ResponseWriter, r *http.Request) { i.handleIntrospect(w, r, admin) })
	mux.HandleFunc("POST /oauth2/revoke", func(w http.ResponseWriter, r *http.Request) { i.handleRevoke(w, r, admin) })
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", i.handleMetadata)
	mux.HandleFunc("GET /.well-known/openid-configuration", i.handleMetadata)
	mux.HandleFunc("GET /jwks.json", i.handleJWKS)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeOAuthError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ", error="`+e.Code+`"`)
	}
	writeJSON(w, e.Status, e)
}

func (i *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	deny := func(c Caller, req *ExchangeRequest, e *Error) {
		ev := audit.Event{Type: audit.TokenDenied, Action: "token_exchange", Decision: "deny", Reason: e.Code + ": " + e.Description,
			Source: r.RemoteAddr}
		if c.Via != "" {
			ev.SpiffeID, ev.Instance = c.ID.String(), c.Instance
		}
		if req != nil {
			ev.Task, ev.Target = req.Task, req.Audience
		}
		if err := i.c.Emitter.Emit(ctx, ev); err != nil {
			i.c.Log.ErrorContext(ctx, "audit denied token exchange", "error", err)
		}
		writeOAuthError(w, e)
	}
	form, oe := readForm(w, r)
	if oe != nil {
		deny(Caller{}, nil, oe)
		return
	}
	req, err := ParseExchange(form)
	if err != nil {
		deny(Caller{}, nil, err.(*Error))
		return
	}
	caller, hasPeer, perr := i.c.Auth.Peer(r)
	if perr != nil {
		deny(Caller{}, req, oauthErr(401, CodeInvalidClient, "%v", perr))
		return
	}
	if req.SubjectToken != "" {
		sc, err := i.c.Auth.JWTSVID(req.SubjectToken)
		if err != nil {
			deny(Caller{}, req, oauthErr(400, CodeInvalidGrant, "subject_token: %v", err))
			return
		}
		if hasPeer && sc.ID != caller.ID {
			deny(caller, req, oauthErr(400, CodeInvalidGrant, "subject_token names %s but the client certificate is %s; they must agree", sc.ID, caller.ID))
			return
		}
		if !hasPeer {
			caller = sc
		}
	} else if !hasPeer {
		deny(Caller{}, req, oauthErr(401, CodeInvalidClient,
			"no identity: send a JWT-SVID as subject_token (audience %q) or connect with an X.509-SVID over mutual TLS", i.c.Issuer))
		return
	}
	var jkt string
	if proofs := r.Header.Values("DPoP"); len(proofs) > 1 {
		deny(caller, req, oauthErr(400, CodeInvalidDPoP, "send one DPoP header, not %d", len(proofs)))
		return
	} else if len(proofs) == 1 {
		p, err := VerifyDPoP(proofs[0], DPoPCheck{Method: http.MethodPost, URL: i.tokenURL, Now: i.c.Now(), Replay: i.replay})
		if err != nil {
			deny(caller, req, oauthErr(400, CodeInvalidDPoP, "%v", err))
			return
		}
		jkt = p.JKT
	}
	resp, err := i.Exchange(ctx, caller, req, jkt, r.RemoteAddr)
	if err != nil {
		writeOAuthError(w, err.(*Error))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// authCaller authenticates the caller of introspection or revocation.
func (i *Issuer) authCaller(r *http.Request, admin AdminCheck) (actor string, agent *Caller, e *Error) {
	if admin != nil && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		if a, ok := admin(r); ok {
			return a, nil, nil
		}
	}
	c, err := i.c.Auth.Request(r)
	if err != nil {
		return "", nil, oauthErr(401, CodeInvalidClient, "authenticate with an admin credential, an X.509-SVID over mutual TLS or a JWT-SVID bearer (audience %q)", i.c.Issuer)
	}
	return c.ID.String(), &c, nil
}

// Introspection is an RFC 7662 response.
type Introspection struct {
	Active     bool          `json:"active"`
	Scope      string        `json:"scope,omitempty"`
	ClientID   string        `json:"client_id,omitempty"`
	TokenType  string        `json:"token_type,omitempty"`
	Expiry     int64         `json:"exp,omitempty"`
	IssuedAt   int64         `json:"iat,omitempty"`
	Subject    string        `json:"sub,omitempty"`
	Audience   Audience      `json:"aud,omitempty"`
	Issuer     string        `json:"iss,omitempty"`
	ID         string        `json:"jti,omitempty"`
	Instance   string        `json:"agent_instance,omitempty"`
	Task       string        `json:"task,omitempty"`
	OnBehalfOf string        `json:"on_behalf_of,omitempty"`
	Act        *Actor        `json:"act,omitempty"`
	Cnf        *Confirmation `json:"cnf,omitempty"`
	SingleUse  bool          `json:"single_use,omitempty"`
}

// Introspect reports on raw: active with its claims when it is a valid,
// unexpired, unrevoked writ token, else inactive.
func (i *Issuer) Introspect(raw string) Introspection {
	c, err := i.c.Verifier.parseCached(raw)
	if err == nil {
		err = i.c.Verifier.introspect(c)
	}
	if err != nil {
		return Introspection{Active: false}
	}
	tt := "Bearer"
	if c.Cnf != nil && c.Cnf.JKT != "" {
		tt = "DPoP"
	}
	return Introspection{Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: tt, Expiry: c.Expiry, IssuedAt: c.IssuedAt,
		Subject: c.Subject, Audience: c.Audience, Issuer: c.Issuer, ID: c.ID, Instance: c.Instance, Task: c.Task,
		OnBehalfOf: c.OnBehalfOf, Act: c.Act, Cnf: c.Cnf, SingleUse: c.SingleUse}
}

func (i *Issuer) handleIntrospect(w http.ResponseWriter, r *http.Request, admin AdminCheck) {
	if _, _, e := i.authCaller(r, admin); e != nil {
		writeOAuthError(w, e)
		return
	}
	form, oe := readForm(w, r)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		writeOAuthError(w, oauthErr(400, CodeInvalidRequest, "token is missing"))
		return
	}
	writeJSON(w, http.StatusOK, i.Introspect(raw))
}

// handleRevoke is RFC 7009: the token's jti is revoked (until it expires).
// An operator may revoke any token, an agent only its own. Invalid or
// unknown tokens get 200 as the RFC requires.
func (i *Issuer) handleRevoke(w http.ResponseWriter, r *http.Request, admin AdminCheck) {
	actor, agent, e := i.authCaller(r, admin)
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	form, oe := readForm(w, r)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		writeOAuthError(w, oauthErr(400, CodeInvalidRequest, "token is missing"))
		return
	}
	c, err := i.c.Verifier.parseCached(raw)
	if err != nil || c.Issuer != i.c.Issuer {
		w.WriteHeader(http.StatusOK)
		return
	}
	if agent != nil && agent.ID.String() != c.Subject {
		writeOAuthError(w, oauthErr(403, CodeAccessDenied, "an agent may revoke only its own tokens"))
		return
	}
	_, _, err = i.c.Revoker.Revoke(r.Context(), store.Revocation{Kind: store.RevokeToken, Value: c.ID, Actor: actor,
		Reason: "RFC 7009 revocation request", ExpiresAt: c.ExpiresAt().Add(time.Minute)})
	if err != nil && !errors.Is(err, revoke.ErrNotAudited) {
		i.c.Log.ErrorContext(r.Context(), "revoke token", "credential", c.ID, "error", err)
		writeOAuthError(w, oauthErr(503, CodeServerError, "the token could not be revoked; retry"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// Metadata is the RFC 8414 authorization server metadata.
type Metadata struct {
	Issuer                                string   `json:"issuer"`
	TokenEndpoint                         string   `json:"token_endpoint"`
	JWKSURI                               string   `json:"jwks_uri"`
	IntrospectionEndpoint                 string   `json:"introspection_endpoint"`
	RevocationEndpoint                    string   `json:"revocation_endpoint"`
	GrantTypesSupported                   []string `json:"grant_types_supported"`
	ResponseTypesSupported                []string `json:"response_types_supported"`
	SubjectTypesSupported                 []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported      []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported     []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods      []string `json:"introspection_endpoint_auth_methods_supported"`
	DPoPSigningAlgValuesSupported         []string `json:"dpop_signing_alg_values_supported"`
	TLSClientCertificateBoundAccessTokens bool     `json:"tls_client_certificate_bound_access_tokens"`
	AuthorizationDetailsTypesSupported    []string `json:"authorization_details_types_supported,omitempty"`
	AccessTokenSigningAlgValuesSupported  []string `json:"access_token_signing_alg_values_supported"`
	SubjectTokenTypesSupported            []string `json:"subject_token_types_supported"`
}

// Metadata returns the discovery document.
func (i *Issuer) Metadata() Metadata {
	base := strings.TrimSuffix(i.c.Issuer, "/")
	algs := make([]string, len(dpopAlgs))
	for n, a := range dpopAlgs {
		algs[n] = string(a)
	}
	return Metadata{
		Issuer: i.c.Issuer, TokenEndpoint: base + "/oauth2/token", JWKSURI: base + "/jwks.json",
		IntrospectionEndpoint: base + "/oauth2/introspect", RevocationEndpoint: base + "/oauth2/revoke",
		GrantTypesSupported: []string{GrantExchange}, ResponseTypesSupported: []string{"token"},
		SubjectTypesSupported: []string{"public"}, IDTokenSigningAlgValuesSupported: []string{"ES256"},
		TokenEndpointAuthMethodsSupported: []string{"tls_client_auth", "none"},
		IntrospectionEndpointAuthMethods:  []string{"tls_client_auth", "bearer"},
		DPoPSigningAlgValuesSupported:     algs, TLSClientCertificateBoundAccessTokens: true,
		AccessTokenSigningAlgValuesSupported: []string{"ES256"}, SubjectTokenTypesSupported: []string{TypeJWT},
	}
}

func (i *Issuer) handleMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	json.NewEncoder(w).Encode(i.Metadata())
}

func (i *Issuer) handleJWKS(w http.ResponseWriter, r *http.Request) {
	doc, err := i.c.JWKS()
	if err != nil {
		i.c.Log.ErrorContext(r.Context(), "build JWKS", "error", err)
		writeOAuthError(w, oauthErr(500, CodeServerError, "the key set is unavailable; see the server log"))
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=60")
	w.Write(doc)
}
