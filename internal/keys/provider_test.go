package keys_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/keys/keystest"
)

type device struct {
	name string
	open func(t *testing.T) (keys.Provider, func() keys.Provider)
}

// devices returns the providers under test; each open returns a provider
// and a function that opens the same device again (as a restart would).
func devices() []device {
	return []device{
		{"software", func(t *testing.T) (keys.Provider, func() keys.Provider) {
			s, err := keys.NewSealer(bytes.Repeat([]byte{3}, keys.KEKSize))
			if err != nil {
				t.Fatal(err)
			}
			return keys.Software{Sealer: s}, func() keys.Provider { return keys.Software{Sealer: s} }
		}},
		{"pkcs11", func(t *testing.T) (keys.Provider, func() keys.Provider) {
			tk := keystest.SoftHSM(t)
			open := func() keys.Provider {
				p, err := keys.OpenPKCS11(tk.Config())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				return p
			}
			return open(), open
		}},
		{"tpm", func(t *testing.T) (keys.Provider, func() keys.Provider) {
			sim := keystest.SWTPM(t)
			open := func() keys.Provider {
				p, err := keys.OpenTPM(sim.Config())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				return p
			}
			return open(), func() keys.Provider { sim.Restart(t); return open() }
		}},
	}
}

func TestProviders(t *testing.T) {
	ctx := context.Background()
	for _, d := range devices() {
		t.Run(d.name, func(t *testing.T) {
			p, reopen := d.open(t)
			if p.Kind() != d.name {
				t.Errorf("Kind = %q", p.Kind())
			}
			s, handle, err := p.Generate(ctx, "key-1", []byte("key-1"))
			if err != nil {
				t.Fatal(err)
			}
			if kind, err := keys.HandleKind(handle); err != nil || kind != d.name {
				t.Errorf("HandleKind = %q, %v", kind, err)
			}
			digest := sha256.Sum256([]byte("hello"))
			sig, err := s.Sign(nil, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			pub := s.Public().(*ecdsa.PublicKey)
			if !ecdsa.VerifyASN1(pub, digest[:], sig) {
				t.Fatal("signature does not verify")
			}
			if _, ok := s.(*ecdsa.PrivateKey); ok != (d.name == "software") {
				t.Errorf("signer is %T: a device key must not be an in-memory private key", s)
			}

			// The same key from a new connection to the same device.
			p2 := reopen()
			s2, err := p2.Load(ctx, "key-1", []byte("key-1"), handle)
			if err != nil {
				t.Fatal(err)
			}
			if !s2.Public().(*ecdsa.PublicKey).Equal(pub) {
				t.Fatal("loaded key has another public key")
			}
			sig2, err := s2.Sign(nil, digest[:], crypto.SHA256)
			if err != nil || !ecdsa.VerifyASN1(pub, digest[:], sig2) {
				t.Fatalf("loaded key's signature: %v", err)
			}

			// A damaged handle is refused, never loaded as another key.
			bad := bytes.Clone(handle)
			bad[len(bad)-1] ^= 0x40
			if _, err := p2.Load(ctx, "key-1", []byte("key-1"), bad); err == nil {
				t.Error("a damaged handle loaded")
			}
			if _, err := p2.Load(ctx, "key-1", []byte("key-1"), handle[:len(handle)/2]); err == nil {
				t.Error("a truncated handle loaded")
			}

			if err := p2.Destroy(ctx, "key-1", handle); err != nil {
				t.Fatal(err)
			}
			if d.name == "pkcs11" {
				if _, err := p2.Load(ctx, "key-1", nil, handle); err == nil {
					t.Errorf("Load after Destroy succeeded")
				}
			}
		})
	}
}

func TestPKCS11Errors(t *testing.T) {
	tk := keystest.SoftHSM(t)
	for _, tc := range []struct {
		name string
		edit func(c *keys.PKCS11Config)
		want string
	}{
		{"missing module", func(c *keys.PKCS11Config) { c.Module = "/nonexistent/libpkcs11.so" }, "keys.pkcs11.module"},
		{"no module", func(c *keys.PKCS11Config) { c.Module = "" }, "keys.pkcs11.module: not set"},
		{"missing token", func(c *keys.PKCS11Config) { c.TokenLabel = "no-such-token" }, "no such token"},
		{"no token selector", func(c *keys.PKCS11Config) { c.TokenLabel = "" }, "exactly one of token_label"},
		{"no PIN", func(c *keys.PKCS11Config) { c.PIN = "" }, "no PIN"},
		{"wrong PIN", func(c *keys.PKCS11Config) { c.PIN = "wrong-pin-9876" }, "PIN is incorrect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tk.Config()
			tc.edit(&c)
			p, err := keys.OpenPKCS11(c)
			if err == nil {
				p.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			for _, secret := range []string{tk.PIN, "wrong-pin-9876"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a PIN", err)
				}
			}
		})
	}
}

