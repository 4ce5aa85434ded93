package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/writ-dev/writ/internal/store"
)

// RunCredentials runs the conformance tests of [store.Credentials].
func RunCredentials(t *testing.T, open Opener) {
	t.Run("Credentials", func(t *testing.T) { testCredentials(t, open(t)) })
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := store.Credential{Name: "github", Type: "bearer", Sealed: []byte{1, 2, 3}, Actor: "admin"}
	got, err := s.CreateCredential(ctx, in)
	if err != nil {
		t.Fatalf("CreateCredential: %v", err)
	}
	if got.Version != 1 || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("created: version %d created %v updated %v, want 1 and equal times", got.Version, got.CreatedAt, got.UpdatedAt)
	}
	if _, err := s.CreateCredential(ctx, in); !errors.Is(err, store.ErrExists) {
		t.Errorf("second CreateCredential: err %v, want ErrExists", err)
	}
	back, err := s.GetCredential(ctx, "github")
	if err != nil {
		t.Fatalf("GetCredential: %v", err)
	}
	if back.Type != "bearer" || !bytes.Equal(back.Sealed, in.Sealed) || back.Version != 1 || back.Actor != "admin" {
		t.Errorf("GetCredential = %+v", back)
	}
	rot, err := s.RotateCredential(ctx, store.Credential{Name: "github", Type: "header", Sealed: []byte{9}, Actor: "ops"})
	if err != nil {
		t.Fatalf("RotateCredential: %v", err)
	}
	if rot.Version != 2 || !rot.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("rotated: version %d created %v, want 2 and the original creation time %v", rot.Version, rot.CreatedAt, got.CreatedAt)
	}
	back, err = s.GetCredential(ctx, "github")
	if err != nil || back.Version != 2 || back.Type != "header" || !bytes.Equal(back.Sealed, []byte{9}) || back.Actor != "ops" {
		t.Errorf("after rotate: %+v, %v", back, err)
	}
	if _, err := s.RotateCredential(ctx, store.Credential{Name: "nope", Type: "bearer", Sealed: []byte{1}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RotateCredential(missing): err %v, want ErrNotFound", err)
	}
	if _, err := s.CreateCredential(ctx, store.Credential{Name: "aws", Type: "basic", Sealed: []byte{4}}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListCredentials(ctx)
	if err != nil {
		t.Fatalf("ListCredentials: %v", err)
	}
	if len(list) != 2 || list[0].Name != "aws" || list[1].Name != "github" {
		t.Errorf("ListCredentials = %+v, want aws and github in order", list)
	}
	if err := s.DeleteCredential(ctx, "github"); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	if _, err := s.GetCredential(ctx, "github"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCredential after delete: err %v, want ErrNotFound", err)
	}
	if err := s.DeleteCredential(ctx, "github"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteCredential: err %v, want ErrNotFound", err)
	}
}
