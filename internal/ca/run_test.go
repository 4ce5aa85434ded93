package ca

import (
	"context"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// TestRunFollowsTimeline runs the rotation loop in a synctest bubble, where
// time.Now and timers are virtual, over a real SQLite store.
func TestRunFollowsTimeline(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		db, err := sqlite.Open(ctx, filepath.Join(dir, "writ.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rec := &audittest.Recorder{}
		a, err := New(ctx, Config{
			TrustDomain: testTD, Keys: db, Resources: db, Sealer: newSealer(t, 1), Emitter: rec,
			CATTL: 6 * time.Hour, JWTKeyTTL: 6 * time.Hour, X509SVIDTTL: 30 * time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec.Take()
		sub, cancelSub := a.Subscribe()
		defer cancelSub()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- a.Run(runCtx) }()

		published := func() int { return len(a.Bundle().JWTAuthorities()) }
		wait := func(d time.Duration) { time.Sleep(d); synctest.Wait() }
		j1 := a.snapshot().jwt.id

		// JWT key: NotBefore = start (a whole second), life 6h. The CA key
		// is backdated 10s, so its transitions come 5-10s earlier.
		wait(3*time.Hour - 10*time.Second)
		if n := published(); n != 1 {
			t.Fatalf("%d JWT authorities before the half-life, want 1", n)
		}
		select {
		case <-sub:
			t.Fatal("notified before anything changed")
		default:
		}
		wait(12 * time.Second)
		if n := published(); n != 2 {
			t.Fatalf("%d JWT authorities just after the half-life, want 2", n)
		}
		if n := len(a.Bundle().X509Authorities()); n != 2 {
			t.Fatalf("%d X.509 authorities just after the half-life, want 2", n)
		}
		select {
		case <-sub:
		default:
			t.Fatal("subscriber not notified of the prepared key")
		}
		wait(2 * time.Hour)
		if a.snapshot().jwt.id == j1 {
			t.Fatal("prepared key not activated at 5/6 of the old key's life")
		}
		if !a.Bundle().HasJWTAuthority(j1) {
			t.Fatal("retired key unpublished before its NotAfter")
		}
		wait(time.Hour)
		if a.Bundle().HasJWTAuthority(j1) {
			t.Fatal("old key still published after its NotAfter")
		}
		ev := rec.Take()
		for _, kind := range kinds {
			// The successor's own half-life coincides with the old key's
			// end, so a second key has been prepared by now.
			for typ, want := range map[audit.Type]int{audit.KeyPrepared: 2, audit.KeyActivated: 1, audit.KeyRetired: 1, audit.KeyRemoved: 1} {
				if got := count(ev, typ, kind); got != want {
					t.Errorf("%d %s events for %s, want %d", got, typ, kind, want)
				}
			}
		}
		ks, err := db.ListKeys(ctx, store.KeyJWT)
		if err != nil || len(ks) != 2 || ks[0].ID == j1 {
			t.Errorf("stored JWT keys %d (%v), want the active and the prepared key", len(ks), err)
		}

		stop()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after its context ended, want nil", err)
		}
	})
}

// TestRunRetriesAfterStoreFailure checks that the loop survives a failing
// store and catches up once it recovers.
func TestRunRetriesAfterStoreFailure(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		db, err := sqlite.Open(ctx, filepath.Join(dir, "writ.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		fk := &failingKeys{Keys: db}
		a, err := New(ctx, Config{TrustDomain: testTD, Keys: fk, Resources: db, Sealer: newSealer(t, 1), JWTKeyTTL: time.Hour, CATTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- a.Run(runCtx) }()

		fk.setFail(true)
		time.Sleep(45 * time.Minute)
		synctest.Wait()
		if n := len(a.Bundle().JWTAuthorities()); n != 1 {
			t.Fatalf("%d JWT authorities while the store fails, want 1", n)
		}
		fk.setFail(false)
		time.Sleep(maxSleep + time.Second)
		synctest.Wait()
		if n := len(a.Bundle().JWTAuthorities()); n != 2 {
			t.Fatalf("%d JWT authorities after the store recovered, want 2", n)
		}
		stop()
		<-done
	})
}
