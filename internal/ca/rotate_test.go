package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// signedBy reports whether the X.509-SVID leaf was signed by ca.
func signedBy(leaf, ca *x509.Certificate) bool { return leaf.CheckSignatureFrom(ca) == nil }

func (e *env) svid(t *testing.T) []*x509.Certificate {
	t.Helper()
	chain, err := e.a.SignX509SVID(context.Background(), X509SVIDParams{ID: drafter, PublicKey: workloadKey(t).Public()})
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

func (e *env) jwtKID(t *testing.T) string {
	t.Helper()
	token, _, err := e.a.SignJWTSVID(context.Background(), JWTSVIDParams{ID: drafter, Audience: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	return jwtHeader(t, token)["kid"].(string)
}

func TestRotationTimeline(t *testing.T) {
	e := newEnv(t, nil)
	start := e.clock.Now()
	at := func(d time.Duration) { e.clock.Set(start.Add(d)); e.tick(t) }
	bundleSizes := func() (int, int) {
		b := e.a.Bundle()
		return len(b.X509Authorities()), len(b.JWTAuthorities())
	}

	// Start: one active key of each kind, published.
	ev := e.rec.Take()
	if count(ev, audit.KeyActivated, store.KeyX509CA) != 1 || count(ev, audit.KeyActivated, store.KeyJWT) != 1 {
		t.Fatalf("start events %+v, want one key.activated per kind", ev)
	}
	for _, ev := range ev {
		if ev.Details["key_id"] == "" {
			t.Errorf("event %s has no key_id detail", ev.Type)
		}
	}
	x1, j1 := e.keyIDs(t, store.KeyX509CA, store.KeyActive)[0], e.keyIDs(t, store.KeyJWT, store.KeyActive)[0]
	x1Cert := e.caCert(t, x1)
	if nx, nj := bundleSizes(); nx != 1 || nj != 1 {
		t.Fatalf("start bundle has %d X.509 and %d JWT authorities, want 1 and 1", nx, nj)
	}
	seq0 := seq(t, e.a)
	if want := start.Add(12*time.Hour - backdate/2); !e.a.snapshot().next.Equal(want) {
		t.Errorf("next transition %s, want the CA key's half-life %s", e.a.snapshot().next, want)
	}

	// Just before half-life nothing changes.
	at(12*time.Hour - time.Minute)
	if ev := e.rec.Take(); len(ev) != 0 {
		t.Fatalf("events before half-life: %+v", ev)
	}

	// Half-life: the next keys are prepared and published but do not sign.
	sub, cancel := e.a.Subscribe()
	defer cancel()
	at(12*time.Hour + time.Minute)
	ev = e.rec.Take()
	if count(ev, audit.KeyPrepared, store.KeyX509CA) != 1 || count(ev, audit.KeyPrepared, store.KeyJWT) != 1 || len(ev) != 2 {
		t.Fatalf("half-life events %+v, want one key.prepared per kind", ev)
	}
	select {
	case <-sub:
	default:
		t.Error("subscriber not notified of the prepared keys")
	}
	x2, j2 := e.keyIDs(t, store.KeyX509CA, store.KeyPrepared)[0], e.keyIDs(t, store.KeyJWT, store.KeyPrepared)[0]
	x2Cert := e.caCert(t, x2)
	if nx, nj := bundleSizes(); nx != 2 || nj != 2 {
		t.Fatalf("bundle after prepare has %d X.509 and %d JWT authorities, want 2 and 2", nx, nj)
	}
	if !e.a.Bundle().HasX509Authority(x2Cert) || !e.a.Bundle().HasJWTAuthority(j2) {
		t.Fatal("prepared keys are not in the bundle")
	}
	if got := seq(t, e.a); got != seq0+1 {
		t.Errorf("sequence after prepare %d, want %d", got, seq0+1)
	}
	if leaf := e.svid(t)[0]; !signedBy(leaf, x1Cert) {
		t.Error("prepared CA key signs before activation")
	}
	if kid := e.jwtKID(t); kid != j1 {
		t.Errorf("JWT-SVID kid %s before activation, want %s", kid, j1)
	}

	// An SVID signed by the old key late in its active life.
	at(20*time.Hour - time.Minute)
	if ev := e.rec.Take(); len(ev) != 0 {
		t.Fatalf("events between prepare and activate: %+v", ev)
	}
	old := e.svid(t)

	// 5/6: the prepared keys take over; the old ones are retired but
	// still published.
	at(20*time.Hour + time.Minute)
	ev = e.rec.Take()
	for _, kind := range kinds {
		if count(ev, audit.KeyRetired, kind) != 1 || count(ev, audit.KeyActivated, kind) != 1 {
			t.Fatalf("activation events %+v, want one key.retired and one key.activated per kind", ev)
		}
	}
	select {
	case <-sub:
	default:
		t.Error("subscriber not notified of the activation")
	}
	if got := e.keyIDs(t, store.KeyX509CA, store.KeyRetired); len(got) != 1 || got[0] != x1 {
		t.Errorf("retired x509-ca keys %v, want [%s]", got, x1)
	}
	if leaf := e.svid(t)[0]; !signedBy(leaf, x2Cert) {
		t.Error("activated CA key does not sign")
	}
	if kid := e.jwtKID(t); kid != j2 {
		t.Errorf("JWT-SVID kid %s after activation, want %s", kid, j2)
	}
	if nx, nj := bundleSizes(); nx != 2 || nj != 2 {
		t.Fatalf("bundle after activation has %d X.509 and %d JWT authorities, want 2 and 2", nx, nj)
	}
	if got := seq(t, e.a); got != seq0+1 {
		t.Errorf("sequence after activation %d, want %d (the published authorities did not change)", got, seq0+1)
	}
	if _, _, err := x509svid.Verify(old, e.a.X509Bundle(), x509svid.WithTime(e.clock.Now())); err != nil {
		t.Errorf("SVID of the retired key no longer verifies: %v", err)
	}

	// Until its NotAfter the retired key stays; at NotAfter it goes.
	at(24*time.Hour - time.Second)
	if !e.a.Bundle().HasX509Authority(x1Cert) || !e.a.Bundle().HasJWTAuthority(j1) {
		t.Fatal("retired keys left the bundle before their NotAfter")
	}
	at(24 * time.Hour)
	ev = e.rec.Take()
	if count(ev, audit.KeyRemoved, store.KeyX509CA) != 1 || count(ev, audit.KeyRemoved, store.KeyJWT) != 1 || len(ev) != 2 {
		t.Fatalf("removal events %+v, want one key.removed per kind", ev)
	}
	if e.a.Bundle().HasX509Authority(x1Cert) || e.a.Bundle().HasJWTAuthority(j1) {
		t.Error("expired keys still published")
	}
	if len(e.storeKeys(t, store.KeyX509CA)) != 1 || len(e.storeKeys(t, store.KeyJWT)) != 1 {
		t.Error("expired keys still in the store")
	}
	if got := seq(t, e.a); got != seq0+2 {
		t.Errorf("sequence after removal %d, want %d", got, seq0+2)
	}

	// The cycle continues with the new key.
	at(24*time.Hour + 2*time.Minute)
	if n := len(e.keyIDs(t, store.KeyX509CA, store.KeyPrepared)); n != 1 {
		t.Errorf("%d prepared x509-ca keys at the second half-life, want 1", n)
	}
}

func TestActivationWaitsForRefreshHint(t *testing.T) {
	// A writ that was down across the half-life prepares late; the key
	// must still be published for a refresh hint before it signs.
	e := newEnv(t, func(c *Config) { c.RefreshHint = 30 * time.Minute })
	start := e.clock.Now()
	e.clock.Set(start.Add(20*time.Hour + time.Minute))
	e.tick(t)
	x1 := e.keyIDs(t, store.KeyX509CA, store.KeyActive)[0]
	if len(e.keyIDs(t, store.KeyX509CA, store.KeyPrepared)) != 1 {
		t.Fatal("no key prepared after the half-life")
	}
	e.clock.Set(start.Add(20*time.Hour + 30*time.Minute))
	e.tick(t)
	if got := e.keyIDs(t, store.KeyX509CA, store.KeyActive)[0]; got != x1 {
		t.Fatal("prepared key activated before one refresh hint passed")
	}
	e.clock.Set(start.Add(20*time.Hour + 31*time.Minute))
	e.tick(t)
	if got := e.keyIDs(t, store.KeyX509CA, store.KeyActive)[0]; got == x1 {
		t.Fatal("prepared key not activated one refresh hint after publication")
	}
}

func TestRotate(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, nil)
			e.rec.Take()
			sub, cancel := e.a.Subscribe()
			old := e.keyIDs(t, kind, store.KeyActive)[0]
			if err := e.a.Rotate(context.Background(), kind); err != nil {
				t.Fatal(err)
			}
			ev := e.rec.Take()
			if count(ev, audit.KeyPrepared, kind) != 1 || count(ev, audit.KeyRetired, kind) != 1 || count(ev, audit.KeyActivated, kind) != 1 || len(ev) != 3 {
				t.Errorf("events %+v, want prepared, retired and activated for %s only", ev, kind)
			}
			active := e.keyIDs(t, kind, store.KeyActive)
			if len(active) != 1 || active[0] == old {
				t.Fatalf("active %s keys %v after Rotate, want one new key", kind, active)
			}
			if got := e.keyIDs(t, kind, store.KeyRetired); len(got) != 1 || got[0] != old {
				t.Errorf("retired %v, want [%s]", got, old)
			}
			select {
			case <-sub:
			case <-time.After(5 * time.Second):
				t.Fatal("subscriber not notified of the rotation")
			}
			// The new key signs and verifies against the bundle.
			if kind == store.KeyJWT {
				if kid := e.jwtKID(t); kid != active[0] {
					t.Errorf("kid %s, want %s", kid, active[0])
				}
			} else if _, _, err := x509svid.Verify(e.svid(t), e.a.X509Bundle(), x509svid.WithTime(e.clock.Now())); err != nil {
				t.Error(err)
			}
			cancel()
			if _, open := <-sub; open {
				t.Error("channel still open after cancel")
			}
			cancel() // idempotent
			if err := e.a.Rotate(context.Background(), kind); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		e := newEnv(t, nil)
		if err := e.a.Rotate(context.Background(), "audit"); err == nil || !strings.Contains(err.Error(), `unknown kind "audit"`) {
			t.Errorf("Rotate(audit) = %v", err)
		}
	})
}

