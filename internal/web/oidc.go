package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/oauth2"
)

// OIDCConfig configures console login through an OpenID Connect provider
// (authorization code flow with PKCE S256, state and nonce).
type OIDCConfig struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	// UsernameClaim names the human ("email" when empty).
	UsernameClaim string
	// RoleClaim holds a string or list of strings ("groups" when empty).
	RoleClaim string
	// GroupsClaim holds the human's groups, a string or list of strings
	// ("groups" when empty; "-" for none): they replace the account's
	// groups at every login (approval rules naming group:NAME).
	GroupsClaim string
	// Roles maps a role to the claim values that grant it.
	Roles map[string][]string
	// HTTP is the client that talks to the provider (default
	// http.DefaultClient).
	HTTP *http.Client
}

// OIDC is a configured provider.
type OIDC struct {
	c        OIDCConfig
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier

	mu      sync.Mutex
	pending map[string]oidcLogin // by state
}

type oidcLogin struct {
	nonce, verifier, next string
	expires               time.Time
}

// maxPendingOIDC bounds the logins started and not finished.
const maxPendingOIDC = 10000

// NewOIDC discovers the provider's endpoints and keys.
func NewOIDC(ctx context.Context, c OIDCConfig) (*OIDC, error) {
	if c.UsernameClaim == "" {
		c.UsernameClaim = "email"
	}
	if c.RoleClaim == "" {
		c.RoleClaim = "groups"
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = "groups"
	}
	if c.HTTP != nil {
		ctx = oidc.ClientContext(ctx, c.HTTP)
	}
	p, err := oidc.NewProvider(ctx, c.Issuer)
	if err != nil {
		return nil, fmt.Errorf("console.oidc.issuer %s: discover the provider: %w", c.Issuer, err)
	}
	return &OIDC{c: c, verifier: p.Verifier(&oidc.Config{ClientID: c.ClientID}), pending: map[string]oidcLogin{},
		oauth: oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"}}}, nil
}

// role returns the highest role the claim values grant, or "".
func (o *OIDC) role(values []string) string {
	for _, role := range []string{store.RoleAdmin, store.RoleApprover, store.RoleViewer} {
		for _, v := range values {
			if slices.Contains(o.c.Roles[role], v) {
				return role
			}
		}
	}
	return ""
}

const oidcCookie = "writ_oidc_state"

// oidcLogin starts a login: it remembers state, nonce and PKCE verifier
// for ten minutes and sends the browser to the provider.
func (w *Console) oidcLogin(rw http.ResponseWriter, r *http.Request) {
	o := w.c.OIDC
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	now := w.c.Now()
	o.mu.Lock()
	for k, p := range o.pending {
		if now.After(p.expires) {
			delete(o.pending, k)
		}
	}
	if len(o.pending) >= maxPendingOIDC {
		o.mu.Unlock()
		w.errorPage(rw, r, http.StatusServiceUnavailable, "Too many logins are in progress; try again in a few minutes.")
		return
	}
	o.pending[state] = oidcLogin{nonce: nonce, verifier: verifier, next: safeNext(r.URL.Query().Get("next")), expires: now.Add(10 * time.Minute)}
	o.mu.Unlock()
	// Lax, not Strict: the provider's redirect back is a cross-site
	// navigation, and the cookie binds the login to this browser.
	http.SetCookie(rw, &http.Cookie{Name: oidcCookie, Value: state, Path: "/ui/oidc/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(rw, r, o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// oidcCallback finishes a login: same browser, known state, code
// exchanged with the PKCE verifier, ID token verified with the nonce,
// then a session for the named human with the mapped role.
func (w *Console) oidcCallback(rw http.ResponseWriter, r *http.Request) {
	o := w.c.OIDC
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		w.errorPage(rw, r, http.StatusUnauthorized, "The identity provider refused the login: "+e+" "+q.Get("error_description"))
		return
	}
	state := q.Get("state")
	ck, err := r.Cookie(oidcCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		w.errorPage(rw, r, http.StatusBadRequest, "This login was not started in this browser (state mismatch). Start again from the login page.")
		return
	}
	o.mu.Lock()
	p, ok := o.pending[state]
	delete(o.pending, state)
	o.mu.Unlock()
	http.SetCookie(rw, &http.Cookie{Name: oidcCookie, Value: "", Path: "/ui/oidc/", HttpOnly: true, Secure: r.TLS != nil, MaxAge: -1})
	if !ok || w.c.Now().After(p.expires) {
		w.errorPage(rw, r, http.StatusBadRequest, "This login expired or was already used. Start again from the login page.")
		return
	}
	ctx := r.Context()
	if o.c.HTTP != nil {
		ctx = oidc.ClientContext(ctx, o.c.HTTP)
	}
	tok, err := o.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		w.c.Log.WarnContext(ctx, "OIDC code exchange", "error", err)
		w.errorPage(rw, r, http.StatusUnauthorized, "The identity provider did not accept the login code. Start again from the login page.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.nonce)) != 1 {
		if err == nil {
			err = errors.New("nonce mismatch")
		}
		w.c.Log.WarnContext(ctx, "OIDC ID token refused", "error", err)
		w.errorPage(rw, r, http.StatusUnauthorized, "The identity provider's ID token was not valid for this login.")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		w.errorPage(rw, r, http.StatusUnauthorized, "The ID token's claims could not be read.")
		return
	}
	name, _ := claims[o.c.UsernameClaim].(string)
	if name == "" {
		w.errorPage(rw, r, http.StatusForbidden, "The ID token has no "+o.c.UsernameClaim+" claim to name you by (console.oidc.username_claim).")
		return
	}
	role := o.role(claimValues(claims, o.c.RoleClaim))
	if role == "" {
		w.c.Log.WarnContext(ctx, "OIDC login without a role", "user", name)
		w.errorPage(rw, r, http.StatusForbidden, "Your "+o.c.RoleClaim+" claim grants no console role (console.oidc.roles).")
		return
	}
	var groups []string
	if o.c.GroupsClaim != "-" {
		var refused []string
		groups, refused = account.CleanGroups(claimValues(claims, o.c.GroupsClaim))
		if len(refused) > 0 {
			w.c.Log.WarnContext(ctx, "OIDC groups left out: not group names writ holds", "user", name, "claim", o.c.GroupsClaim,
				"refused", len(refused), "first", shorten(80, refused[0]))
		}
	}
	secret, s, err := w.c.Accounts.LoginOIDC(ctx, name, role, groups, r.RemoteAddr)
	if err != nil {
		w.c.Log.WarnContext(ctx, "OIDC login", "user", name, "error", err)
		w.errorPage(rw, r, http.StatusForbidden, "Login refused: "+err.Error())
		return
	}
	setSession(rw, r, secret, s)
	http.Redirect(rw, r, p.next, http.StatusSeeOther)
}

// claimValues reads claim as a string or a list of strings (other
// members of a list are ignored); anything else is no value.
func claimValues(claims map[string]any, claim string) []string {
	var values []string
	switch v := claims[claim].(type) {
	case string:
		values = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				values = append(values, s)
			}
		}
	}
	return values
}
