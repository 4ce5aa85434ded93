package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestBatchInsert inserts batches of every size up to a few chunks and
// checks that each lands whole, and that a statement refusing its rows
// (the audit writer's continuity check) leaves nothing of a
// multi-statement batch behind.
func TestBatchInsert(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "writ.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE t (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	// Like the audit append: rows go in only if the table continues at
	// the chunk's first row.
	var next int64
	b := batchInsert{conn: conn, per: 1, query: func(n int) string {
		return `INSERT INTO t (n) SELECT column1 FROM (VALUES (?)` + strings.Repeat(`,(?)`, n-1) +
			`) WHERE (SELECT COALESCE(MAX(n) + 1, 0) FROM t) = ?`
	}}
	b.extra = func(first int) []any { return []any{next + int64(first)} }
	defer b.close()
	for n := 1; n <= 700; n++ {
		args := make([]any, n)
		for i := range args {
			args[i] = next + int64(i)
		}
		got, err := b.exec(ctx, n, args)
		if err != nil || got != int64(n) {
			t.Fatalf("batch of %d: inserted %d, %v", n, got, err)
		}
		next += int64(n)
	}
	if len(b.stmts) > batchSmall+3 {
		t.Errorf("%d statements prepared, want at most %d", len(b.stmts), batchSmall+3)
	}
	// A batch that does not continue the table: nothing is inserted,
	// also when its later chunks would fit.
	for _, n := range []int{5, 300, 650} {
		from := next - 64 // the first chunk overlaps; the rest would not
		args := make([]any, n)
		for i := range args {
			args[i] = from + int64(i)
		}
		saved := next
		next = from
		got, err := b.exec(ctx, n, args)
		next = saved
		var count int64
		conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&count)
		if got == int64(n) || count != next {
			t.Errorf("batch of %d at %d: inserted %d (%v); table holds %d rows, want %d", n, from, got, err, count, next)
		}
	}
}
