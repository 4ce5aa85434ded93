package revoke_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

func open(t *testing.T, now func() time.Time) (*sqlite.DB, *revoke.List, *audittest.Recorder) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &audittest.Recorder{}
	l, err := revoke.New(context.Background(), revoke.Config{Store: db, Emitter: rec, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return db, l, rec
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	_, l, rec := open(t, nil)
	for _, r := range []store.Revocation{
		{Kind: store.RevokeInstance, Value: "inst_bad", Actor: "admin:admin"},
		{Kind: store.RevokeTask, Value: "task_bad"},
		{Kind: store.RevokeToken, Value: "jti_bad"},
		{Kind: store.RevokeSpiffeID, Value: "spiffe://writ.local/agent/evil"},
	} {
		if _, created, err := l.Revoke(ctx, r); err != nil || !created {
			t.Fatalf("Revoke(%+v): created %v err %v", r, created, err)
		}
	}
	good := revoke.Target{SpiffeID: "spiffe://writ.local/agent/ok", Instance: "inst_ok", Task: "task_ok", TokenID: "jti_ok"}
	for _, tc := range []struct {
		name     string
		mutate   func(*revoke.Target)
		wantKind string
	}{
		{"nothing revoked", func(*revoke.Target) {}, ""},
		{"token", func(x *revoke.Target) { x.TokenID = "jti_bad" }, store.RevokeToken},
		{"task", func(x *revoke.Target) { x.Task = "task_bad" }, store.RevokeTask},
		{"instance", func(x *revoke.Target) { x.Instance = "inst_bad" }, store.RevokeInstance},
		{"spiffe id", func(x *revoke.Target) { x.SpiffeID = "spiffe://writ.local/agent/evil" }, store.RevokeSpiffeID},
		{"empty fields never match", func(x *revoke.Target) { *x = revoke.Target{} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := good
			tc.mutate(&tg)
			r, ok := l.Check(tg)
			if ok != (tc.wantKind != "") || r.Kind != tc.wantKind {
				t.Errorf("Check(%+v) = %+v, %v; want kind %q", tg, r, ok, tc.wantKind)
			}
		})
	}
	if !l.InstanceRevoked("inst_bad", "spiffe://writ.local/agent/ok") || l.InstanceRevoked("inst_ok", "spiffe://writ.local/agent/ok") {
		t.Error("InstanceRevoked disagrees with Check")
	}
	if _, created, err := l.Revoke(ctx, store.Revocation{Kind: store.RevokeTask, Value: "task_bad"}); err != nil || created {
		t.Errorf("revoking twice: created %v err %v; want no-op", created, err)
	}
	if evs := rec.Events(); len(evs) != 4 || evs[0].Type != audit.Revocation || evs[0].Instance != "inst_bad" || evs[1].Task != "task_bad" {
		t.Errorf("audit events = %+v; want 4 revocation events with the target field set", evs)
	}
}

func TestBadInput(t *testing.T) {
	_, l, _ := open(t, nil)
	for _, r := range []store.Revocation{
		{Kind: "user", Value: "x"},
		{Kind: store.RevokeTask, Value: ""},
		{Kind: store.RevokeTask, Value: "a\nb"},
	} {
		if _, _, err := l.Revoke(context.Background(), r); err == nil {
			t.Errorf("Revoke(%+v) succeeded; want an error", r)
		}
	}
}

func TestSurvivesRestartAndPrunes(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	db, l, _ := open(t, clock)
	if _, _, err := l.Revoke(ctx, store.Revocation{Kind: store.RevokeToken, Value: "jti_1", ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Revoke(ctx, store.Revocation{Kind: store.RevokeInstance, Value: "inst_1"}); err != nil {
		t.Fatal(err)
	}
	l2, err := revoke.New(ctx, revoke.Config{Store: db, Emitter: audit.Discard, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if !l2.Revoked(store.RevokeToken, "jti_1") || !l2.Revoked(store.RevokeInstance, "inst_1") {
		t.Fatal("revocations lost across a restart")
	}
	now = now.Add(10 * time.Minute)
	if n, err := l2.Prune(ctx); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if l2.Revoked(store.RevokeToken, "jti_1") || !l2.Revoked(store.RevokeInstance, "inst_1") {
		t.Error("Prune removed the wrong revocations")
	}
}

// TestWatchNotifies checks that a watcher learns of a revocation, and only
// once it has taken effect. How fast is a benchmark's question
// (bench/tokens BenchmarkRevocationToStream), never a test's: a loaded
// machine must not fail it.
func TestWatchNotifies(t *testing.T) {
	_, l, _ := open(t, nil)
	ch, cancel := l.Watch()
	defer cancel()
	go func() {
		if _, _, err := l.Revoke(context.Background(), store.Revocation{Kind: store.RevokeInstance, Value: "inst_x"}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatal("watcher not notified")
	}
	if !l.Revoked(store.RevokeInstance, "inst_x") {
		t.Fatal("notified before the revocation took effect")
	}
}

func BenchmarkCheck(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, err := revoke.New(context.Background(), revoke.Config{Store: db, Emitter: audit.Discard})
	if err != nil {
		b.Fatal(err)
	}
	l.Revoke(context.Background(), store.Revocation{Kind: store.RevokeTask, Value: "task_other"})
	tg := revoke.Target{SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_a", Task: "task_a", TokenID: "jti_a"}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := l.Check(tg); ok {
				b.Fatal("revoked")
			}
		}
	})
}

func TestLift(t *testing.T) {
	ctx := context.Background()
	db, l, rec := open(t, nil)
	if _, _, err := l.Revoke(ctx, store.Revocation{Kind: store.RevokeTask, Value: "task_1", Reason: "injected"}); err != nil {
		t.Fatal(err)
	}
	ch, cancel := l.Watch()
	defer cancel()
	got, err := l.Lift(ctx, store.RevokeTask, "task_1", "admin:admin", "false alarm")
	if err != nil || got.Reason != "injected" {
		t.Fatalf("Lift = %+v, %v", got, err)
	}
	if _, dead := l.Check(revoke.Target{Task: "task_1"}); dead {
		t.Error("a lifted revocation still kills its task's credentials")
	}
	select {
	case <-ch:
	default:
		t.Error("watchers were not told of the lift")
	}
	if list, _ := db.ListRevocations(ctx, time.Time{}); len(list) != 0 {
		t.Errorf("the store still holds %+v", list)
	}
	last, _ := rec.Last(audit.RevocationLifted)
	if last.Type != audit.RevocationLifted || last.Task != "task_1" || last.Actor != "admin:admin" || last.Reason != "false alarm" || last.Action != "lift" {
		t.Errorf("event = %+v", last)
	}
	if _, err := l.Lift(ctx, store.RevokeTask, "task_1", "admin:admin", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Lift: %v, want ErrNotFound", err)
	}
	// A reloaded list does not bring it back.
	l2, err := revoke.New(ctx, revoke.Config{Store: db, Emitter: rec})
	if err != nil {
		t.Fatal(err)
	}
	if l2.Revoked(store.RevokeTask, "task_1") {
		t.Error("the lifted revocation came back after a reload")
	}
}
