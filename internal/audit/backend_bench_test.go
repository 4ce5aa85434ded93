package audit_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

func benchRecords(from, n int) []audit.Record {
	recs := make([]audit.Record, n)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		x := from + i
		e := audit.Event{
			ID:        fmt.Sprintf("evt_%026d", x),
			Time:      t0.Add(time.Duration(x) * time.Millisecond),
			Type:      audit.AccessAllowed,
			SpiffeID:  "spiffe://writ.local/agent/mail" + strconv.Itoa(x%50),
			Instance:  "inst_" + strconv.Itoa(x%500),
			Task:      "task_" + strconv.Itoa(x%2000),
			Target:    "https://api.example.com/v1/messages",
			Action:    "POST",
			Decision:  "allow",
			Policy:    "mail@3",
			Rule:      "send",
			RequestID: "req_" + strconv.Itoa(x),
			LatencyUS: int64(x%1000 + 1),
		}
		data, err := e.MarshalCanonical()
		if err != nil {
			panic(err)
		}
		recs[i] = audit.Record{
			Index:  int64(x),
			Data:   data,
			Hashes: []tlog.Hash{sha256.Sum256(data), sha256.Sum256([]byte(strconv.Itoa(-x)))},
		}
	}
	return recs
}

// BenchmarkBackendAppend measures the store's side of a group commit:
// one transaction of 1024 events. ns/op is per event.
func BenchmarkBackendAppend(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a := db.Audit()
	const batch = 1024
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		if err := a.AppendRecords(context.Background(), benchRecords(i, n)); err != nil {
			b.Fatal(err)
		}
	}
}
