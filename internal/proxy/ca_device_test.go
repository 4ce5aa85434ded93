package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/keys/keystest"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// TestCAInToken keeps the interception CA's key in a PKCS#11 token: the
// leaves it signs verify, the store holds only the token handle, and a
// second load finds the same CA.
func TestCAInToken(t *testing.T) {
	ctx := context.Background()
	tk := keystest.SoftHSM(t)
	hsm, err := keys.OpenPKCS11(tk.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Close()
	sealer, _ := keys.NewSealer(bytes.Repeat([]byte{5}, keys.KEKSize))
	set := &keys.Set{Software: keys.Software{Sealer: sealer}, PKCS11: hsm, Use: map[keys.Purpose]string{keys.PurposeProxyCA: keys.KindPKCS11}}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ca, err := LoadCA(ctx, db, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := db.ListKeys(ctx, KeyKind)
	if err != nil || len(recs) != 1 {
		t.Fatalf("stored proxy CA keys: %d, %v", len(recs), err)
	}
	if kind, _ := keys.HandleKind(recs[0].Sealed); kind != keys.KindPKCS11 {
		t.Fatalf("proxy CA key kept by %q, want pkcs11", kind)
	}
	leaf, err := ca.Leaf("api.example")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "api.example"}); err != nil {
		t.Fatalf("leaf signed in the token does not verify: %v", err)
	}
	again, err := LoadCA(ctx, db, set, nil)
	if err != nil || !again.Certificate().Equal(ca.Certificate()) {
		t.Fatalf("second load: %v", err)
	}
}
