// Package storetest is the conformance suite every store backend must pass.
// A backend's test calls [Run] with a function that opens a fresh, empty
// store; the suite exercises each aggregate interface of package store
// through its contract only, so SQLite and PostgreSQL behave the same.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// Opener returns a fresh, empty store. It registers its own cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	t.Run("Identities", func(t *testing.T) { testIdentities(t, open(t)) })
	t.Run("IdentityUpsert", func(t *testing.T) { testIdentityUpsert(t, open(t)) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open(t)) })
	t.Run("Instances", func(t *testing.T) { testInstances(t, open(t)) })
	t.Run("InstancesConcurrent", func(t *testing.T) { testInstancesConcurrent(t, open(t)) })
	t.Run("AdminTokens", func(t *testing.T) { testAdminTokens(t, open(t)) })
	t.Run("Resources", func(t *testing.T) { testResources(t, open(t)) })
}

func sampleIdentity(name string) store.Entry {
	return store.Entry{
		Name:      name,
		SpiffeID:  "spiffe://writ.local/agent/" + name,
		Selectors: []store.Selector{{Type: "unix", Value: "uid:1000"}, {Type: "unix", Value: "path:/usr/bin/python3"}},
		X509TTL:   30 * time.Minute,
		JWTTTL:    2 * time.Minute,
		Labels:    map[string]string{"team": "mail"},
	}
}

func testIdentities(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := sampleIdentity("drafter")
	got, err := s.CreateEntry(ctx, in)
	if err != nil {
		t.Fatalf("CreateEntry: %v", err)
	}
	if got.Revision != 1 || got.CreatedAt.IsZero() {
		t.Errorf("created identity: revision %d created %v, want 1 and a time", got.Revision, got.CreatedAt)
	}
	if _, err := s.CreateEntry(ctx, in); !errors.Is(err, store.ErrExists) {
		t.Errorf("second CreateEntry: err %v, want ErrExists", err)
	}
	back, err := s.GetEntry(ctx, "drafter")
	if err != nil {
		t.Fatalf("GetEntry: %v", err)
	}
	if back.SpiffeID != in.SpiffeID || len(back.Selectors) != 2 || back.Selectors[1] != in.Selectors[1] ||
		back.X509TTL != in.X509TTL || back.JWTTTL != in.JWTTTL || back.Labels["team"] != "mail" {
		t.Errorf("GetEntry = %+v, want fields of %+v", back, in)
	}
	if _, err := s.GetEntry(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetEntry(missing): err %v, want ErrNotFound", err)
	}
	if _, err := s.CreateEntry(ctx, sampleIdentity("alpha")); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alpha" || list[1].Name != "drafter" {
		t.Errorf("ListEntries = %v, want alpha, drafter in order", names(list))
	}
	if err := s.DeleteEntry(ctx, "drafter"); err != nil {
		t.Fatalf("DeleteEntry: %v", err)
	}
	if err := s.DeleteEntry(ctx, "drafter"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteEntry: err %v, want ErrNotFound", err)
	}
	if list, _ := s.ListEntries(ctx); len(list) != 1 {
		t.Errorf("after delete, %d identities, want 1", len(list))
	}
}

func testIdentityUpsert(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := sampleIdentity("u")
	got, changed, err := s.UpsertEntry(ctx, in)
	if err != nil || !changed || got.Revision != 1 {
		t.Fatalf("first upsert = rev %d changed %v err %v, want 1 true nil", got.Revision, changed, err)
	}
	got, changed, err = s.UpsertEntry(ctx, in)
	if err != nil || changed || got.Revision != 1 {
		t.Fatalf("same upsert = rev %d changed %v err %v, want 1 false nil", got.Revision, changed, err)
	}
	in.Selectors = in.Selectors[:1]
	got, changed, err = s.UpsertEntry(ctx, in)
	if err != nil || !changed || got.Revision != 2 {
		t.Fatalf("changed upsert = rev %d changed %v err %v, want 2 true nil", got.Revision, changed, err)
	}
	back, _ := s.GetEntry(ctx, "u")
	if len(back.Selectors) != 1 || back.Revision != 2 {
		t.Errorf("after upsert: %+v", back)
	}
}

func testKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	k1 := store.Key{ID: "k1", Kind: store.KeyJWT, State: store.KeyActive, Sealed: []byte("sealed-1"), Public: []byte("pub-1"),
		NotBefore: now, NotAfter: now.Add(time.Hour), CreatedAt: now}
	k2 := store.Key{ID: "k2", Kind: store.KeyJWT, State: store.KeyPrepared, Sealed: []byte("sealed-2"), Public: []byte("pub-2"),
		NotBefore: now, NotAfter: now.Add(2 * time.Hour), CreatedAt: now.Add(time.Second)}
	ca := store.Key{ID: "ca1", Kind: store.KeyX509CA, State: store.KeyActive, Sealed: []byte("s"), Public: []byte("p"), Cert: []byte("cert"),
		NotBefore: now, NotAfter: now.Add(time.Hour), CreatedAt: now}
	for _, k := range []store.Key{k2, k1, ca} {
		if err := s.PutKey(ctx, k); err != nil {
			t.Fatalf("PutKey %s: %v", k.ID, err)
		}
	}
	jwt, err := s.ListKeys(ctx, store.KeyJWT)
	if err != nil {
		t.Fatal(err)
	}
	if len(jwt) != 2 || jwt[0].ID != "k1" || jwt[1].ID != "k2" {
		t.Fatalf("ListKeys(jwt) = %+v, want k1, k2 oldest first", jwt)
	}
	if string(jwt[0].Sealed) != "sealed-1" || !jwt[0].NotAfter.Equal(k1.NotAfter) {
		t.Errorf("key round trip: %+v", jwt[0])
	}
	k2.State = store.KeyActive
	if err := s.PutKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	jwt, _ = s.ListKeys(ctx, store.KeyJWT)
	if jwt[1].State != store.KeyActive {
		t.Errorf("PutKey did not replace state: %+v", jwt[1])
	}
	cas, _ := s.ListKeys(ctx, store.KeyX509CA)
	if len(cas) != 1 || string(cas[0].Cert) != "cert" {
		t.Errorf("ListKeys(x509-ca) = %+v", cas)
	}
	if err := s.DeleteKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteKey: %v, want ErrNotFound", err)
	}
}

