package nodeserver_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

func openStore(t testing.TB) *sqlite.DB {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	rec := &audittest.Recorder{}
	td := spiffeid.RequireTrustDomainFromString("writ.local")
	r, err := nodeserver.NewRegistry(ctx, nodeserver.RegistryConfig{TrustDomain: td, Store: db, Emitter: rec})
	if err != nil {
		t.Fatal(err)
	}
	secret, tok, err := r.CreateJoinToken(ctx, 0, "", "admin:1")
	if err != nil || tok.ExpiresAt.Sub(tok.CreatedAt) != nodeserver.DefaultTokenTTL {
		t.Fatalf("CreateJoinToken = %+v, %v", tok, err)
	}
	if _, _, err := r.CreateJoinToken(ctx, nodeserver.MaxTokenTTL+time.Hour, "", "admin:1"); err == nil {
		t.Error("a token longer than the maximum TTL was created")
	}
	for _, e := range rec.Events() {
		if e.Target == secret || e.Details["token"] != "" {
			t.Errorf("event %+v carries the secret", e)
		}
	}
	n, err := r.Attested(ctx, nodeattest.Result{Name: "host-1"}, "join_token")
	if err != nil || !r.Current("host-1", n.ID) {
		t.Fatalf("Attested = %+v, %v; current %v", n, err, r.Current("host-1", n.ID))
	}
	if got := r.SpiffeID("host-1").String(); got != "spiffe://writ.local/writ/node/host-1" {
		t.Errorf("SpiffeID = %s", got)
	}
	// A node choosing its name may not take over an attested node.
	if _, err := r.Attested(ctx, nodeattest.Result{Name: "host-1"}, "join_token"); !errors.Is(err, nodeattest.ErrRefused) {
		t.Errorf("takeover with an unbound token: %v, want refused", err)
	}
	// Evidence that names the node may: the old attestation stops working.
	n2, err := r.Attested(ctx, nodeattest.Result{Name: "host-1", Vouched: true}, "x509pop")
	if err != nil || r.Current("host-1", n.ID) || !r.Current("host-1", n2.ID) {
		t.Fatalf("re-attestation = %+v, %v; old current %v", n2, err, r.Current("host-1", n.ID))
	}
	if _, err := r.Evict(ctx, "host-1", "admin:1", "stolen"); err != nil {
		t.Fatal(err)
	}
	if r.Current("host-1", n2.ID) {
		t.Error("an evicted node's attestation is still current")
	}
	// Another server's registry learns it from the store.
	r2, _ := nodeserver.NewRegistry(ctx, nodeserver.RegistryConfig{TrustDomain: td, Store: db})
	if r2.Current("host-1", n2.ID) {
		t.Error("a registry loaded after the eviction takes the node as current")
	}
	if ch, _ := db.ChangesSince(ctx, 0, 10); len(ch) != 1 || ch[0].Kind != nodeserver.KindNodeEvicted || ch[0].Key != n2.ID {
		t.Errorf("change feed after eviction = %+v", ch)
	}
	if _, err := r.Evict(ctx, "nope", "admin:1", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Evict(missing): %v", err)
	}
	if got := rec.Types(); len(got) < 4 || got[len(got)-1] != audit.NodeEvicted {
		t.Errorf("events = %v", got)
	}
}
