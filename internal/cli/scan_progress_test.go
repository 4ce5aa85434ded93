package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestScanProgress(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	p := newProgress(&buf, func() time.Time { return now })
	now = now.Add(time.Second)
	p.update(4 << 20)
	if got := buf.String(); !strings.Contains(got, "scanned 4.0 MiB, 4.0 MiB/s") {
		t.Fatalf("progress = %q", got)
	}
	// Within 200 ms of the last line: no new line.
	now = now.Add(100 * time.Millisecond)
	p.update(5 << 20)
	if strings.Count(buf.String(), "\r") != 1 {
		t.Fatalf("progress printed again within 200 ms: %q", buf.String())
	}
	p.done()
	if !strings.HasSuffix(buf.String(), "\n") || !strings.Contains(buf.String(), "scanned 5.0 MiB") {
		t.Fatalf("done = %q", buf.String())
	}
	if isTerminal(&buf) {
		t.Fatal("a buffer is a terminal")
	}
}

// With the total known, the line shows the share done and the time left
// at the rate so far.
func TestScanProgressETA(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	p := newProgress(&buf, func() time.Time { return now })
	p.expect(10 << 20)
	now = now.Add(2 * time.Second)
	p.update(4 << 20)
	if got := buf.String(); !strings.Contains(got, "scanned 4.0 MiB, 2.0 MiB/s, 40% of 10.0 MiB, ETA 3s") {
		t.Fatalf("progress = %q", got)
	}
	now = now.Add(3 * time.Second)
	p.update(10 << 20)
	if got := buf.String(); !strings.Contains(got, "100% of 10.0 MiB   ") || strings.Count(got, "ETA") != 1 {
		t.Fatalf("finished = %q", got)
	}
}
