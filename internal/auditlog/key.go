package auditlog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/note"
)

// The log key is an Ed25519 signed-note key. It is stored like the CA keys:
// a store.Key of kind store.KeyAudit whose Sealed field is the note signer
// key ("PRIVATE+KEY+<name>+<hash>+<key>") sealed under the KEK with the key
// id as associated data, and whose Public field is the PKIX DER public key.
// The key id is the verifier key's "<name>+<hash>" prefix, so that the
// public verifier key can be rebuilt from the store without the KEK (for
// offline verification).

// loadSigner returns the active log key from ks, generating and storing a
// new one named name if there is none.
func loadSigner(ctx context.Context, ks store.Keys, sealer *keys.Sealer, name string, now time.Time) (note.Signer, string, error) {
	list, err := ks.ListKeys(ctx, store.KeyAudit)
	if err != nil {
		return nil, "", fmt.Errorf("load audit log key: %w", err)
	}
	for i := len(list) - 1; i >= 0; i-- {
		k := list[i]
		if k.State != store.KeyActive {
			continue
		}
		skey, err := sealer.Open(k.Sealed, []byte(k.ID))
		if err != nil {
			return nil, "", fmt.Errorf("unseal audit log key %s: %w (is this the key-encryption key the data directory was created with?)", k.ID, err)
		}
		s, err := note.NewSigner(string(skey))
		if err != nil {
			return nil, "", fmt.Errorf("load audit log key %s: %v", k.ID, err)
		}
		vkey, err := VerifierKey(k)
		if err != nil {
			return nil, "", err
		}
		if v, _ := note.NewVerifier(vkey); v == nil || v.KeyHash() != s.KeyHash() || v.Name() != s.Name() {
			return nil, "", fmt.Errorf("load audit log key %s: private and public halves do not match", k.ID)
		}
		return s, vkey, nil
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, "", fmt.Errorf("generate audit log key named %q: %w", name, err)
	}
	pub, err := verifierPublicKey(vkey)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("encode audit log public key: %w", err)
	}
	id := KeyID(vkey)
	k := store.Key{
		ID:        id,
		Kind:      store.KeyAudit,
		State:     store.KeyActive,
		Sealed:    sealer.Seal([]byte(skey), []byte(id)),
		Public:    der,
		NotBefore: now,
		CreatedAt: now,
	}
	if err := ks.PutKey(ctx, k); err != nil {
		return nil, "", fmt.Errorf("store audit log key: %w", err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("load new audit log key: %v", err)
	}
	return s, vkey, nil
}

// KeyID returns the "<name>+<hash>" prefix of a verifier key, which names
// the key without giving it.
// The key data is base64 and may itself contain '+'.
func KeyID(vkey string) string {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) < 2 {
		return vkey
	}
	return parts[0] + "+" + parts[1]
}

func verifierPublicKey(vkey string) (ed25519.PublicKey, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("verifier key %q is not NAME+HASH+KEY", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, fmt.Errorf("verifier key %q is not an Ed25519 note key", vkey)
	}
	return ed25519.PublicKey(raw[1:]), nil
}

// VerifierKey returns the signed-note verifier key ("<name>+<hash>+<key>")
// of a stored log key. It needs only the public half, so it works without
// the key-encryption key.
func VerifierKey(k store.Key) (string, error) {
	name, _, ok := strings.Cut(k.ID, "+")
	if !ok || k.Kind != store.KeyAudit {
		return "", fmt.Errorf("key %q is not an audit log key", k.ID)
	}
	pub, err := x509.ParsePKIXPublicKey(k.Public)
	if err != nil {
		return "", fmt.Errorf("audit log key %s: parse public key: %v", k.ID, err)
	}
	edpub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("audit log key %s: public key is %T, want Ed25519", k.ID, pub)
	}
	vkey, err := note.NewEd25519VerifierKey(name, edpub)
	if err != nil {
		return "", fmt.Errorf("audit log key %s: %v", k.ID, err)
	}
	if KeyID(vkey) != k.ID {
		return "", fmt.Errorf("audit log key %s: id does not match its public key (expected %s)", k.ID, KeyID(vkey))
	}
	return vkey, nil
}

// StoredVerifiers returns the verifiers of every audit log key in ks, for
// checking checkpoints without the key-encryption key. Trusting keys read
// from the store protects against accidental damage but not against
// someone who can rewrite the store; pin the key from `writ audit key`
// (see [ParseVerifierKeys]) for that.
func StoredVerifiers(ctx context.Context, ks store.Keys) (note.Verifiers, []string, error) {
	list, err := ks.ListKeys(ctx, store.KeyAudit)
	if err != nil {
		return nil, nil, fmt.Errorf("load audit log keys: %w", err)
	}
	if len(list) == 0 {
		return nil, nil, errors.New("load audit log keys: the store has no audit log key (has `writ serve` run with this data directory?)")
	}
	var vkeys []string
	for _, k := range list {
		vkey, err := VerifierKey(k)
		if err != nil {
			return nil, nil, err
		}
		vkeys = append(vkeys, vkey)
	}
	v, err := ParseVerifierKeys(vkeys...)
	return v, vkeys, err
}

// ParseVerifierKeys parses verifier keys as printed by `writ audit key`.
func ParseVerifierKeys(vkeys ...string) (note.Verifiers, error) {
	var list []note.Verifier
	for _, s := range vkeys {
		s = strings.TrimSpace(s)
		v, err := note.NewVerifier(s)
		if err != nil {
			return nil, fmt.Errorf("parse audit log key %q: %v (want the NAME+HASH+KEY line printed by `writ audit key`)", s, err)
		}
		list = append(list, v)
	}
	if len(list) == 0 {
		return nil, errors.New("parse audit log keys: no key given")
	}
	return note.VerifierList(list...), nil
}
