package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchInput is about 1 MiB of text like what the detector scans: this
// repository's Go sources and docs (code, comments, JSON and YAML in tests)
// with a few secrets planted.
func benchInput(b testing.TB) []byte {
	b.Helper()
	var buf bytes.Buffer
	root := filepath.Join("..", "..")
	filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err != nil || buf.Len() >= 1<<20 {
			return filepath.SkipDir
		}
		if de.IsDir() && strings.HasPrefix(de.Name(), ".") && p != root {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".md") {
			data, err := os.ReadFile(p)
			if err == nil {
				buf.Write(data)
			}
		}
		return nil
	})
	for _, tc := range positives() {
		buf.WriteString("\n" + tc.text + "\n")
	}
	return buf.Bytes()
}

// BenchmarkFind measures the detector's throughput (MB/s) on source text.
func BenchmarkFind(b *testing.B) {
	d := testDetector(b)
	data := benchInput(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		d.Find(data)
	}
	reportCPU(b, int64(len(data)), cpu0)
}

// reportCPU reports MB per CPU second of the process beside Go's MB/s (per
// wall-clock second): on a shared machine the wall clock counts time spent
// waiting for a core.
func reportCPU(b *testing.B, size int64, cpu0 time.Duration) {
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
}

// BenchmarkRedactJSON measures redaction of a typical MCP tool result
// (a few KiB of JSON with one secret).
func BenchmarkRedactJSON(b *testing.B) {
	d := testDetector(b)
	var sb strings.Builder
	sb.WriteString(`{"content":[`)
	for i := 0; i < 20; i++ {
		sb.WriteString(`{"type":"text","text":"The repository has 42 open issues; see https://github.com/org/repo/issues for details.\nLast commit 83d9cd684c87d95d656c1458ef04895a7f1cbd8e by jane"},`)
	}
	sb.WriteString(`{"type":"text","text":"DATABASE_URL=postgres://app:S3cr3t-` + fake("pg", alnum, 10) + `@db:5432/app"}]}`)
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, _, err := d.RedactJSON(data); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, int64(len(data)), cpu0)
}
