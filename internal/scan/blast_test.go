package scan

import (
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/secrets"
)

func TestHostsNear(t *testing.T) {
	data := []byte("a\nb\nurl: https://user:pw@API.Example.com:8443/v1\nDB_HOST=db.internal.corp\ntoken = SECRET\nc\nd\ne\nf\nfar: https://far.example.org/\n")
	off := len("a\nb\nurl: https://user:pw@API.Example.com:8443/v1\nDB_HOST=db.internal.corp\ntoken = ")
	got := hostsNear(data, off)
	if want := []string{"api.example.com", "db.internal.corp"}; !slices.Equal(got, want) {
		t.Errorf("hosts = %v, want %v (far.example.org is more than %d lines away)", got, want, hostWindow)
	}
	if got := hostsNear([]byte("x"), 99); got != nil {
		t.Errorf("out of range: %v", got)
	}
}

// The secret that opens a service used by three agents ranks above one
// that opens nothing; a history-only secret below the same one at HEAD.
func TestRankByBlastRadius(t *testing.T) {
	no := false
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	fs := []Finding{
		{RuleID: "generic-api-key", Severity: secrets.SeverityHigh, Path: "a.env", Line: 1, Fingerprint: "f-nothing"},
		{RuleID: "github-pat", Severity: secrets.SeverityHigh, Path: "b.env", Line: 1, Fingerprint: "f-github"},
		{RuleID: "generic-api-key", Severity: secrets.SeverityMedium, Path: "c.yaml", Line: 4, Fingerprint: "f-other", Hosts: []string{"crm.internal"},
			AtHEAD: &no, Date: now.Add(-95 * 24 * time.Hour)},
		{RuleID: "generic-api-key", Severity: secrets.SeverityMedium, Path: "d.env", Line: 2, Fingerprint: "f-held"},
	}
	k := &Knowledge{
		Brokered:    map[string][]string{"f-github": {"github"}},
		Services:    []ServiceRef{{Name: "github", Host: "api.github.com", Credential: "github"}, {Name: "crm", Host: "crm.internal"}},
		Discovered:  map[string][]DiscoveredRef{"f-held": {{Credential: "h1/env:1:API_KEY", Holders: []string{"spiffe://writ.local/agent/x"}}}},
		UsedBy:      map[string][]string{"github": {"spiffe://writ.local/agent/a", "spiffe://writ.local/agent/b", "spiffe://writ.local/agent/c"}},
		CrownJewels: map[string]bool{},
		Now:         now,
	}
	r := Rank(fs, k)
	var order []string
	for _, x := range r {
		order = append(order, x.Fingerprint)
	}
	if want := []string{"f-github", "f-other", "f-held", "f-nothing"}; !slices.Equal(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
	top := r[0].Blast
	// high 3 × (1 + 4×1 + 2×3) × at HEAD 2 = 66.
	if top.Score != 66 || !slices.Equal(top.Opens, []string{"github"}) || len(top.UsedBy) != 3 || len(top.Via) != 1 {
		t.Errorf("github finding = %+v", top)
	}
	// medium 2 × (1 + 4) × history only 1 + 3 (95 days) = 13.
	if b := r[1].Blast; b.Score != 13 || b.Present || b.AgeDays != 95 || !slices.Equal(b.Opens, []string{"crm"}) {
		t.Errorf("crm finding = %+v", b)
	}
	// medium 2 × (1 + 2 holders... 1 holder = 2) × 2 = 12.
	if b := r[2].Blast; b.Score != 12 || !slices.Equal(b.Discovered, []string{"h1/env:1:API_KEY"}) || len(b.Holders) != 1 {
		t.Errorf("held finding = %+v", b)
	}
	if b := r[3].Blast; b.Score != 6 || len(b.Opens) != 0 {
		t.Errorf("lone finding = %+v", b)
	}
	k.CrownJewels["github"] = true
	if b := Radius(&fs[1], k); b.Score != 126 || !slices.Equal(b.CrownJewels, []string{"github"}) {
		t.Errorf("crown jewel = %+v", b)
	}
}

func FuzzHostsNear(f *testing.F) {
	f.Add([]byte("url: https://u:p@api.example.com/x\nkey=abc\n"), 20)
	f.Add([]byte("host: db.local\n\n\n\n"), 0)
	f.Fuzz(func(t *testing.T, data []byte, at int) {
		hs := hostsNear(data, at)
		if len(hs) > maxHosts {
			t.Fatalf("%d hosts", len(hs))
		}
		for _, h := range hs {
			if h == "" || len(h) > 253 {
				t.Fatalf("host %q", h)
			}
		}
	})
}
