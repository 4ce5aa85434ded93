package ca

import (
	"context"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/keys/keystest"
	"github.com/writ-dev/writ/internal/store"
)

// deviceSet opens a fresh device of kind and returns a provider set that
// makes the CA and JWT keys in it, and a function that opens the device
// again (as a restarted writ would).
func deviceSet(t testing.TB, kind string) (*keys.Set, func() *keys.Set) {
	t.Helper()
	sealer := newSealer(t, 1)
	use := map[keys.Purpose]string{keys.PurposeX509CA: kind, keys.PurposeJWT: kind}
	var (
		open func() *keys.Set
		prev *keys.Set
	)
	switch kind {
	case keys.KindPKCS11:
		tk := keystest.SoftHSM(t)
		open = func() *keys.Set {
			p, err := keys.OpenPKCS11(tk.Config())
			if err != nil {
				t.Fatal(err)
			}
			s := &keys.Set{Software: keys.Software{Sealer: sealer}, PKCS11: p, Use: use}
			t.Cleanup(func() { s.Close() })
			return s
		}
	case keys.KindTPM:
		sim := keystest.SWTPM(t)
		open = func() *keys.Set {
			// swtpm serves one connection at a time: a restarted writ
			// is the only client, so the previous one goes first.
			if prev != nil {
				prev.Close()
			}
			p, err := keys.OpenTPM(sim.Config())
			if err != nil {
				t.Fatal(err)
			}
			s := &keys.Set{Software: keys.Software{Sealer: sealer}, TPM: p, Use: use}
			t.Cleanup(func() { s.Close() })
			prev = s
			return s
		}
	}
	return open(), open
}

// TestDeviceKeys runs the authority with its X.509 CA and JWT keys in a
// PKCS#11 token (SoftHSM2) and in a TPM (swtpm): SVIDs verify with
// go-spiffe, keys rotate inside the device, a restart finds them, and the
// stored handles never hold a private key.
func TestDeviceKeys(t *testing.T) {
	for _, kind := range []string{keys.KindPKCS11, keys.KindTPM} {
		t.Run(kind, func(t *testing.T) {
			set, reopen := deviceSet(t, kind)
			e := newEnv(t, func(c *Config) { c.Providers = set; c.Sealer = nil })
			ctx := context.Background()
			check := func(a *Authority, jwt bool) {
				t.Helper()
				now := e.clock.Now()
				chain, err := a.SignX509SVID(ctx, X509SVIDParams{ID: drafter, PublicKey: workloadKey(t).Public(), Instance: "inst_1"})
				if err != nil {
					t.Fatal(err)
				}
				if id, _, err := x509svid.Verify(chain, a.X509Bundle(), x509svid.WithTime(now)); err != nil || id != drafter {
					t.Fatalf("x509svid.Verify: %v, %v", id, err)
				}
				if !jwt {
					return
				}
				token, _, err := a.SignJWTSVID(ctx, JWTSVIDParams{ID: drafter, Audience: []string{"db"}, Instance: "inst_1"})
				if err != nil {
					t.Fatal(err)
				}
				// go-spiffe checks expiry against the wall clock; the
				// test clock starts at the real time.
				if _, err := jwtsvid.ParseAndValidate(token, a.JWTBundle(), []string{"db"}); err != nil {
					t.Fatalf("jwtsvid.ParseAndValidate: %v", err)
				}
			}
			inDevice := func(wantKeys int) {
				t.Helper()
				n := 0
				for _, k := range []string{store.KeyX509CA, store.KeyJWT} {
					recs, err := e.db.ListKeys(ctx, k)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range recs {
						if got, err := keys.HandleKind(r.Sealed); err != nil || got != kind {
							t.Errorf("%s key %s is kept by %q (%v), want %s", k, r.ID, got, err, kind)
						}
						n++
					}
				}
				if n != wantKeys {
					t.Errorf("%d keys stored, want %d", n, wantKeys)
				}
			}
			check(e.a, true)
			inDevice(2)
			first, err := e.db.ListKeys(ctx, store.KeyX509CA)
			if err != nil {
				t.Fatal(err)
			}

			// Forced rotation: a new key made in the device signs; the old
			// one stays published until its NotAfter.
			for _, k := range []string{store.KeyX509CA, store.KeyJWT} {
				if err := e.a.Rotate(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			check(e.a, true)
			inDevice(4)

			// A restarted writ with a new connection to the device loads
			// the same keys (for the TPM, after the simulator restarted).
			e.cfg.Providers = reopen()
			check(e.restart(t), true)

			// After their NotAfter the retired keys are removed, from the
			// store and from the token. (The JWT-SVID check is skipped:
			// go-spiffe validates against the wall clock.)
			e.clock.Advance(DefaultCATTL + time.Minute)
			check(e.restart(t), false)
			if kind == keys.KindPKCS11 {
				if _, err := e.cfg.Providers.Load(ctx, first[0].ID, nil, first[0].Sealed); err == nil {
					t.Error("the expired CA key is still in the token")
				}
			}
		})
	}
}
