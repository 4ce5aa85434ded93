// Package benchlog builds the large audit logs the benchmarks read
// (bench/learn, bench/lineage): n events of a generator appended to a
// real SQLite store through the audit log, built once into a directory
// and reused by later runs; and the CPU time of the process (getrusage),
// since the benchmark machine is shared and wall time says little.
package benchlog

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// Build returns the path of dir/NAME-N.db, a store whose audit log holds
// the events event(0) … event(n-1) (after the log's own opening events),
// building it when it is not there yet. The log's clock follows the
// events' times.
func Build(b testing.TB, dir, name string, n int, event func(i int) audit.Event) string {
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.db", name, n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	ctx := context.Background()
	tmp := filepath.Join(dir, fmt.Sprintf("%s-%d-building.db", name, n))
	db, err := sqlite.Open(ctx, tmp, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	var now time.Time
	l, err := auditlog.Open(ctx, auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]audit.Event, 0, 1000)
	for i := range n {
		batch = append(batch, event(i))
		if len(batch) == cap(batch) || i == n-1 {
			now = batch[len(batch)-1].Time
			if err := audit.EmitBatch(ctx, l, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := l.Close(ctx); err != nil {
		b.Fatal(err)
	}
	db.Close()
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Rename(sqlite.AuditIndexPath(tmp)+sfx, sqlite.AuditIndexPath(path)+sfx)
		os.Rename(tmp+sfx, path+sfx)
	}
	return path
}

// CPU returns the CPU time (user and system) the process has used.
func CPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MaxRSS returns the process's peak resident set in MB.
func MaxRSS() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // kB on Linux
}
