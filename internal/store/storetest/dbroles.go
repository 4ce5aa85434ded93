package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// RunDBRoles runs the conformance tests of [store.DBRoles].
func RunDBRoles(t *testing.T, open Opener) {
	t.Run("DBRoles", func(t *testing.T) { testDBRoles(t, open(t)) })
}

func testDBRoles(t *testing.T, s store.Store) {
	ctx := context.Background()
	until := time.Unix(1900000000, 123456789).UTC()
	in := store.DBRole{Role: "writ_b", Service: "orders-db", Task: "tsk_1", SpiffeID: "spiffe://writ.local/agent/a",
		Instance: "inst_1", Upstream: "postgres://127.0.0.1:5432/orders", AdminCredential: "orders-admin",
		Sealed: []byte{1, 2, 3}, ValidUntil: until}
	got, err := s.CreateDBRole(ctx, in)
	if err != nil {
		t.Fatalf("CreateDBRole: %v", err)
	}
	if got.State != store.DBRoleCreating || got.CreatedAt.IsZero() {
		t.Errorf("created: state %q created %v, want %q and a time", got.State, got.CreatedAt, store.DBRoleCreating)
	}
	if _, err := s.CreateDBRole(ctx, in); !errors.Is(err, store.ErrExists) {
		t.Errorf("same role again: err %v, want ErrExists", err)
	}
	other := in
	other.Role = "writ_c"
	if _, err := s.CreateDBRole(ctx, other); !errors.Is(err, store.ErrExists) {
		t.Errorf("second role of one task for one service: err %v, want ErrExists", err)
	}
	back, err := s.GetDBRole(ctx, "tsk_1", "orders-db")
	if err != nil {
		t.Fatalf("GetDBRole: %v", err)
	}
	if back.Role != "writ_b" || back.SpiffeID != in.SpiffeID || back.Instance != "inst_1" || back.Upstream != in.Upstream ||
		back.AdminCredential != "orders-admin" || !bytes.Equal(back.Sealed, in.Sealed) || !back.ValidUntil.Equal(until) ||
		back.State != store.DBRoleCreating {
		t.Errorf("GetDBRole = %+v", back)
	}
	if _, err := s.GetDBRole(ctx, "tsk_1", "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDBRole(other service): err %v, want ErrNotFound", err)
	}
	if err := s.ActivateDBRole(ctx, "writ_b"); err != nil {
		t.Fatalf("ActivateDBRole: %v", err)
	}
	if err := s.ActivateDBRole(ctx, "writ_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActivateDBRole(missing): err %v, want ErrNotFound", err)
	}
	other.Task = "tsk_2"
	other.Role = "writ_a"
	if _, err := s.CreateDBRole(ctx, other); err != nil {
		t.Fatalf("role of another task: %v", err)
	}
	list, err := s.ListDBRoles(ctx)
	if err != nil {
		t.Fatalf("ListDBRoles: %v", err)
	}
	if len(list) != 2 || list[0].Role != "writ_a" || list[1].Role != "writ_b" || list[1].State != store.DBRoleActive {
		t.Errorf("ListDBRoles = %+v, want writ_a (creating) and writ_b (active) in order", list)
	}
	if err := s.DeleteDBRole(ctx, "writ_b"); err != nil {
		t.Fatalf("DeleteDBRole: %v", err)
	}
	if err := s.DeleteDBRole(ctx, "writ_b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteDBRole twice: err %v, want ErrNotFound", err)
	}
	if _, err := s.GetDBRole(ctx, "tsk_1", "orders-db"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDBRole after delete: err %v, want ErrNotFound", err)
	}
}
