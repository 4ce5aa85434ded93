package journal

import (
	"path/filepath"
	"testing"
)

// BenchmarkBeginDone is one access's journal work: a record of an access
// event's size begun and settled, with compaction every MaxSize bytes.
func BenchmarkBeginDone(b *testing.B) {
	j, err := Open(Config{Path: filepath.Join(b.TempDir(), "j")})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	rec := make([]byte, 800)
	for i := range rec {
		rec[i] = byte('a' + i%26)
	}
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		t, err := j.Begin(rec)
		if err != nil {
			b.Fatal(err)
		}
		j.Done(t)
	}
}
