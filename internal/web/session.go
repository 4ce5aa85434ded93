package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/writ-dev/writ/internal/account"
)

// cookieName is the session cookie; under TLS it carries the __Host-
// prefix, which browsers accept only with Secure, Path=/ and no Domain.
func cookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-writ_session"
	}
	return "writ_session"
}

// setSession sets the session cookie: HttpOnly, SameSite=Strict, Secure
// under TLS.
func setSession(w http.ResponseWriter, r *http.Request, secret string, s account.Session) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: secret, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: s.ExpiresAt})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

type sessionKey struct{}

// human is the logged-in human of a request.
type human struct {
	account.Session
	secret string
}

func (h human) actor() string { return account.Actor(h.User.Name) }

func sessionOf(ctx context.Context) human {
	h, _ := ctx.Value(sessionKey{}).(human)
	return h
}

// need wraps a page so that only a logged-in human with at least role
// reaches it. A GET without a session goes to the login page; anything
// else answers 401. A POST must carry the session's CSRF token (form
// field csrf or header X-CSRF-Token).
func (w *Console) need(role string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName(r))
		var s account.Session
		if err == nil {
			s, err = w.c.Accounts.Session(r.Context(), ck.Value)
		}
		if err != nil {
			if !errors.Is(err, account.ErrNoSession) && !errors.Is(err, http.ErrNoCookie) {
				w.c.Log.ErrorContext(r.Context(), "console session", "error", err)
			}
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(rw, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.errorPage(rw, r, http.StatusUnauthorized, "Log in first.")
			return
		}
		hu := human{Session: s, secret: ck.Value}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) != 1 {
				w.c.Log.WarnContext(r.Context(), "console refused a state change without its CSRF token", "user", s.User.Name, "path", r.URL.Path)
				w.errorPage(rw, r, http.StatusForbidden, "This form is stale or did not come from this console (CSRF token missing or wrong). Reload the page and try again.")
				return
			}
		}
		ctx := context.WithValue(r.Context(), sessionKey{}, hu)
		if !account.Allows(s.User.Role, role) {
			w.errorPage(rw, r.WithContext(ctx), http.StatusForbidden, "Your role ("+s.User.Role+") may not do this; it needs "+role+".")
			return
		}
		h(rw, r.WithContext(ctx))
	})
}

// safeNext returns next if it is a path inside the console, else /ui/.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/ui/") && !strings.HasPrefix(next, "/ui//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/ui/"
}

func (w *Console) loginPage(rw http.ResponseWriter, r *http.Request) {
	w.render(rw, r, http.StatusOK, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "OIDC": w.c.OIDC != nil})
}

func (w *Console) login(rw http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(rw, r.Body, 16<<10)
	name, pw, next := r.PostFormValue("name"), r.PostFormValue("password"), safeNext(r.PostFormValue("next"))
	secret, s, err := w.c.Accounts.Login(r.Context(), name, pw, r.RemoteAddr)
	if err != nil {
		status, msg := http.StatusUnauthorized, "Name or password is wrong."
		if !errors.Is(err, account.ErrLogin) {
			w.c.Log.ErrorContext(r.Context(), "console login", "error", err)
			status, msg = http.StatusInternalServerError, "Login is not possible right now; see the server log."
		}
		w.render(rw, r, status, "login", map[string]any{"Next": next, "Error": msg, "Name": name, "OIDC": w.c.OIDC != nil})
		return
	}
	setSession(rw, r, secret, s)
	http.Redirect(rw, r, next, http.StatusSeeOther)
}

func (w *Console) logout(rw http.ResponseWriter, r *http.Request) {
	h := sessionOf(r.Context())
	if err := w.c.Accounts.Logout(r.Context(), h.secret, h.User.Name); err != nil {
		w.c.Log.ErrorContext(r.Context(), "console logout", "error", err)
	}
	clearSession(rw, r)
	http.Redirect(rw, r, "/ui/login", http.StatusSeeOther)
}
