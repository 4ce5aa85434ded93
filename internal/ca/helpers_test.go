package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var testTD = spiffeid.RequireTrustDomainFromString("writ.test")

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// count returns how many events of typ and kind are in ev.
func count(ev []audit.Event, typ audit.Type, kind string) int {
	n := 0
	for _, e := range ev {
		if e.Type == typ && e.Details["kind"] == kind {
			n++
		}
	}
	return n
}

func openStore(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newStore(t testing.TB) *sqlite.DB {
	return openStore(t, filepath.Join(t.TempDir(), "writ.db"))
}

func newSealer(t testing.TB, b byte) *keys.Sealer {
	t.Helper()
	s, err := keys.NewSealer(bytes.Repeat([]byte{b}, keys.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// env is an Authority under test with its parts.
type env struct {
	a     *Authority
	db    *sqlite.DB
	clock *clock
	rec   *audittest.Recorder
	cfg   Config
}

// newEnv creates an Authority over a fresh SQLite store. edit may change
// the config before New.
func newEnv(t testing.TB, edit func(*Config)) *env {
	t.Helper()
	e := &env{db: newStore(t), clock: newClock(time.Now().Truncate(time.Second)), rec: &audittest.Recorder{}}
	e.cfg = Config{
		TrustDomain: testTD,
		Keys:        e.db,
		Resources:   e.db,
		Sealer:      newSealer(t, 1),
		Emitter:     e.rec,
		Now:         e.clock.Now,
	}
	if edit != nil {
		edit(&e.cfg)
	}
	a, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	return e
}

// restart returns a new Authority over the same store and config.
func (e *env) restart(t testing.TB) *Authority {
	t.Helper()
	a, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	return a
}

// tick applies the transitions due at the clock's time, as Run would.
func (e *env) tick(t testing.TB) {
	t.Helper()
	if err := e.a.reconcile(context.Background(), ""); err != nil {
		t.Fatalf("reconcile at %s: %v", e.clock.Now(), err)
	}
}

// storeKeys lists the stored keys of kind.
func (e *env) storeKeys(t testing.TB, kind string) []store.Key {
	t.Helper()
	ks, err := e.db.ListKeys(context.Background(), kind)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// keyIDs returns the ids of the stored keys of kind in state, oldest first.
func (e *env) keyIDs(t testing.TB, kind, state string) []string {
	t.Helper()
	var ids []string
	for _, k := range e.storeKeys(t, kind) {
		if k.State == state {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

func workloadKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// caCert returns the certificate of the stored x509-ca key id.
func (e *env) caCert(t testing.TB, id string) *x509.Certificate {
	t.Helper()
	for _, k := range e.storeKeys(t, store.KeyX509CA) {
		if k.ID == id {
			c, err := x509.ParseCertificates(k.Cert)
			if err != nil {
				t.Fatal(err)
			}
			return c[0]
		}
	}
	t.Fatalf("no x509-ca key %s in the store", id)
	return nil
}

func seq(t testing.TB, a *Authority) uint64 {
	t.Helper()
	n, ok := a.Bundle().SequenceNumber()
	if !ok {
		t.Fatal("bundle has no sequence number")
	}
	return n
}
