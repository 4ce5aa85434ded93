package policy

import (
	"context"
	"testing"

	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

// BenchmarkDecideExample decides the email-drafter example's requests; the
// side-by-side comparison with OPA at scale is in bench/policy.
func BenchmarkDecideExample(b *testing.B) {
	docs, err := resource.Load("../../examples/policy")
	if err != nil {
		b.Fatal(err)
	}
	snap, err := Compile(docs, nil)
	if err != nil {
		b.Fatal(err)
	}
	td, err := decodeTest(docs[0])
	if err != nil {
		b.Fatal(err)
	}
	var reqs []*Request
	for _, c := range td.spec.Cases {
		r := c.Request
		if r.Now.IsZero() {
			r.Now = td.spec.Now
		}
		reqs = append(reqs, &r)
	}
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			snap.Decide(reqs[i%len(reqs)])
			i++
		}
	})
	b.Run("engine+limiter", func(b *testing.B) {
		e := NewEngine(Config{Limiter: ratelimit.New()}, snap)
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e.Decide(ctx, reqs[i%len(reqs)])
			i++
		}
	})
}
