package ca

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// TestRotationLease checks that with Leases set, two authorities over one
// store (two servers) never rotate at once: a reconciliation waits while
// another holder has the lease, and the second of two forced rotations
// made one after the other finds the first one's keys.
func TestRotationLease(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Leases, c.LeaseHolder = nil, "" })
	e.cfg.Leases, e.cfg.LeaseHolder = e.db, "server-a"
	a := e.restart(t)
	cfgB := e.cfg
	cfgB.LeaseHolder = "server-b"
	b, err := New(context.Background(), cfgB)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Another server holds the lease: a rotation waits, and gives up
	// with ctx.
	if _, ok, err := e.db.AcquireLease(ctx, RotationLease, "server-c", e.clock.Now(), time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLease: %v %v", ok, err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = a.Rotate(short, store.KeyJWT)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "held by server-c") {
		t.Fatalf("Rotate while another server holds the lease = %v, want it to wait and name the holder", err)
	}
	before := len(e.storeKeys(t, store.KeyJWT))
	if err := e.db.ReleaseLease(ctx, RotationLease, "server-c"); err != nil {
		t.Fatal(err)
	}
	if err := a.Rotate(ctx, store.KeyJWT); err != nil {
		t.Fatalf("Rotate after release: %v", err)
	}
	// b reloads and sees a's new active key as its own.
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if a.snapshot().jwt.id != b.snapshot().jwt.id {
		t.Errorf("after Reload the servers sign with different JWT keys: %s and %s", a.snapshot().jwt.id, b.snapshot().jwt.id)
	}
	if after := len(e.storeKeys(t, store.KeyJWT)); after != before+1 {
		t.Errorf("JWT keys %d -> %d after one rotation, want one more", before, after)
	}
	// The lease is free again after each reconciliation.
	if _, ok, _ := e.db.AcquireLease(ctx, RotationLease, "server-c", e.clock.Now(), time.Minute); !ok {
		t.Error("the rotation lease was not released")
	}
}

func TestRotationLeaseNeedsHolder(t *testing.T) {
	db := newStore(t)
	_, err := New(context.Background(), Config{TrustDomain: testTD, Keys: db, Resources: db, Sealer: newSealer(t, 1), Leases: db})
	if err == nil || !strings.Contains(err.Error(), "lease holder") {
		t.Errorf("New with Leases and no holder = %v", err)
	}
}
