package journal

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkBeginDone is one access's journal work: a record of an access
// event's size begun and settled, with compaction every MaxSize bytes;
// with inflight records unsettled at any time, as under load, where a
// record is settled once its batch is in the audit log (tens of ms).
func BenchmarkBeginDone(b *testing.B) {
	for _, inflight := range []int{0, 500} {
		b.Run(fmt.Sprintf("inflight-%d", inflight), func(b *testing.B) {
			j, err := Open(Config{Path: filepath.Join(b.TempDir(), "j")})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			rec := make([]byte, 800)
			for i := range rec {
				rec[i] = byte('a' + i%26)
			}
			fifo := make([]Ticket, 0, inflight+1)
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				t, err := j.Begin(rec)
				if err != nil {
					b.Fatal(err)
				}
				fifo = append(fifo, t)
				if len(fifo) > inflight {
					j.Done(fifo[0])
					fifo = append(fifo[:0], fifo[1:]...)
				}
			}
		})
	}
}
