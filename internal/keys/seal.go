// Package keys protects writ's key material at rest and provides the
// crypto.Signer implementations that the authorities sign with.
//
// A [Sealer] encrypts private keys and upstream secrets with AES-256-GCM
// under a key-encryption key (KEK). The KEK comes from the WRIT_KEK
// environment variable (base64), from a file named by the operator, or from
// a 0600 file in the data directory that is generated on first start.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KEKSize is the size of a key-encryption key in bytes (AES-256).
const KEKSize = 32

// sealVersion prefixes every sealed blob so the format can evolve.
const sealVersion byte = 1

// ErrUnseal reports that a sealed blob could not be opened: wrong KEK,
// wrong associated data, or tampered ciphertext.
var ErrUnseal = errors.New("unseal: wrong key-encryption key or corrupted data")

// Sealer encrypts and decrypts small secrets under one KEK.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte KEK.
func NewSealer(kek []byte) (*Sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %v", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("create GCM: %v", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext. ad (associated data) binds the blob to its
// purpose, e.g. the key id, so a blob cannot be swapped for another.
func (s *Sealer) Seal(plaintext, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // crypto/rand.Read never fails
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+s.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, ad)
}

// Open decrypts a blob made by Seal with the same ad.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrUnseal
	}
	pt, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], ad)
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

// KEKEnv is the environment variable that may hold the base64 KEK.
const KEKEnv = "WRIT_KEK"

// LoadKEK returns the key-encryption key. In order: the base64 value of
// envValue if non-empty; the contents of file if it exists; otherwise a new
// random KEK written to file with mode 0600. An existing file with looser
// permissions is refused, because anyone who can read it can read every
// sealed secret.
func LoadKEK(envValue, file string) ([]byte, error) {
	if envValue != "" {
		kek, err := base64.StdEncoding.DecodeString(strings.TrimSpace(envValue))
		if err != nil {
			return nil, fmt.Errorf("decode %s: not base64: %v", KEKEnv, err)
		}
		if len(kek) != KEKSize {
			return nil, fmt.Errorf("decode %s: %d bytes, want %d (generate one with: head -c 32 /dev/urandom | base64)", KEKEnv, len(kek), KEKSize)
		}
		return kek, nil
	}
	if fi, err := os.Stat(file); err == nil {
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("key-encryption key file %s has mode %v; restrict it with: chmod 600 %s", file, fi.Mode().Perm(), file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read key-encryption key: %w", err)
		}
		kek, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(kek) != KEKSize {
			return nil, fmt.Errorf("key-encryption key file %s is not %d base64-encoded bytes", file, KEKSize)
		}
		return kek, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("stat key-encryption key: %w", err)
	}
	kek := make([]byte, KEKSize)
	rand.Read(kek)
	if err := writeNew(file, base64.StdEncoding.EncodeToString(kek)+"\n"); err != nil {
		return nil, fmt.Errorf("create key-encryption key file: %w", err)
	}
	return kek, nil
}
