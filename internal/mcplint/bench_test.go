package mcplint

import "testing"

// BenchmarkLint lints every tool of both corpora (real descriptors and
// poisoned ones) and reports tools linted per wall-clock second and per
// CPU second of the process.
func BenchmarkLint(b *testing.B) {
	l := testLinter(b)
	var tools []Tool
	for _, dir := range []string{"benign", "poisoned"} {
		for _, ct := range loadCorpus(b, dir) {
			tools = append(tools, ct.tool)
		}
	}
	b.ResetTimer()
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		l.Lint(tools)
		n += len(tools)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tools/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "tools/cpu-s")
	}
}