func TestTPMErrors(t *testing.T) {
	for _, tc := range []struct {
		c    keys.TPMConfig
		want string
	}{
		{keys.TPMConfig{}, "exactly one of device and tcp"},
		{keys.TPMConfig{Device: "/dev/tpmrm0", TCP: "127.0.0.1:1"}, "exactly one of device and tcp"},
		{keys.TPMConfig{Device: "/nonexistent/tpmrm0"}, "keys.tpm.device"},
		{keys.TPMConfig{TCP: "not-an-address"}, "is not host:port"},
		{keys.TPMConfig{TCP: "127.0.0.1:1"}, "is the TPM simulator running"},
	} {
		p, err := keys.OpenTPM(tc.c)
		if err == nil {
			p.Close()
			t.Errorf("%+v: opened", tc.c)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %q does not say %q", tc.c, err, tc.want)
		}
	}
}

func TestSetLoadsByHandle(t *testing.T) {
	ctx := context.Background()
	s, _ := keys.NewSealer(bytes.Repeat([]byte{9}, keys.KEKSize))
	tk := keystest.SoftHSM(t)
	hsm, err := keys.OpenPKCS11(tk.Config())
	if err != nil {
		t.Fatal(err)
	}
	set := &keys.Set{Software: keys.Software{Sealer: s}, PKCS11: hsm, Use: map[keys.Purpose]string{keys.PurposeX509CA: keys.KindPKCS11}}
	defer set.Close()
	_, hh, err := set.Generate(ctx, keys.PurposeX509CA, "hw", []byte("hw"))
	if err != nil {
		t.Fatal(err)
	}
	_, sh, err := set.Generate(ctx, keys.PurposeJWT, "sw", []byte("sw"))
	if err != nil {
		t.Fatal(err)
	}
	if !set.Hardware(keys.PurposeX509CA) || set.Hardware(keys.PurposeJWT) {
		t.Error("Hardware does not follow Use")
	}
	for id, h := range map[string][]byte{"hw": hh, "sw": sh} {
		if _, err := set.Load(ctx, id, []byte(id), h); err != nil {
			t.Errorf("Load %s: %v", id, err)
		}
	}
	// A key made by a device this process has not configured says so.
	bare := keys.NewSoftwareSet(s)
	if _, err := bare.Load(ctx, "hw", nil, hh); err == nil || !strings.Contains(err.Error(), "keys.pkcs11 is not configured") {
		t.Errorf("Load of a token key without a token: %v", err)
	}
}

func TestDeviceKEK(t *testing.T) {
	tk := keystest.SoftHSM(t)
	hsm, err := keys.OpenPKCS11(tk.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Close()
	sim := keystest.SWTPM(t)
	tpm, err := keys.OpenTPM(sim.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	for name, dev := range map[string]interface {
		WrapKEK([]byte) ([]byte, error)
		UnwrapKEK([]byte) ([]byte, error)
	}{"pkcs11": hsm, "tpm": tpm} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			wrapped, plain := filepath.Join(dir, "kek."+name), filepath.Join(dir, "kek")
			kek, migrated, err := keys.LoadDeviceKEK(dev, wrapped, plain)
			if err != nil || migrated || len(kek) != keys.KEKSize {
				t.Fatalf("first load: %d bytes, migrated %v, %v", len(kek), migrated, err)
			}
			b, _ := os.ReadFile(wrapped)
			if bytes.Contains(b, kek) {
				t.Fatal("the wrapped file holds the KEK in the clear")
			}
			again, _, err := keys.LoadDeviceKEK(dev, wrapped, plain)
			if err != nil || !bytes.Equal(again, kek) {
				t.Fatalf("second load: %v", err)
			}
			// A plain KEK file is migrated: the same key, now wrapped.
			dir2 := t.TempDir()
			old, err := keys.LoadKEK("", filepath.Join(dir2, "kek"))
			if err != nil {
				t.Fatal(err)
			}
			got, migrated, err := keys.LoadDeviceKEK(dev, filepath.Join(dir2, "kek."+name), filepath.Join(dir2, "kek"))
			if err != nil || !migrated || !bytes.Equal(got, old) {
				t.Fatalf("migration: migrated %v, same %v, %v", migrated, bytes.Equal(got, old), err)
			}
			// Tampered and loose files are refused.
			os.WriteFile(wrapped, []byte("AAAA\n"), 0o600)
			if _, _, err := keys.LoadDeviceKEK(dev, wrapped, plain); err == nil {
				t.Error("a damaged wrapped KEK loaded")
			}
			os.Chmod(wrapped, 0o644)
			if _, _, err := keys.LoadDeviceKEK(dev, wrapped, plain); err == nil || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("a world-readable wrapped KEK: %v", err)
			}
		})
	}
}

func FuzzHandleKind(f *testing.F) {
	for _, s := range []string{"\x01abc", "WK1:pkcs11:id", "WK1:tpm:\x00\x02ab", "WK1:", "WK1:x:", "", "WK1:tpm"} {
		f.Add([]byte(s))
	}
	s, _ := keys.NewSealer(bytes.Repeat([]byte{1}, keys.KEKSize))
	set := keys.NewSoftwareSet(s)
	f.Fuzz(func(t *testing.T, h []byte) {
		kind, err := keys.HandleKind(h)
		if err == nil && kind != keys.KindSoftware && kind != keys.KindPKCS11 && kind != keys.KindTPM {
			t.Fatalf("HandleKind = %q", kind)
		}
		// Loading a hostile handle fails with an error, never a panic
		// and never a key.
		if k, err := set.Load(context.Background(), "id", []byte("id"), h); err == nil {
			t.Fatalf("hostile handle loaded %T", k)
		}
	})
}
