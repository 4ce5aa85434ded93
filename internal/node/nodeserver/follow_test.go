package nodeserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
)

// peer is a second server on the store of an env: its own registry,
// revocation list, hub and publisher, following the feed.
type peer struct {
	reg *registry.Registry
	rev *revoke.List
	hub *nodeserver.Hub
	pub *nodeserver.Publisher
}

func newPeer(t *testing.T, e *env) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &peer{}
	var err error
	if p.reg, err = registry.New(ctx, registry.Config{TrustDomain: td, Store: e.db, Emitter: audit.Discard}); err != nil {
		t.Fatal(err)
	}
	if p.rev, err = revoke.New(ctx, revoke.Config{Store: e.db, Emitter: audit.Discard}); err != nil {
		t.Fatal(err)
	}
	if p.hub, err = nodeserver.NewHub(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	p.pub = &nodeserver.Publisher{Store: e.db, Hub: p.hub, Entries: p.reg, Revocations: p.rev, Bundles: e.ca}
	if err := p.pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go p.pub.Run(ctx)
	go p.pub.Follow(ctx, func(ctx context.Context, kinds map[string]bool) error {
		if kinds[nodeapi.KindEntry] {
			if err := p.reg.Reload(ctx); err != nil {
				return err
			}
		}
		if kinds[nodeapi.KindRevocation] {
			return p.rev.Reload(ctx)
		}
		return nil
	})
	return p
}

// TestFollowPublishesOnce: two servers on one store. A change made
// through A reaches B's own state (B enforces it), and the feed holds it
// once: B, reloading it, does not publish it again.
func TestFollowPublishesOnce(t *testing.T) {
	ctx := context.Background()
	a := newEnv(t)
	go a.pub.Follow(ctx, func(ctx context.Context, kinds map[string]bool) error {
		if kinds[nodeapi.KindRevocation] {
			return a.rev.Reload(ctx)
		}
		return nil
	})
	b := newPeer(t, a)
	start, err := a.db.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.rev.Revoke(ctx, store.Revocation{Kind: store.RevokeSpiffeID, Value: "spiffe://writ.local/x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.reg.Create(ctx, "test", store.Entry{Name: "e1", SpiffeID: "spiffe://writ.local/e1",
		Selectors: []store.Selector{{Type: "unix", Value: "uid:1"}}}); err != nil {
		t.Fatal(err)
	}
	// Without PostgreSQL's NOTIFY, B's hub is woken by hand, as the
	// server's listener does.
	deadline := time.Now().Add(20 * time.Second)
	for !b.rev.Revoked(store.RevokeSpiffeID, "spiffe://writ.local/x") || len(b.reg.List()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("B never took in A's changes: revoked %v, entries %d", b.rev.Revoked(store.RevokeSpiffeID, "spiffe://writ.local/x"), len(b.reg.List()))
		}
		b.hub.Poke(ctx)
		time.Sleep(20 * time.Millisecond)
	}
	// Give B's publisher time to (wrongly) publish what it reloaded.
	time.Sleep(300 * time.Millisecond)
	b.hub.Poke(ctx)
	changes, err := a.db.ChangesSince(ctx, start, 100)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, c := range changes {
		count[c.Kind+" "+c.Key]++
	}
	for _, k := range []string{nodeapi.KindRevocation + " spiffe_id/spiffe://writ.local/x", nodeapi.KindEntry + " e1"} {
		if count[k] != 1 {
			t.Errorf("change %s is in the feed %d times, want once (feed: %v)", k, count[k], count)
		}
	}
	// A lift through B reaches A's list and is published once too.
	if _, err := b.rev.Lift(ctx, store.RevokeSpiffeID, "spiffe://writ.local/x", "test", "done"); err != nil {
		t.Fatal(err)
	}
	for a.rev.Revoked(store.RevokeSpiffeID, "spiffe://writ.local/x") {
		if time.Now().After(deadline) {
			t.Fatal("A never took in B's lift")
		}
		a.hub.Poke(ctx)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFollowPinsOnce: a pin changed through server A (a quarantine a
// node reported to A) reaches server B's follower as a pin change, and B
// does not publish it again when its own pins change later.
func TestFollowPinsOnce(t *testing.T) {
	ctx := context.Background()
	a := newEnv(t)
	// B publishes pins only: no Run (whose first full diff, racing A's
	// changes, may publish what it finds as its own; nodes apply that
	// twice harmlessly).
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hub, err := nodeserver.NewHub(cctx, a.db)
	if err != nil {
		t.Fatal(err)
	}
	b := &nodeserver.Publisher{Store: a.db, Hub: hub, Entries: a.reg, Revocations: a.rev, Bundles: a.ca,
		Pins: func(ctx context.Context) ([]store.Pin, error) { return a.db.ListPins(ctx, "") }}
	if err := b.Start(cctx); err != nil {
		t.Fatal(err)
	}
	pins := make(chan struct{}, 16)
	go b.Follow(cctx, func(_ context.Context, kinds map[string]bool) error {
		if kinds[nodeapi.KindPin] {
			pins <- struct{}{}
		}
		return nil
	})
	start, err := a.db.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Without PostgreSQL's NOTIFY, B's hub is woken by hand until B's
	// follower has taken the change in.
	tookIn := func() {
		for {
			hub.Poke(ctx)
			select {
			case <-pins:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	pin, err := a.db.CreatePin(ctx, store.Pin{Server: "inbox", Tool: "read", Digest: "sha256:a", Observed: "sha256:a", Shape: "sha256:s", State: store.PinPinned})
	if err != nil {
		t.Fatal(err)
	}
	a.pub.PinsChanged(ctx)
	tookIn()
	pin.State, pin.Observed = store.PinQuarantined, "sha256:b"
	if _, err := a.db.UpdatePin(ctx, pin); err != nil {
		t.Fatal(err)
	}
	a.pub.PinsChanged(ctx)
	tookIn()
	b.PinsChanged(ctx) // B's own pins changed: nothing of A's is published again
	changes, err := a.db.ChangesSince(ctx, start, 100)
	if err != nil {
		t.Fatal(err)
	}
	var published int
	for _, c := range changes {
		if c.Kind == nodeapi.KindPin {
			published++
		}
	}
	if published != 2 {
		t.Errorf("%d pin changes in the feed, want 2 (the pin and its quarantine, once each): %+v", published, changes)
	}
}
