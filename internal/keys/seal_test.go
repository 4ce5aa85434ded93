package keys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealRoundTrip(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, KEKSize)
	s, err := NewSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	blob := s.Seal([]byte("secret"), []byte("key-1"))
	if bytes.Contains(blob, []byte("secret")) {
		t.Fatal("sealed blob contains the plaintext")
	}
	pt, err := s.Open(blob, []byte("key-1"))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := s.Open(blob, []byte("key-2")); !errors.Is(err, ErrUnseal) {
		t.Errorf("Open with other associated data: %v, want ErrUnseal", err)
	}
	blob[len(blob)-1] ^= 1
	if _, err := s.Open(blob, []byte("key-1")); !errors.Is(err, ErrUnseal) {
		t.Errorf("Open of tampered blob: %v, want ErrUnseal", err)
	}
	other, _ := NewSealer(bytes.Repeat([]byte{8}, KEKSize))
	if _, err := other.Open(s.Seal([]byte("x"), nil), nil); !errors.Is(err, ErrUnseal) {
		t.Errorf("Open with other KEK: %v, want ErrUnseal", err)
	}
	if _, err := s.Open([]byte{1, 2}, nil); !errors.Is(err, ErrUnseal) {
		t.Errorf("Open of short blob: %v", err)
	}
}

func TestLoadKEK(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kek")
	k1, err := LoadKEK("", file)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(file)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("generated KEK file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadKEK("", file)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload KEK: %v, equal=%v", err, bytes.Equal(k1, k2))
	}
	os.Chmod(file, 0o644)
	if _, err := LoadKEK("", file); err == nil {
		t.Error("world-readable KEK file accepted")
	}
	env := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, KEKSize))
	k3, err := LoadKEK(env, file)
	if err != nil || k3[0] != 1 {
		t.Fatalf("KEK from env: %v", err)
	}
	if _, err := LoadKEK("bm90IGVub3VnaA==", file); err == nil {
		t.Error("short KEK from env accepted")
	}
}
