package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// AdminTokenPrefix marks writ admin credentials so secret scanners can
// find a leaked one.
const AdminTokenPrefix = "writ_admin_"

// AdminAuth checks admin credentials against the stored hashes. Tokens are
// 128+ bits of randomness, so a plain SHA-256 is the right hash: nothing
// to brute-force, and checking stays cheap.
type AdminAuth struct {
	db   store.AdminTokens
	emit audit.Emitter
	log  *slog.Logger

	mu     sync.RWMutex
	hashes []store.AdminToken
}

// NewAdminAuth loads the stored admin credential hashes. Failed attempts
// with a wrong credential are logged and recorded through emit.
func NewAdminAuth(ctx context.Context, db store.AdminTokens, emit audit.Emitter, log *slog.Logger) (*AdminAuth, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &AdminAuth{db: db, emit: emit, log: log}
	hs, err := db.ListAdminTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("load admin credentials: %w", err)
	}
	a.hashes = hs
	return a, nil
}

// Ensure creates the admin credential on first start and writes it to
// file with mode 0600. It reports whether a new credential was made.
func (a *AdminAuth) Ensure(ctx context.Context, file string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.hashes) > 0 {
		return false, nil
	}
	tok := AdminTokenPrefix + rand.Text()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, fmt.Errorf("write admin credential: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return false, fmt.Errorf("write admin credential: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("write admin credential: %w", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		return false, fmt.Errorf("restrict admin credential file: %w", err)
	}
	h := sha256.Sum256([]byte(tok))
	t := store.AdminToken{ID: "admin", Hash: h[:]}
	if err := a.db.PutAdminToken(ctx, t); err != nil {
		os.Remove(file)
		return false, err
	}
	a.hashes = append(a.hashes, t)
	return true, nil
}

// errWrongCredential is the answer to a credential that matches no admin.
var errWrongCredential = apitypes.Errorf(http.StatusUnauthorized, apitypes.CodeUnauthorized,
	"admin credential is wrong: use the token in the data directory's admin.token file printed by `writ serve`")

// Check returns the id of the admin credential in r, or an error for the
// client.
func (a *AdminAuth) Check(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", apitypes.Errorf(http.StatusUnauthorized, apitypes.CodeUnauthorized,
			"admin credential missing: send Authorization: Bearer TOKEN (the CLI reads WRIT_TOKEN or DATA_DIR/admin.token)")
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	a.mu.RLock()
	defer a.mu.RUnlock()
	match := ""
	for _, t := range a.hashes {
		if subtle.ConstantTimeCompare(sum[:], t.Hash) == 1 {
			match = t.ID
		}
	}
	if match == "" {
		return "", errWrongCredential
	}
	return match, nil
}

// ActorOf reports whether r carries the admin credential, and the actor
// ("admin:ID") it names.
func (a *AdminAuth) ActorOf(r *http.Request) (string, bool) {
	id, err := a.Check(r)
	if err != nil {
		return "", false
	}
	return "admin:" + id, true
}

// Require wraps h so that only authenticated admins reach it; [Actor]
// of the request's context names the admin.
func (a *AdminAuth) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Check(r)
		if err != nil {
			if err == errWrongCredential {
				a.log.WarnContext(r.Context(), "admin authentication failed", "source", r.RemoteAddr, "path", r.URL.Path)
				if emitErr := a.emit.Emit(r.Context(), audit.Event{Type: audit.AdminAuthFailed, Source: r.RemoteAddr,
					Action: r.Method, Target: r.URL.Path}); emitErr != nil {
					a.log.ErrorContext(r.Context(), "record failed admin authentication", "error", emitErr)
				}
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
			WriteError(w, err)
			return
		}
		ctx := context.WithValue(r.Context(), actorKey{}, "admin:"+id)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
