package policybench

import (
	"fmt"
	"testing"

	"github.com/writ-dev/writ/internal/resource"
)

// BenchmarkCompileStored measures compiling a stored policy set (what
// `writ serve` does at start and after a delete) at 1,000 rules.
//
// BenchmarkApplyCompile measures the compiling an apply of one changed
// policy costs the server when 1,000 rules are stored: everything between
// receiving the document and installing the new snapshot, without the
// store and the audit event.
func BenchmarkCompileStored(b *testing.B) {
	st := storedSet(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		compileStored(b, st)
	}
}

func BenchmarkApplyCompile(b *testing.B) {
	st := storedSet(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		applyCompile(b, st)
	}
}

// stored is a generated policy set as files and as the store holds it.
type stored struct {
	docs  []resource.Document
	specs [][]byte
}

func storedSet(tb testing.TB, n int) stored {
	tb.Helper()
	docs, err := resource.Parse("bench.yaml", []byte(generate(n).yaml))
	if err != nil {
		tb.Fatal(err)
	}
	st := stored{docs: docs}
	for _, d := range docs {
		spec, err := encodeSpec(d)
		if err != nil {
			tb.Fatal(err)
		}
		st.specs = append(st.specs, spec)
	}
	if len(st.specs) == 0 {
		tb.Fatal(fmt.Errorf("no policies generated"))
	}
	return st
}
