package keys

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// PKCS11Config names a PKCS#11 token. Exactly one of TokenLabel,
// TokenSerial and Slot selects the token.
type PKCS11Config struct {
	// Module is the path of the token's PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	Module      string
	TokenLabel  string
	TokenSerial string
	Slot        *int
	// PIN is the user PIN. It is never logged or put in an error.
	PIN string
}

// PKCS11 keeps keys in a PKCS#11 token (an HSM, a smart card, SoftHSM2).
// Keys are generated in the token as sensitive, non-extractable ECDSA
// P-256 key pairs whose CKA_ID and CKA_LABEL name the writ key id; the
// handle in writ's store holds only that id.
type PKCS11 struct {
	ctx   *crypto11.Context
	where string
}

var _ Provider = (*PKCS11)(nil)

// OpenPKCS11 loads the module, finds the token and logs in.
func OpenPKCS11(c PKCS11Config) (*PKCS11, error) {
	var where string
	n := 0
	if c.TokenLabel != "" {
		where, n = fmt.Sprintf("token %q", c.TokenLabel), n+1
	}
	if c.TokenSerial != "" {
		where, n = fmt.Sprintf("token with serial %q", c.TokenSerial), n+1
	}
	if c.Slot != nil {
		where, n = fmt.Sprintf("slot %d", *c.Slot), n+1
	}
	if n != 1 {
		return nil, errors.New("keys.pkcs11: set exactly one of token_label, token_serial and slot")
	}
	if c.Module == "" {
		return nil, errors.New("keys.pkcs11.module: not set; name the token's PKCS#11 library (for SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)")
	}
	if _, err := os.Stat(c.Module); err != nil {
		return nil, fmt.Errorf("keys.pkcs11.module: %v (install the token's PKCS#11 library, e.g. the softhsm2 package, or fix the path)", err)
	}
	if c.PIN == "" {
		return nil, fmt.Errorf("keys.pkcs11: no PIN for %s; set pin_env or pin_file", where)
	}
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path:        c.Module,
		TokenLabel:  c.TokenLabel,
		TokenSerial: c.TokenSerial,
		SlotNumber:  c.Slot,
		Pin:         c.PIN,
		GCMIVLength: 12,
	})
	if err != nil {
		return nil, fmt.Errorf("keys.pkcs11: open %s in %s: %s", where, c.Module, pkcs11Reason(err))
	}
	return &PKCS11{ctx: ctx, where: where}, nil
}

// pkcs11Reason turns a crypto11 error into advice. crypto11 never puts the
// PIN into its errors; this keeps only the PKCS#11 return code.
func pkcs11Reason(err error) string {
	var p pkcs11.Error
	switch {
	case errors.As(err, &p) && p == pkcs11.CKR_PIN_INCORRECT:
		return "the PIN is incorrect (check keys.pkcs11.pin_env or pin_file)"
	case errors.As(err, &p) && p == pkcs11.CKR_PIN_LOCKED:
		return "the PIN is locked (the token's security officer must unlock it)"
	case errors.As(err, &p) && p == pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
		return "the token's user PIN is not initialized (initialize the token first)"
	case strings.Contains(err.Error(), "could not find PKCS#11 token"):
		return "no such token (list the tokens with `softhsm2-util --show-slots` or `pkcs11-tool -L`)"
	}
	return err.Error()
}

// Kind returns KindPKCS11.
func (p *PKCS11) Kind() string { return KindPKCS11 }

// Generate makes a key pair inside the token.
func (p *PKCS11) Generate(_ context.Context, id string, _ []byte) (crypto.Signer, []byte, error) {
	if err := checkID(id); err != nil {
		return nil, nil, err
	}
	s, err := p.ctx.GenerateECDSAKeyPairWithLabel([]byte(id), []byte("writ "+id), elliptic.P256())
	if err != nil {
		return nil, nil, fmt.Errorf("generate key %s in pkcs11 %s: %s", id, p.where, pkcs11Reason(err))
	}
	return s, deviceHandle(KindPKCS11, []byte(id)), nil
}

