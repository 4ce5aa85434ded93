package policy

import (
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/resource"
)

// TestExamples runs the shipped examples/policy PolicyTest documents: the
// email-drafting agent's policy must pass its own tests.
func TestExamples(t *testing.T) {
	docs, err := resource.Load("../../examples/policy")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range snap.Warnings() {
		t.Errorf("warning in example: %s", w)
	}
	results, err := RunTests(docs, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 15 {
		t.Fatalf("only %d cases ran", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s: %s/%s: %v", r.Position(), r.Suite, r.Case, r.Failures)
		}
	}
}
