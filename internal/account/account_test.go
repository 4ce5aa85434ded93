package account

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

func newService(t *testing.T, now *time.Time) (*Service, *audittest.Recorder) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &audittest.Recorder{}
	s, err := New(Config{Users: db, Sessions: db, Emitter: rec, Now: func() time.Time { return *now }, SessionTTL: time.Hour,
		Argon2: Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func TestLoginAndSession(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, rec := newService(t, &now)
	if _, err := s.Add(ctx, "alice", store.RoleApprover, nil, "short", "admin:admin"); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short password: %v", err)
	}
	if _, err := s.Add(ctx, "alice", "root", nil, "correct horse battery", "admin:admin"); err == nil || !strings.Contains(err.Error(), "viewer, approver or admin") {
		t.Errorf("bad role: %v", err)
	}
	if _, err := s.Add(ctx, "../x", store.RoleViewer, nil, "correct horse battery", "admin:admin"); err == nil {
		t.Error("bad name accepted")
	}
	u, err := s.Add(ctx, "alice", store.RoleApprover, nil, "correct horse battery", "admin:admin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(u.PasswordHash, "horse") {
		t.Errorf("stored hash %q", u.PasswordHash)
	}
	if e, ok := rec.Last(audit.UserAdded); !ok || e.Actor != "admin:admin" || e.Target != "user:alice" {
		t.Errorf("user.added event %+v", e)
	}
	for _, tc := range []struct{ name, pw string }{{"alice", "wrong password!!"}, {"bob", "correct horse battery"}, {"alice", ""}} {
		if _, _, err := s.Login(ctx, tc.name, tc.pw, "127.0.0.1:1"); !errors.Is(err, ErrLogin) {
			t.Errorf("Login(%s, %q) = %v, want ErrLogin", tc.name, tc.pw, err)
		}
	}
	if rec.Count(audit.UserLoginFailed) != 3 {
		t.Errorf("failed logins recorded: %d", rec.Count(audit.UserLoginFailed))
	}
	secret, sess, err := s.Login(ctx, "alice", "correct horse battery", "127.0.0.1:1")
	if err != nil || sess.User.Role != store.RoleApprover || sess.CSRF == "" || len(secret) < 40 {
		t.Fatalf("Login = %q %+v %v", secret, sess, err)
	}
	got, err := s.Session(ctx, secret)
	if err != nil || got.User.Name != "alice" || got.CSRF != sess.CSRF {
		t.Errorf("Session = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "x", secret + "x", strings.Repeat("a", 1000)} {
		if _, err := s.Session(ctx, bad); !errors.Is(err, ErrNoSession) {
			t.Errorf("Session(%.10q) = %v", bad, err)
		}
	}
	// A password change ends the session.
	if err := s.SetPassword(ctx, "alice", "another long password", "admin:admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Errorf("session after password change: %v", err)
	}
	secret, _, err = s.Login(ctx, "alice", "another long password", "")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.Session(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Errorf("session after its TTL: %v", err)
	}
	// A login that cannot be recorded is refused.
	now = now.Add(-2 * time.Hour)
	rec.FailOn(audit.UserLogin, errors.New("disk full"))
	if _, _, err := s.Login(ctx, "alice", "another long password", ""); err == nil {
		t.Error("login succeeded although its audit event failed")
	}
}

func TestOIDCAccounts(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := newService(t, &now)
	if _, err := s.Add(ctx, "alice", store.RoleAdmin, nil, "correct horse battery", "admin:admin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LoginOIDC(ctx, "alice", store.RoleAdmin, nil, ""); err == nil || !strings.Contains(err.Error(), "local account") {
		t.Errorf("OIDC login over a local account: %v", err)
	}
	_, sess, err := s.LoginOIDC(ctx, "bob@example.com", store.RoleViewer, nil, "")
	if err != nil || sess.User.Source != store.UserOIDC || sess.User.Role != store.RoleViewer {
		t.Fatalf("LoginOIDC = %+v, %v", sess, err)
	}
	_, sess, err = s.LoginOIDC(ctx, "bob@example.com", store.RoleApprover, nil, "")
	if err != nil || sess.User.Role != store.RoleApprover {
		t.Errorf("role from the provider's claim not followed: %+v, %v", sess, err)
	}
	if _, _, err := s.Login(ctx, "bob@example.com", "", ""); !errors.Is(err, ErrLogin) {
		t.Errorf("password login of an OIDC account: %v", err)
	}
	if err := s.SetPassword(ctx, "bob@example.com", "correct horse battery", "admin:admin"); err == nil {
		t.Error("password set on an OIDC account")
	}
}

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		role, need string
		want       bool
	}{
		{"viewer", "viewer", true}, {"viewer", "approver", false}, {"approver", "approver", true},
		{"approver", "admin", false}, {"admin", "approver", true}, {"", "viewer", false}, {"admin", "", false},
	} {
		if got := Allows(tc.role, tc.need); got != tc.want {
			t.Errorf("Allows(%q, %q) = %v", tc.role, tc.need, got)
		}
	}
}

func TestCheckPasswordHostileHashes(t *testing.T) {
	good, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(good, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Errorf("default hash %q", good)
	}
	if ok, err := CheckPassword(good, "correct horse battery"); !ok || err != nil {
		t.Fatalf("CheckPassword(good) = %v, %v", ok, err)
	}
	for _, h := range []string{"", "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=4294967295,t=3,p=4$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=65536,t=1000,p=4$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=65536,t=3,p=4$$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=065536,t=3,p=4$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		good + "$"} {
		if ok, err := CheckPassword(h, "x"); ok || err == nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want an error", h, ok, err)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.memory > 1<<20 || p.time > 16 || p.threads > 16 || len(p.salt) > 64 || len(p.key) > 64 {
			t.Fatalf("parsePHC(%q) accepted costly parameters %+v", s, p)
		}
	})
}
