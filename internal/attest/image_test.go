package attest

import (
	"context"
	"errors"
	"os"
	"testing"
)

// TestWatchImage: a watch on this test's own process holds while it runs
// the executable attested, refuses an attestation of another image, and
// reports its own closing.
func TestWatchImage(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()
	p, err := a.PeerFromPID(ctx, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	res, err := a.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.WatchImage(p, res)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := w.Check(); err != nil {
			t.Fatalf("Check of an unchanged process: %v", err)
		}
	}
	other := res
	other.exe.ino++
	if _, err := a.WatchImage(p, other); !errors.Is(err, ErrImageChanged) {
		t.Errorf("WatchImage with another image's attestation: %v, want ErrImageChanged", err)
	}
	if _, err := a.WatchImage(p, Result{PID: res.PID}); err == nil {
		t.Error("WatchImage with a result that is no attestation succeeded")
	}
	w.Close()
	w.Close()
	if err := w.Check(); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("Check after Close: %v", err)
	}
}