func TestNoNotificationWithoutChange(t *testing.T) {
	e := newEnv(t, nil)
	sub, cancel := e.a.Subscribe()
	defer cancel()
	e.clock.Advance(time.Hour)
	e.tick(t)
	select {
	case <-sub:
		t.Error("notified although nothing changed")
	default:
	}
}

func TestRestartResumes(t *testing.T) {
	e := newEnv(t, nil)
	start := e.clock.Now()
	b1 := e.a.Bundle()
	kid := e.jwtKID(t)

	a2 := e.restart(t)
	if !a2.Bundle().Equal(b1) {
		t.Fatal("bundle changed across a restart")
	}
	chain, err := a2.SignX509SVID(context.Background(), X509SVIDParams{ID: drafter, PublicKey: workloadKey(t).Public()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(chain, b1.X509Bundle(), x509svid.WithTime(start)); err != nil {
		t.Errorf("SVID after restart does not verify against the bundle from before: %v", err)
	}
	e.a = a2
	if got := e.jwtKID(t); got != kid {
		t.Errorf("JWT key %s after restart, want %s", got, kid)
	}

	// Down across the half-life: the restart catches up.
	e.clock.Set(start.Add(13 * time.Hour))
	e.a = e.restart(t)
	b3 := e.a.Bundle()
	if len(b3.X509Authorities()) != 2 || len(b3.JWTAuthorities()) != 2 {
		t.Fatalf("restart after the half-life: %d X.509 and %d JWT authorities, want 2 and 2", len(b3.X509Authorities()), len(b3.JWTAuthorities()))
	}
	if n1, n3 := seq(t, a2), seq(t, e.a); n3 <= n1 {
		t.Errorf("sequence %d after the change, want more than %d", n3, n1)
	}
	if !e.restart(t).Bundle().Equal(b3) {
		t.Error("second restart at the same time changed the bundle")
	}

	// Down for days: every key expired; fresh keys, and the sequence still
	// grows.
	before := seq(t, e.a)
	e.clock.Set(start.Add(100 * time.Hour))
	e.a = e.restart(t)
	if n := len(e.storeKeys(t, store.KeyX509CA)); n != 1 {
		t.Errorf("%d x509-ca keys after a long outage, want 1", n)
	}
	if got := e.jwtKID(t); got == kid {
		t.Error("expired JWT key still signs")
	}
	if after := seq(t, e.a); after <= before {
		t.Errorf("sequence %d after a long outage, want more than %d", after, before)
	}
	if _, _, err := x509svid.Verify(e.svid(t), e.a.X509Bundle(), x509svid.WithTime(e.clock.Now())); err != nil {
		t.Error(err)
	}
}

func TestRestartOnFile(t *testing.T) {
	// A restart with a fresh store handle on the same database file, as a
	// real process restart has.
	e := newEnv(t, nil)
	b1 := e.a.Bundle()
	db2 := openStore(t, e.db.Path())
	cfg := e.cfg
	cfg.Keys, cfg.Resources = db2, db2
	a2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !a2.Bundle().Equal(b1) {
		t.Error("bundle differs after reopening the store")
	}
}

func TestCrashRepair(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		crash func(t *testing.T, e *env) // leaves the store as a crash would
		check func(t *testing.T, e *env)
	}{
		{
			name: "crash between retire and activate",
			crash: func(t *testing.T, e *env) {
				e.clock.Advance(12*time.Hour + time.Minute)
				e.tick(t)
				for _, kind := range kinds {
					k := e.storeKeys(t, kind)[0] // the active one
					k.State = store.KeyRetired
					if err := e.db.PutKey(ctx, k); err != nil {
						t.Fatal(err)
					}
				}
			},
			check: func(t *testing.T, e *env) {
				for _, kind := range kinds {
					ks := e.storeKeys(t, kind)
					if len(ks) != 2 || ks[0].State != store.KeyRetired || ks[1].State != store.KeyActive {
						t.Errorf("%s keys %v %v, want the prepared key activated", kind, ks[0].State, ks[1].State)
					}
				}
			},
		},
		{
			name: "two active keys",
			crash: func(t *testing.T, e *env) {
				e.clock.Advance(12*time.Hour + time.Minute)
				e.tick(t)
				k := e.storeKeys(t, store.KeyJWT)[1]
				k.State = store.KeyActive
				if err := e.db.PutKey(ctx, k); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, e *env) {
				ks := e.storeKeys(t, store.KeyJWT)
				if len(ks) != 2 || ks[0].State != store.KeyRetired || ks[1].State != store.KeyActive {
					t.Errorf("jwt keys %v %v, want the older retired", ks[0].State, ks[1].State)
				}
			},
		},
		{
			name: "unknown state",
			crash: func(t *testing.T, e *env) {
				e.clock.Advance(12*time.Hour + time.Minute)
				e.tick(t)
				k := e.storeKeys(t, store.KeyJWT)[1]
				k.State = "revoked-by-a-newer-writ"
				if err := e.db.PutKey(ctx, k); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, e *env) {
				var found bool
				for _, k := range e.storeKeys(t, store.KeyJWT) {
					if k.State != "revoked-by-a-newer-writ" && k.State != store.KeyRetired {
						continue
					}
					found = true
					if k.State != store.KeyRetired {
						t.Errorf("key with an unknown state is %q, want retired", k.State)
					}
					if !e.a.Bundle().HasJWTAuthority(k.ID) {
						t.Error("key with an unknown state was unpublished before its NotAfter")
					}
				}
				if !found {
					t.Error("key with an unknown state was removed")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tt.crash(t, e)
			e.a = e.restart(t)
			tt.check(t, e)
		})
	}
}

// failingKeys is the real store with switchable write failures.
type failingKeys struct {
	store.Keys
	mu   sync.Mutex
	fail bool
}

func (f *failingKeys) setFail(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = v
}

func (f *failingKeys) PutKey(ctx context.Context, k store.Key) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return f.Keys.PutKey(ctx, k)
}

func TestStoreFailure(t *testing.T) {
	fk := &failingKeys{}
	e := newEnv(t, func(c *Config) { fk.Keys = c.Keys; c.Keys = fk })
	b := e.a.Bundle()
	kid := e.jwtKID(t)
	fk.setFail(true)
	err := e.a.Rotate(context.Background(), store.KeyJWT)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Rotate with a failing store: %v", err)
	}
	if !e.a.Bundle().Equal(b) || e.jwtKID(t) != kid {
		t.Error("a failed rotation changed the published state")
	}
	fk.setFail(false)
	if err := e.a.Rotate(context.Background(), store.KeyJWT); err != nil {
		t.Fatal(err)
	}
	if e.jwtKID(t) == kid {
		t.Error("rotation after recovery did not switch the key")
	}
}

