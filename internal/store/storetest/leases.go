package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// RunLeases runs the conformance tests of the Leases aggregate.
func RunLeases(t *testing.T, open Opener) {
	t.Run("Leases", func(t *testing.T) { testLeases(t, open(t)) })
	t.Run("LeasesConcurrent", func(t *testing.T) { testLeasesConcurrent(t, open(t)) })
}

func testLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	ttl := 10 * time.Second
	l, ok, err := s.AcquireLease(ctx, "ca-rotation", "server-a", t0, ttl)
	if err != nil || !ok || l.Holder != "server-a" || l.Token != 1 || !l.ExpiresAt.Equal(t0.Add(ttl)) {
		t.Fatalf("first AcquireLease = %+v, %v, %v; want held by server-a, token 1, until t0+10s", l, ok, err)
	}
	l, ok, err = s.AcquireLease(ctx, "ca-rotation", "server-b", t0.Add(5*time.Second), ttl)
	if err != nil || ok || l.Holder != "server-a" || l.Token != 1 {
		t.Errorf("AcquireLease by another holder before expiry = %+v, %v, %v; want refused, held by server-a", l, ok, err)
	}
	l, ok, err = s.AcquireLease(ctx, "ca-rotation", "server-a", t0.Add(8*time.Second), ttl)
	if err != nil || !ok || l.Token != 1 || !l.ExpiresAt.Equal(t0.Add(18*time.Second)) {
		t.Errorf("renewal = %+v, %v, %v; want held, token kept, until t0+18s", l, ok, err)
	}
	if l, ok, err := s.AcquireLease(ctx, "pruning", "server-b", t0, ttl); err != nil || !ok || l.Token != 1 {
		t.Errorf("another lease name = %+v, %v, %v; want held by server-b (leases are independent)", l, ok, err)
	}
	// Expired: another holder takes it over, with a new token.
	l, ok, err = s.AcquireLease(ctx, "ca-rotation", "server-b", t0.Add(18*time.Second), ttl)
	if err != nil || !ok || l.Holder != "server-b" || l.Token != 2 {
		t.Errorf("AcquireLease after expiry = %+v, %v, %v; want held by server-b, token 2", l, ok, err)
	}
	// Release by a non-holder does nothing; by the holder frees it.
	if err := s.ReleaseLease(ctx, "ca-rotation", "server-a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.AcquireLease(ctx, "ca-rotation", "server-a", t0.Add(19*time.Second), ttl); ok {
		t.Error("a release by a non-holder freed the lease")
	}
	if err := s.ReleaseLease(ctx, "ca-rotation", "server-b"); err != nil {
		t.Fatal(err)
	}
	l, ok, err = s.AcquireLease(ctx, "ca-rotation", "server-a", t0.Add(19*time.Second), ttl)
	if err != nil || !ok || l.Holder != "server-a" || l.Token != 3 {
		t.Errorf("AcquireLease after release = %+v, %v, %v; want held by server-a, token 3", l, ok, err)
	}
	for _, bad := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", ttl}, {"x", "", ttl}, {"x", "a", 0}} {
		if _, ok, err := s.AcquireLease(ctx, bad.name, bad.holder, t0, bad.ttl); err == nil || ok {
			t.Errorf("AcquireLease(%q, %q, %v) = %v, %v; want an error", bad.name, bad.holder, bad.ttl, ok, err)
		}
	}
}

// testLeasesConcurrent checks that of many holders asking at once, exactly
// one holds the lease.
func testLeasesConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []string
		errs []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("server-%d", i)
			_, ok, err := s.AcquireLease(ctx, "rotation", holder, t0, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				won = append(won, holder)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || len(won) != 1 {
		t.Fatalf("%d concurrent AcquireLease: winners %v, errors %v; want exactly one winner", n, won, errs)
	}
}
