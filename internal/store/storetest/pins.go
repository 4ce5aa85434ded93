package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/writ-dev/writ/internal/store"
)

// RunPins runs the conformance tests of [store.Pins].
func RunPins(t *testing.T, open Opener) {
	t.Run("Pins", func(t *testing.T) { testPins(t, open(t)) })
	t.Run("PinsConcurrent", func(t *testing.T) { testPinsConcurrent(t, open(t)) })
}

func testPins(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := store.Pin{Server: "files", Tool: "read_file", Digest: "sha256:aa", Observed: "sha256:aa", Shape: "sha256:bb", State: store.PinPinned}
	got, err := s.CreatePin(ctx, in)
	if err != nil {
		t.Fatalf("CreatePin: %v", err)
	}
	if got.Revision != 1 || got.FirstSeen.IsZero() || !got.UpdatedAt.Equal(got.FirstSeen) {
		t.Errorf("created: revision %d first seen %v updated %v, want 1 and equal times", got.Revision, got.FirstSeen, got.UpdatedAt)
	}
	if _, err := s.CreatePin(ctx, in); !errors.Is(err, store.ErrExists) {
		t.Errorf("second CreatePin: err %v, want ErrExists", err)
	}
	back, err := s.GetPin(ctx, "files", "read_file")
	if err != nil {
		t.Fatalf("GetPin: %v", err)
	}
	if back.Digest != in.Digest || back.Observed != in.Observed || back.Shape != in.Shape || back.State != store.PinPinned || back.Revision != 1 || !back.FirstSeen.Equal(got.FirstSeen) {
		t.Errorf("GetPin = %+v, want the fields of %+v", back, in)
	}
	if _, err := s.GetPin(ctx, "files", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPin(missing): err %v, want ErrNotFound", err)
	}

	// Quarantine: a conditional update on the revision read.
	q := back
	q.Observed, q.State, q.Reason = "sha256:cc", store.PinQuarantined, "description changed"
	upd, err := s.UpdatePin(ctx, q)
	if err != nil {
		t.Fatalf("UpdatePin: %v", err)
	}
	if upd.Revision != 2 || !upd.FirstSeen.Equal(got.FirstSeen) || upd.State != store.PinQuarantined {
		t.Errorf("updated = %+v, want revision 2, the first-seen time kept", upd)
	}
	// A writer that read revision 1 loses, and learns the current pin.
	stale := back
	stale.State = store.PinApproved
	cur, err := s.UpdatePin(ctx, stale)
	if !errors.Is(err, store.ErrPrecondition) || cur.Revision != 2 || cur.State != store.PinQuarantined {
		t.Errorf("stale UpdatePin = %+v, %v; want ErrPrecondition with revision 2", cur, err)
	}
	if _, err := s.UpdatePin(ctx, store.Pin{Server: "files", Tool: "nope", Revision: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdatePin(missing): err %v, want ErrNotFound", err)
	}
	appr := upd
	appr.Digest, appr.State, appr.Reason, appr.Actor = appr.Observed, store.PinApproved, "", "admin:alice"
	if _, err := s.UpdatePin(ctx, appr); err != nil {
		t.Fatal(err)
	}
	back, _ = s.GetPin(ctx, "files", "read_file")
	if back.State != store.PinApproved || back.Digest != "sha256:cc" || back.Actor != "admin:alice" || back.Reason != "" || back.Revision != 3 {
		t.Errorf("after approval: %+v", back)
	}

	for _, p := range []store.Pin{{Server: "files", Tool: "write_file"}, {Server: "git", Tool: "log"}, {Server: "alpha", Tool: "z"}} {
		p.State, p.Observed, p.Shape = store.PinPinned, "sha256:1", "sha256:2"
		if _, err := s.CreatePin(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ListPins(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range all {
		keys = append(keys, p.Server+"/"+p.Tool)
	}
	if want := []string{"alpha/z", "files/read_file", "files/write_file", "git/log"}; !equalStrings(keys, want) {
		t.Errorf("ListPins(\"\") = %v, want %v", keys, want)
	}
	files, err := s.ListPins(ctx, "files")
	if err != nil || len(files) != 2 || files[0].Tool != "read_file" || files[1].Tool != "write_file" {
		t.Errorf("ListPins(files) = %+v, %v", files, err)
	}
	if none, err := s.ListPins(ctx, "nope"); err != nil || len(none) != 0 {
		t.Errorf("ListPins(nope) = %+v, %v", none, err)
	}
	if err := s.DeletePin(ctx, "files", "write_file"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePin(ctx, "files", "write_file"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeletePin: err %v, want ErrNotFound", err)
	}
}

// Two gateways that see a new tool at once: exactly one creates the pin;
// of concurrent updates from one revision exactly one applies.
func testPinsConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.CreatePin(ctx, store.Pin{Server: "s", Tool: "t", Observed: "sha256:1", Shape: "sha256:2", State: store.PinPinned})
		}()
	}
	wg.Wait()
	if created := countNil(errs); created != 1 {
		t.Fatalf("%d concurrent creates succeeded, want 1: %v", created, errs)
	}
	p, err := s.GetPin(ctx, "s", "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := p
			q.State = store.PinQuarantined
			_, errs[i] = s.UpdatePin(ctx, q)
		}()
	}
	wg.Wait()
	if updated := countNil(errs); updated != 1 {
		t.Fatalf("%d concurrent updates from revision %d succeeded, want 1: %v", updated, p.Revision, errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("losing update: %v, want ErrPrecondition", err)
		}
	}
}

func countNil(errs []error) int {
	n := 0
	for _, err := range errs {
		if err == nil {
			n++
		}
	}
	return n
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