func testInstances(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := store.InstanceKey{BootID: "boot-a", PID: 42, StartTicks: 1000}
	a, err := s.InstanceFor(ctx, key, store.Instance{ID: "inst_a", UID: 1000, Exe: "/usr/bin/python3"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "inst_a" || a.PID != 42 || a.Exe != "/usr/bin/python3" {
		t.Errorf("first InstanceFor = %+v", a)
	}
	b, err := s.InstanceFor(ctx, key, store.Instance{ID: "inst_b", UID: 1000, Exe: "/usr/bin/python3"})
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != "inst_a" {
		t.Errorf("same process got instance %q, want the first one inst_a", b.ID)
	}
	// Same pid, different start time: pid reuse, a new instance.
	c, err := s.InstanceFor(ctx, store.InstanceKey{BootID: "boot-a", PID: 42, StartTicks: 2000}, store.Instance{ID: "inst_c"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "inst_c" {
		t.Errorf("reused pid got instance %q, want a new one inst_c", c.ID)
	}
	got, err := s.GetInstance(ctx, "inst_a")
	if err != nil || got.StartTick != 1000 {
		t.Errorf("GetInstance = %+v, %v", got, err)
	}
	if _, err := s.GetInstance(ctx, "inst_zzz"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetInstance(missing): %v, want ErrNotFound", err)
	}
	list, _ := s.ListInstances(ctx)
	if len(list) != 2 {
		t.Errorf("ListInstances: %d, want 2", len(list))
	}
}

func testInstancesConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := store.InstanceKey{BootID: "b", PID: 7, StartTicks: 7}
	var wg sync.WaitGroup
	ids := make([]string, 16)
	errs := make([]error, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := s.InstanceFor(ctx, key, store.Instance{ID: fmt.Sprintf("inst_%d", i)})
			ids[i], errs[i] = inst.ID, err
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("concurrent InstanceFor: %v", errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent InstanceFor for one process returned %q and %q", ids[0], ids[i])
		}
	}
}

func testAdminTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.PutAdminToken(ctx, store.AdminToken{ID: "admin", Hash: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAdminTokens(ctx)
	if err != nil || len(list) != 1 || string(list[0].Hash) != "\x01\x02\x03" {
		t.Fatalf("ListAdminTokens = %+v, %v", list, err)
	}
}

func testResources(t *testing.T, s store.Store) {
	ctx := context.Background()
	r, changed, err := s.PutResource(ctx, store.Resource{Kind: "AccessPolicy", Name: "p", Spec: []byte(`{"a":1}`), Actor: "admin"})
	if err != nil || !changed || r.Version != 1 {
		t.Fatalf("PutResource = v%d %v %v", r.Version, changed, err)
	}
	r, changed, err = s.PutResource(ctx, store.Resource{Kind: "AccessPolicy", Name: "p", Spec: []byte(`{"a":1}`), Actor: "admin"})
	if err != nil || changed || r.Version != 1 {
		t.Fatalf("unchanged PutResource = v%d %v %v, want v1 false", r.Version, changed, err)
	}
	r, changed, err = s.PutResource(ctx, store.Resource{Kind: "AccessPolicy", Name: "p", Spec: []byte(`{"a":2}`), Actor: "bob"})
	if err != nil || !changed || r.Version != 2 {
		t.Fatalf("changed PutResource = v%d %v %v, want v2 true", r.Version, changed, err)
	}
	if _, _, err := s.PutResource(ctx, store.Resource{Kind: "Service", Name: "p", Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetResource(ctx, "AccessPolicy", "p")
	if err != nil || got.Version != 2 || string(got.Spec) != `{"a":2}` || got.Actor != "bob" {
		t.Fatalf("GetResource = %+v, %v", got, err)
	}
	list, _ := s.ListResources(ctx, "AccessPolicy")
	if len(list) != 1 || list[0].Version != 2 {
		t.Fatalf("ListResources = %+v", list)
	}
	if err := s.DeleteResource(ctx, "AccessPolicy", "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetResource(ctx, "AccessPolicy", "p"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetResource after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteResource(ctx, "AccessPolicy", "p"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if list, _ := s.ListResources(ctx, "AccessPolicy"); len(list) != 0 {
		t.Errorf("ListResources after delete = %+v", list)
	}
	// Re-creating continues the version sequence, so versions in old
	// decisions stay unambiguous.
	r, _, err = s.PutResource(ctx, store.Resource{Kind: "AccessPolicy", Name: "p", Spec: []byte(`{"a":2}`)})
	if err != nil || r.Version != 4 {
		t.Errorf("re-create = v%d %v, want v4", r.Version, err)
	}
	// The history: every stored version newest first, without the
	// deletion marker (v3), bounded by limit.
	hist, err := s.ResourceHistory(ctx, "AccessPolicy", "p", 10)
	if err != nil || len(hist) != 3 || hist[0].Version != 4 || hist[1].Version != 2 || hist[2].Version != 1 ||
		string(hist[1].Spec) != `{"a":2}` || hist[1].Actor != "bob" {
		t.Errorf("ResourceHistory = %+v, %v", hist, err)
	}
	if hist, err := s.ResourceHistory(ctx, "AccessPolicy", "p", 1); err != nil || len(hist) != 1 || hist[0].Version != 4 {
		t.Errorf("ResourceHistory limit 1 = %+v, %v", hist, err)
	}
	if hist, err := s.ResourceHistory(ctx, "AccessPolicy", "nope", 10); err != nil || len(hist) != 0 {
		t.Errorf("ResourceHistory of an unknown name = %+v, %v", hist, err)
	}
}

func names(ids []store.Entry) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id.Name)
	}
	return out
}
