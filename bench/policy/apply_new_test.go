package policybench

import (
	"testing"

	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
)

// This file drives the policy API the server uses for stored policies; an
// A/B run against a build before issue #11 swaps in a copy written for
// that build's API (see bench/README.md).

func encodeSpec(d resource.Document) ([]byte, error) { return policy.EncodeSpec(d) }

func storedList(st stored) []policy.Stored {
	out := make([]policy.Stored, len(st.docs))
	for i, d := range st.docs {
		out[i] = policy.Stored{Name: d.Name, Version: 1, Spec: st.specs[i]}
	}
	return out
}

func compileStored(tb testing.TB, st stored) {
	if _, err := policy.CompileStored(storedList(st)); err != nil {
		tb.Fatal(err)
	}
}

// applyCompile is the server's apply of a change to the first policy: the
// set it would leave compiled once, the document from its file and the
// rest from the store, and that snapshot installed.
func applyCompile(tb testing.TB, st stored) {
	list := storedList(st)
	in := []policy.Input{policy.FromDocument(st.docs[0], 2)}
	for _, s := range list[1:] {
		in = append(in, policy.FromStored(s))
	}
	if _, err := policy.EncodeSpec(st.docs[0]); err != nil {
		tb.Fatal(err)
	}
	if _, err := policy.CompileAll(in); err != nil {
		tb.Fatal(err)
	}
}
