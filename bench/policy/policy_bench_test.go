package policybench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

var sizes = []int{10, 1000, 10000}

func compileWrit(tb testing.TB, set policySet) *policy.Snapshot {
	tb.Helper()
	docs, err := resource.Parse("bench.yaml", []byte(set.yaml))
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

func compileOPA(tb testing.TB, set policySet) rego.PreparedEvalQuery {
	tb.Helper()
	pq, err := rego.New(
		rego.Query("data.writ.decision.effect"),
		rego.Module("writ.rego", set.rego),
	).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatalf("prepare rego: %v", err)
	}
	return pq
}

// opaInputs converts the requests to OPA's AST once, outside any timing,
// so OPA is measured on evaluation alone (its most favourable setting).
func opaInputs(tb testing.TB, reqs []*policy.Request) []ast.Value {
	tb.Helper()
	out := make([]ast.Value, len(reqs))
	for i, r := range reqs {
		v, err := ast.InterfaceToValue(regoInput(r))
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = v
	}
	return out
}

func opaEffect(tb testing.TB, pq rego.PreparedEvalQuery, in ast.Value) string {
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(in))
	if err != nil {
		tb.Fatal(err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		tb.Fatalf("rego result = %+v", rs)
	}
	return rs[0].Expressions[0].Value.(string)
}

// TestEquivalent checks that the two policy sets really are equivalent:
// writ and OPA reach the same effect on every benchmark request, and the
// mix exercises every effect.
func TestEquivalent(t *testing.T) {
	for _, n := range []int{10, 1000} {
		set := generate(n)
		snap, pq := compileWrit(t, set), compileOPA(t, set)
		if snap.Rules() != n {
			t.Fatalf("writ compiled %d rules, want %d", snap.Rules(), n)
		}
		reqs := requests(set.policies, 2000, 1)
		ins := opaInputs(t, reqs)
		count := map[string]int{}
		for i, r := range reqs {
			d := snap.Decide(r)
			if got := opaEffect(t, pq, ins[i]); got != string(d.Effect) {
				t.Fatalf("rules=%d request %d (%+v): writ %s by %q, OPA %s", n, i, r, d.Effect, d.Rule, got)
			}
			count[string(d.Effect)]++
		}
		for _, e := range []policy.Effect{policy.Allow, policy.Deny, policy.ApprovalRequired} {
			if count[string(e)] < 100 {
				t.Fatalf("rules=%d: only %d %s decisions: %v", n, count[string(e)], e, count)
			}
		}
		t.Logf("rules=%d: %v", n, count)
	}
}

// BenchmarkDecision measures one decision at 10, 1,000 and 10,000 rules
// for writ and for OPA on the same requests, and reports the median and
// 99th percentile of single-decision latency (timed one by one; the clock
// reads add about 30-50ns) besides Go's mean ns/op and allocations.
func BenchmarkDecision(b *testing.B) {
	for _, n := range sizes {
		set := generate(n)
		reqs := requests(set.policies, 4096, 42)
		b.Run(fmt.Sprintf("engine=writ/rules=%d", n), func(b *testing.B) {
			snap := compileWrit(b, set)
			for _, r := range reqs { // warm the pools and caches
				snap.Decide(r)
			}
			measure(b, func(i int) { snap.Decide(reqs[i%len(reqs)]) })
		})
		b.Run(fmt.Sprintf("engine=opa/rules=%d", n), func(b *testing.B) {
			pq := compileOPA(b, set)
			ins := opaInputs(b, reqs)
			ctx := context.Background()
			measure(b, func(i int) {
				if _, err := pq.Eval(ctx, rego.EvalParsedInput(ins[i%len(ins)])); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkDecisionWithLimiter is writ's decision plus charging the rate
// obligations in a shared limiter, as an enforcement point does.
func BenchmarkDecisionWithLimiter(b *testing.B) {
	set := generate(1000)
	reqs := requests(set.policies, 4096, 42)
	snap := compileWrit(b, set)
	e := policy.NewEngine(policy.Config{Limiter: newLimiter()}, snap)
	ctx := context.Background()
	measure(b, func(i int) { e.Decide(ctx, reqs[i%len(reqs)]) })
}

func measure(b *testing.B, decide func(i int)) {
	samples := make([]time.Duration, 0, min(b.N, 1<<20))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		decide(i)
		if len(samples) < cap(samples) {
			samples = append(samples, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	if len(samples) > 0 {
		b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
	}
}

func newLimiter() *ratelimit.Limiter { return ratelimit.New() }
