package account

import (
	"strings"
	"testing"
)

// The hash checked for unknown names parses with the configured cost (so
// it costs what a real check does) and matches no password.
func TestUnmatchable(t *testing.T) {
	p := Params{Memory: 64, Time: 1, Threads: 1}
	h := p.unmatchable()
	got, err := parsePHC(h)
	if err != nil {
		t.Fatalf("parsePHC(%q): %v", h, err)
	}
	if got.memory != 64 || got.time != 1 || got.threads != 1 || len(got.salt) != argonSaltLen || len(got.key) != argonKeyLen {
		t.Fatalf("unmatchable() = %q, parsed %+v; want the configured cost and full-size salt and key", h, got)
	}
	for _, pw := range []string{"", "correct horse battery", h} {
		if ok, err := CheckPassword(h, pw); err != nil || ok {
			t.Fatalf("CheckPassword(unmatchable, %q) = %v, %v; want false", pw, ok, err)
		}
	}
	if p.unmatchable() == h {
		t.Fatal("two unmatchable hashes are equal: the salt and key are not random")
	}
	if d := (Params{}).unmatchable(); !strings.Contains(d, "m=65536,t=3,p=4") {
		t.Fatalf("default unmatchable() = %q, want the default cost", d)
	}
}
