package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// RunUsers runs the conformance tests of [store.Users] and
// [store.Sessions].
func RunUsers(t *testing.T, open Opener) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open(t)) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open(t)) })
	t.Run("UserGroups", func(t *testing.T) { testUserGroups(t, open(t)) })
}

func testUserGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Created with groups (one twice): stored once each, in byte order.
	u, err := s.CreateUser(ctx, store.User{Name: "alice", Role: store.RoleApprover, Source: store.UserLocal,
		Groups: []string{"leads", "Leads", "ops", "leads"}})
	if err != nil {
		t.Fatalf("CreateUser with groups: %v", err)
	}
	want := func(what string, u store.User, groups ...string) {
		t.Helper()
		if !slices.Equal(u.Groups, groups) {
			t.Errorf("%s: groups %q, want %q", what, u.Groups, groups)
		}
	}
	// Case matters: "Leads" and "leads" are two groups.
	want("CreateUser", u, "Leads", "leads", "ops")
	back, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want("GetUser", back, "Leads", "leads", "ops")
	if _, err := s.CreateUser(ctx, store.User{Name: "bob", Role: store.RoleViewer, Source: store.UserLocal}); err != nil {
		t.Fatal(err)
	}
	// UpdateUser (a role change, a login) leaves the groups alone.
	back.Role, back.Groups = store.RoleAdmin, nil
	if up, err := s.UpdateUser(ctx, back); err != nil {
		t.Fatal(err)
	} else {
		want("UpdateUser", up, "Leads", "leads", "ops")
	}
	// Add and remove in one change; removing a group it lacks is no error.
	u, err = s.ChangeUserGroups(ctx, "alice", store.GroupChange{Add: []string{"sec", "ops"}, Remove: []string{"Leads", "absent"}})
	if err != nil {
		t.Fatalf("ChangeUserGroups(add, remove): %v", err)
	}
	want("add sec, remove Leads", u, "leads", "ops", "sec")
	// Replace: the groups become exactly Set (plus Add).
	u, err = s.ChangeUserGroups(ctx, "alice", store.GroupChange{Replace: true, Set: []string{"x y", "/team/a"}, Add: []string{"z"}})
	if err != nil {
		t.Fatal(err)
	}
	want("replace", u, "/team/a", "x y", "z")
	list, err := s.ListUsers(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListUsers = %+v, %v", list, err)
	}
	want("ListUsers alice", list[0], "/team/a", "x y", "z")
	want("ListUsers bob", list[1])
	// Replace with nothing clears them.
	if u, err = s.ChangeUserGroups(ctx, "alice", store.GroupChange{Replace: true}); err != nil || u.Groups != nil {
		t.Errorf("cleared groups = %q, %v; want none", u.Groups, err)
	}
	if _, err := s.ChangeUserGroups(ctx, "carol", store.GroupChange{Add: []string{"x"}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ChangeUserGroups(missing): %v, want ErrNotFound", err)
	}
	// Removing an account takes its groups: a new account of that name
	// starts with none.
	if _, err := s.ChangeUserGroups(ctx, "bob", store.GroupChange{Add: []string{"leads"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if u, err := s.CreateUser(ctx, store.User{Name: "bob", Role: store.RoleViewer, Source: store.UserOIDC}); err != nil || u.Groups != nil {
		t.Errorf("recreated bob: groups %q, %v; want none", u.Groups, err)
	}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := store.User{Name: "alice", Role: store.RoleApprover, Source: store.UserLocal, PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"}
	got, err := s.CreateUser(ctx, alice)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if got.CreatedAt.IsZero() || !got.LastLogin.IsZero() {
		t.Errorf("created user: %+v", got)
	}
	if _, err := s.CreateUser(ctx, alice); !errors.Is(err, store.ErrExists) {
		t.Errorf("second CreateUser: %v, want ErrExists", err)
	}
	if _, err := s.CreateUser(ctx, store.User{Name: "bob", Role: store.RoleViewer, Source: store.UserOIDC}); err != nil {
		t.Fatal(err)
	}
	back, err := s.GetUser(ctx, "alice")
	if err != nil || back.Role != store.RoleApprover || back.Source != store.UserLocal || back.PasswordHash != alice.PasswordHash {
		t.Errorf("GetUser = %+v, %v", back, err)
	}
	if _, err := s.GetUser(ctx, "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(missing): %v, want ErrNotFound", err)
	}
	login := time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)
	back.Role, back.PasswordHash, back.LastLogin = store.RoleAdmin, "$argon2id$new", login
	up, err := s.UpdateUser(ctx, back)
	if err != nil || up.Role != store.RoleAdmin || up.PasswordHash != "$argon2id$new" || !up.LastLogin.Equal(login) {
		t.Errorf("UpdateUser = %+v, %v", up, err)
	}
	// An older login time never moves LastLogin back.
	up.LastLogin = login.Add(-time.Hour)
	if up, err = s.UpdateUser(ctx, up); err != nil || !up.LastLogin.Equal(login) {
		t.Errorf("UpdateUser with an older login: %+v, %v", up, err)
	}
	if _, err := s.UpdateUser(ctx, store.User{Name: "carol", Role: store.RoleViewer}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(missing): %v, want ErrNotFound", err)
	}
	list, err := s.ListUsers(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
		t.Errorf("ListUsers = %+v, %v; want alice, bob", list, err)
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteUser: %v, want ErrNotFound", err)
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, n := range []string{"alice", "bob"} {
		if _, err := s.CreateUser(ctx, store.User{Name: n, Role: store.RoleViewer, Source: store.UserLocal}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(h byte, user string, ttl time.Duration) store.Session {
		return store.Session{Hash: bytes.Repeat([]byte{h}, 32), User: user, CSRF: "csrf-" + user, CreatedAt: t0, ExpiresAt: t0.Add(ttl)}
	}
	a1, a2, b1 := mk(1, "alice", time.Hour), mk(2, "alice", time.Minute), mk(3, "bob", time.Hour)
	for _, x := range []store.Session{a1, a2, b1} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
	if err := s.CreateSession(ctx, a1); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateSession twice: %v, want ErrExists", err)
	}
	got, err := s.GetSession(ctx, a1.Hash, t0.Add(time.Second))
	if err != nil || got.User != "alice" || got.CSRF != "csrf-alice" || !got.ExpiresAt.Equal(a1.ExpiresAt) {
		t.Errorf("GetSession = %+v, %v", got, err)
	}
	if _, err := s.GetSession(ctx, a2.Hash, t0.Add(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession after expiry: %v, want ErrNotFound", err)
	}
	if n, err := s.DeleteExpiredSessions(ctx, t0.Add(2*time.Minute)); err != nil || n != 1 {
		t.Errorf("DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
	if err := s.DeleteUserSessions(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, a1.Hash, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session after DeleteUserSessions: %v", err)
	}
	// Removing an account ends its sessions.
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, b1.Hash, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session of a removed user: %v", err)
	}
	if err := s.CreateSession(ctx, mk(4, "nobody", time.Hour)); err == nil {
		t.Error("CreateSession accepted a session of an account that does not exist")
	}
	if err := s.DeleteSession(ctx, a1.Hash); err != nil {
		t.Errorf("DeleteSession of a gone session: %v", err)
	}
}