func TestAuditFailureDoesNotStopRotation(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Emitter = audit.EmitterFunc(func(context.Context, audit.Event) error { return errors.New("log down") })
	})
	kid := e.jwtKID(t)
	if err := e.a.Rotate(context.Background(), store.KeyJWT); err != nil {
		t.Fatal(err)
	}
	if e.jwtKID(t) == kid {
		t.Error("rotation did not happen")
	}
}

func TestKeysSealedAtRest(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, kind := range kinds {
		for _, k := range e.storeKeys(t, kind) {
			der, err := e.cfg.Sealer.Open(k.Sealed, []byte(k.ID))
			if err != nil {
				t.Fatalf("open %s with its id as associated data: %v", k.ID, err)
			}
			priv, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatalf("sealed %s is not PKCS#8: %v", k.ID, err)
			}
			pub, _ := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
			if !bytes.Equal(pub, k.Public) {
				t.Errorf("sealed key %s does not match its public key", k.ID)
			}
			if bytes.Contains(k.Sealed, der) || bytes.Contains(k.Sealed, der[len(der)-64:]) {
				t.Errorf("store row of %s contains the PKCS#8 plaintext", k.ID)
			}
			if _, err := e.cfg.Sealer.Open(k.Sealed, []byte("another-id")); err == nil {
				t.Errorf("sealed %s opens under another key id", k.ID)
			}
		}
	}

	cfg := e.cfg
	cfg.Sealer = newSealer(t, 2)
	_, err := New(ctx, cfg)
	x1 := e.storeKeys(t, store.KeyX509CA)[0].ID
	if err == nil || !strings.Contains(err.Error(), x1) || !strings.Contains(err.Error(), "WRIT_KEK") {
		t.Fatalf("New with the wrong KEK: %v, want an error naming key %s and WRIT_KEK", err, x1)
	}
}

func TestTamperedStoreRefused(t *testing.T) {
	ctx := context.Background()
	other := newEnv(t, nil) // a second authority whose material we splice in
	tests := []struct {
		name   string
		tamper func(t *testing.T, e *env)
		want   string
	}{
		{"swapped JWT public key", func(t *testing.T, e *env) {
			k := e.storeKeys(t, store.KeyJWT)[0]
			k.Public = other.storeKeys(t, store.KeyJWT)[0].Public
			if err := e.db.PutKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}, "does not match the private key"},
		{"swapped CA certificate", func(t *testing.T, e *env) {
			k := e.storeKeys(t, store.KeyX509CA)[0]
			k.Cert = other.storeKeys(t, store.KeyX509CA)[0].Cert
			if err := e.db.PutKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}, "does not certify the sealed key"},
		{"sealed blob moved to another id", func(t *testing.T, e *env) {
			ks := e.storeKeys(t, store.KeyJWT)
			k := ks[0]
			k.ID = "planted"
			if err := e.db.PutKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}, "load jwt key planted: open sealed key planted: unseal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tt.tamper(t, e)
			_, err := New(ctx, e.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New over a tampered store: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
