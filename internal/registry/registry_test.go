package registry

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

func newRegistry(t *testing.T) (*Registry, *audittest.Recorder, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev := &audittest.Recorder{}
	r, err := New(context.Background(), Config{TrustDomain: spiffeid.RequireTrustDomainFromString("writ.local"), Store: db, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	return r, ev, db
}

func sel(ss ...string) []store.Selector {
	var out []store.Selector
	for _, s := range ss {
		typ, val, _ := strings.Cut(s, ":")
		out = append(out, store.Selector{Type: typ, Value: val})
	}
	return out
}

func TestValidate(t *testing.T) {
	r, _, _ := newRegistry(t)
	ok := store.Entry{Name: "a", SpiffeID: "spiffe://writ.local/agent/a", Selectors: sel("unix:uid:1000")}
	for _, tc := range []struct {
		name string
		mod  func(*store.Entry)
		want string // empty: valid
	}{
		{"valid", func(*store.Entry) {}, ""},
		{"bad name", func(i *store.Entry) { i.Name = "A B" }, `name: "A B"`},
		{"not a spiffe id", func(i *store.Entry) { i.SpiffeID = "https://x/y" }, "spiffe_id:"},
		{"other trust domain", func(i *store.Entry) { i.SpiffeID = "spiffe://evil.org/a" }, `trust domain "evil.org" is not this server's`},
		{"empty path", func(i *store.Entry) { i.SpiffeID = "spiffe://writ.local" }, "path is empty"},
		{"no selectors", func(i *store.Entry) { i.Selectors = nil }, "selectors: at least one"},
		{"unknown selector type", func(i *store.Entry) { i.Selectors = sel("k8s:ns:default") }, "selectors[0]:"},
		{"bad uid", func(i *store.Entry) { i.Selectors = sel("unix:uid:root") }, "selectors[0]:"},
		{"bad digest", func(i *store.Entry) { i.Selectors = sel("unix:uid:1", "unix:sha256:xyz") }, "selectors[1]:"},
		{"short ttl", func(i *store.Entry) { i.X509TTL = time.Second }, "x509_ttl"},
		{"negative jwt ttl", func(i *store.Entry) { i.JWTTTL = -time.Minute }, "jwt_ttl"},
		{"bad label", func(i *store.Entry) { i.Labels = map[string]string{"a b": "c"} }, "labels:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := ok
			id.Selectors = append([]store.Selector(nil), ok.Selectors...)
			tc.mod(&id)
			err := r.Validate(&id)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateNormalises(t *testing.T) {
	r, _, _ := newRegistry(t)
	id := store.Entry{Name: "a", SpiffeID: "spiffe://writ.local/a", Selectors: sel("unix:uid:1", "unix:gid:2", "unix:uid:1")}
	if err := r.Validate(&id); err != nil {
		t.Fatal(err)
	}
	if len(id.Selectors) != 2 || id.Selectors[0].String() != "unix:gid:2" {
		t.Errorf("selectors not sorted and de-duplicated: %v", id.Selectors)
	}
}

func TestMatch(t *testing.T) {
	r, ev, _ := newRegistry(t)
	ctx := context.Background()
	for _, id := range []store.Entry{
		{Name: "uid", SpiffeID: "spiffe://writ.local/uid", Selectors: sel("unix:uid:1000")},
		{Name: "uid-and-exe", SpiffeID: "spiffe://writ.local/exe", Selectors: sel("unix:uid:1000", "unix:path:/usr/bin/python3")},
		{Name: "other", SpiffeID: "spiffe://writ.local/other", Selectors: sel("unix:uid:2000")},
	} {
		if _, err := r.Create(ctx, "admin:test", id); err != nil {
			t.Fatal(err)
		}
	}
	names := func(ids []store.Entry) string {
		var n []string
		for _, i := range ids {
			n = append(n, i.Name)
		}
		return strings.Join(n, ",")
	}
	for _, tc := range []struct {
		attested []string
		want     string
	}{
		{[]string{"unix:uid:1000"}, "uid"},
		{[]string{"unix:uid:1000", "unix:gid:5", "unix:path:/usr/bin/python3"}, "uid-and-exe,uid"}, // most specific first
		{[]string{"unix:path:/usr/bin/python3"}, ""},                                               // a subset of an entry's selectors is not enough
		{[]string{"unix:uid:3000"}, ""},
		{nil, ""},
	} {
		if got := names(r.Match(sel(tc.attested...))); got != tc.want {
			t.Errorf("Match(%v) = %q, want %q", tc.attested, got, tc.want)
		}
	}
	if got := ev.Events(); len(got) != 3 || got[0].Type != audit.EntryCreated || got[0].Actor != "admin:test" {
		t.Errorf("events = %+v", got)
	}
}

func TestWatchAndUpsert(t *testing.T) {
	r, ev, db := newRegistry(t)
	ctx := context.Background()
	ch, stop := r.Watch()
	defer stop()
	id := store.Entry{Name: "w", SpiffeID: "spiffe://writ.local/w", Selectors: sel("unix:uid:1")}
	if _, created, changed, err := r.Upsert(ctx, "a", id); err != nil || !created || !changed {
		t.Fatalf("Upsert = %v %v %v", created, changed, err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("no notification after create")
	}
	if _, _, changed, err := r.Upsert(ctx, "a", id); err != nil || changed {
		t.Fatalf("unchanged Upsert reported changed=%v err=%v", changed, err)
	}
	select {
	case <-ch:
		t.Fatal("notification without a change")
	default:
	}
	if err := r.Delete(ctx, "a", "w"); err != nil {
		t.Fatal(err)
	}
	<-ch
	if len(r.Match(sel("unix:uid:1"))) != 0 {
		t.Error("deleted entry still matches")
	}
	if _, err := db.GetEntry(ctx, "w"); err == nil {
		t.Error("deleted entry still in the store")
	}
	if last, _ := ev.Last(audit.EntryDeleted); last.Type != audit.EntryDeleted || last.SpiffeID != "spiffe://writ.local/w" {
		t.Errorf("last event = %+v", last)
	}
	// A second registry over the same store sees the same entries.
	if err := r.Delete(ctx, "a", "w"); err == nil {
		t.Error("deleting a missing entry succeeded")
	}
}

func TestFromDocumentPositions(t *testing.T) {
	r, _, _ := newRegistry(t)
	src := `apiVersion: writ.dev/v1
kind: Identity
metadata:
  name: drafter
  labels: {team: mail}
spec:
  spiffe_id: spiffe://writ.local/agent/drafter
  selectors:
    - unix:uid:1000
    - unix:sha256:nothex
`
	docs, err := resource.Parse("ids.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.FromDocument(docs[0])
	if err == nil || !strings.HasPrefix(err.Error(), "ids.yaml:10:7: spec.selectors[1]:") {
		t.Fatalf("error = %v, want it at ids.yaml:10:7 spec.selectors[1]", err)
	}
	good := strings.Replace(src, "unix:sha256:nothex", "unix:gid:5", 1)
	docs, _ = resource.Parse("ids.yaml", []byte(good))
	id, err := r.FromDocument(docs[0])
	if err != nil || id.Labels["team"] != "mail" || len(id.Selectors) != 2 {
		t.Fatalf("FromDocument = %+v, %v", id, err)
	}
	bad := strings.Replace(good, "spiffe://writ.local/agent/drafter", "spiffe://other/x", 1)
	docs, _ = resource.Parse("ids.yaml", []byte(bad))
	if _, err := r.FromDocument(docs[0]); err == nil || !strings.HasPrefix(err.Error(), "ids.yaml:7:14: spec.spiffe_id:") {
		t.Fatalf("error = %v, want it at ids.yaml:7:14", err)
	}
}

// FuzzValidate feeds arbitrary SPIFFE IDs and selectors: Validate must
// never panic, and what it accepts must be in the trust domain.
func FuzzValidate(f *testing.F) {
	f.Add("spiffe://writ.local/agent/a", "unix:uid:1000")
	f.Add("spiffe://writ.local/", "unix:sha256:"+strings.Repeat("a", 64))
	f.Add("spiffe://WRIT.local/a/../b", "unix:path:/usr/bin/../bin/x")
	f.Add("", ":")
	td := spiffeid.RequireTrustDomainFromString("writ.local")
	r := &Registry{c: Config{TrustDomain: td}}
	f.Fuzz(func(t *testing.T, id, s string) {
		typ, val, _ := strings.Cut(s, ":")
		ident := store.Entry{Name: "x", SpiffeID: id, Selectors: []store.Selector{{Type: typ, Value: val}}}
		if err := r.Validate(&ident); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		sid, err := spiffeid.FromString(ident.SpiffeID)
		if err != nil || sid.TrustDomain() != td || sid.Path() == "" {
			t.Fatalf("accepted %q", id)
		}
	})
}
