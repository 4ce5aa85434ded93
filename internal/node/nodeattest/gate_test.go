package nodeattest

import (
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/store"
)

func TestGates(t *testing.T) {
	for _, bad := range []string{"", "attestor", "attestor:", ":x", "x509pop:subject cn", "a:\x00", "a:" + strings.Repeat("b", 300)} {
		if err := ValidateGate(bad); err == nil {
			t.Errorf("ValidateGate(%q) accepted", bad)
		}
	}
	for _, good := range []string{"attestor:tpm", "x509pop:subject:cn:host-1", "join_token:id:jt_1"} {
		if err := ValidateGate(good); err != nil {
			t.Errorf("ValidateGate(%q): %v", good, err)
		}
	}
	n := store.Node{Attestor: "x509pop", Selectors: []store.Selector{{Type: "x509pop", Value: "subject:cn:host-1"}}}
	have := Gates(n)
	if strings.Join(have, " ") != "attestor:x509pop x509pop:subject:cn:host-1" {
		t.Errorf("Gates = %v", have)
	}
	e := store.Entry{Selectors: []store.Selector{{Type: "node", Value: "attestor:x509pop"}, {Type: "unix", Value: "uid:0"}}}
	req := Required(e)
	if !Satisfied(req, have) || Satisfied(append(req, "attestor:tpm"), have) || !Satisfied(nil, nil) {
		t.Errorf("Satisfied: required %v against %v", req, have)
	}
	if Satisfied([]string{"attestor:x509pop"}, Gates(store.Node{Attestor: "join_token"})) {
		t.Error("a join-token node satisfies an entry gated to x509pop")
	}
}

// FuzzValidateGate: an accepted node selector value is one token of
// printable characters with a kind and a rest, never longer than 256.
func FuzzValidateGate(f *testing.F) {
	f.Add("attestor:tpm")
	f.Add("x509pop:subject:cn:host-1")
	f.Add("a: b")
	f.Fuzz(func(t *testing.T, v string) {
		if ValidateGate(v) != nil {
			return
		}
		kind, rest, ok := strings.Cut(v, ":")
		if !ok || kind == "" || rest == "" || len(v) > 256 || strings.ContainsAny(v, " \t\n\r\x00") {
			t.Fatalf("accepted %q", v)
		}
	})
}