// Load finds the key pair named by handle in the token.
func (p *PKCS11) Load(_ context.Context, id string, _, handle []byte) (crypto.Signer, error) {
	kid, err := handlePayload(KindPKCS11, handle)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", id, err)
	}
	if string(kid) != id {
		return nil, fmt.Errorf("load key %s: its handle names token key %q (the store was modified outside writ)", id, kid)
	}
	s, err := p.ctx.FindKeyPairs(kid, nil)
	if err != nil {
		return nil, fmt.Errorf("load key %s from pkcs11 %s: %s", id, p.where, pkcs11Reason(err))
	}
	if len(s) != 1 {
		return nil, fmt.Errorf("load key %s: pkcs11 %s has %d keys with that id, want 1 (was the token re-initialized, or is this another token?)", id, p.where, len(s))
	}
	return s[0], nil
}

// Destroy deletes the key pair from the token. A key already gone is not
// an error.
func (p *PKCS11) Destroy(_ context.Context, id string, handle []byte) error {
	kid, err := handlePayload(KindPKCS11, handle)
	if err != nil {
		return fmt.Errorf("destroy key %s: %w", id, err)
	}
	found, err := p.ctx.FindKeyPairs(kid, nil)
	if err != nil {
		return fmt.Errorf("destroy key %s in pkcs11 %s: %s", id, p.where, pkcs11Reason(err))
	}
	for _, s := range found {
		if err := s.Delete(); err != nil {
			return fmt.Errorf("destroy key %s in pkcs11 %s: %s", id, p.where, pkcs11Reason(err))
		}
	}
	return nil
}

// Close logs out and unloads the module.
func (p *PKCS11) Close() error { return p.ctx.Close() }

// pkcs11KEKID is the CKA_ID of the AES key that wraps writ's KEK.
const pkcs11KEKID = "writ-kek"

// wrapper returns an AEAD under the token's KEK-wrapping AES-256 key,
// generating the key in the token if it is missing.
func (p *PKCS11) wrapper(create bool) (cipher.AEAD, error) {
	found, err := p.ctx.FindKeys([]byte(pkcs11KEKID), nil)
	if err != nil {
		return nil, fmt.Errorf("find the KEK wrapping key in pkcs11 %s: %s", p.where, pkcs11Reason(err))
	}
	if len(found) > 1 {
		return nil, fmt.Errorf("pkcs11 %s has %d KEK wrapping keys %q, want 1", p.where, len(found), pkcs11KEKID)
	}
	var k *crypto11.SecretKey
	if len(found) == 1 {
		k = found[0]
	} else {
		if !create {
			return nil, fmt.Errorf("pkcs11 %s has no KEK wrapping key %q (was the token re-initialized, or is this another token?)", p.where, pkcs11KEKID)
		}
		if k, err = p.ctx.GenerateSecretKeyWithLabel([]byte(pkcs11KEKID), []byte("writ key-encryption key wrapper"), 256, crypto11.CipherAES); err != nil {
			return nil, fmt.Errorf("generate the KEK wrapping key in pkcs11 %s: %s", p.where, pkcs11Reason(err))
		}
	}
	g, err := k.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("pkcs11 %s: %v", p.where, err)
	}
	return panicSafeAEAD{g}, nil
}

// panicSafeAEAD turns crypto11's panics in Seal into errors.
type panicSafeAEAD struct{ cipher.AEAD }

func (a panicSafeAEAD) seal(nonce, pt, ad []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("encrypt in token: %v", r)
		}
	}()
	return a.Seal(nil, nonce, pt, ad), nil
}

// WrapKEK encrypts kek inside the token.
func (p *PKCS11) WrapKEK(kek []byte) ([]byte, error) {
	g, err := p.wrapper(true)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	ct, err := g.(panicSafeAEAD).seal(nonce, kek, []byte(pkcs11KEKID))
	if err != nil {
		return nil, fmt.Errorf("wrap the key-encryption key in pkcs11 %s: %v", p.where, err)
	}
	return append(nonce, ct...), nil
}

// UnwrapKEK decrypts a KEK made by WrapKEK inside the token.
func (p *PKCS11) UnwrapKEK(blob []byte) ([]byte, error) {
	g, err := p.wrapper(false)
	if err != nil {
		return nil, err
	}
	if len(blob) < g.NonceSize()+g.Overhead() {
		return nil, errors.New("wrapped key-encryption key is too short")
	}
	kek, err := g.Open(nil, blob[:g.NonceSize()], blob[g.NonceSize():], []byte(pkcs11KEKID))
	if err != nil {
		return nil, fmt.Errorf("unwrap the key-encryption key in pkcs11 %s: %s (is this the token that wrapped it?)", p.where, pkcs11Reason(err))
	}
	return kek, nil
}
