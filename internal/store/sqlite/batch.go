package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
)

// batchInsert runs multi-row inserts of any number of rows on one
// connection with prepared statements only, so that a statement is parsed
// once instead of once per batch: up to batchSmall rows (the common case
// under light load) are one statement of their own size, which commits on
// its own; more are split into chunks of batchSmall and powers of two up
// to batchMaxChunk, run in one transaction. At most batchSmall+3
// statements are ever prepared.
// It is not safe for concurrent use; its owner serialises calls.
type batchInsert struct {
	conn *sql.Conn
	// query returns the statement inserting n rows.
	query func(n int) string
	// per is the number of parameters of each row.
	per int
	// extra returns parameters that follow a chunk's rows (first is the
	// chunk's first row), or nil.
	extra func(first int) []any

	stmts map[int]*sql.Stmt
}

// batchMaxChunk is the largest chunk; with up to 8 parameters a row it
// stays within SQLite's limit of 32766 parameters.
const batchMaxChunk = 256

// batchSmall is the largest batch that is one statement of its own size.
const batchSmall = 64

// exec inserts n rows whose parameters are args (per of them for each
// row) and returns how many rows were inserted.
func (b *batchInsert) exec(ctx context.Context, n int, args []any) (int64, error) {
	if len(args) != n*b.per {
		return 0, fmt.Errorf("insert %d rows: %d parameters, want %d", n, len(args), n*b.per)
	}
	multi := n > batchSmall && (n > batchMaxChunk || bits.OnesCount(uint(n)) > 1)
	if multi {
		if _, err := b.conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			return 0, err
		}
	}
	var total int64
	for first := 0; first < n; {
		size := n - first
		if size > batchSmall {
			size = min(batchMaxChunk, 1<<(bits.Len(uint(size))-1))
		}
		st, err := b.stmt(ctx, size)
		if err == nil {
			chunk := args[first*b.per : (first+size)*b.per]
			if b.extra != nil {
				chunk = append(chunk[:len(chunk):len(chunk)], b.extra(first)...)
			}
			var res sql.Result
			if res, err = st.ExecContext(ctx, chunk...); err == nil {
				var k int64
				if k, err = res.RowsAffected(); err == nil && k != int64(size) {
					// A statement refused its rows (the writer's
					// continuity check): insert none of them.
					if multi {
						b.conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
						return 0, nil
					}
					return k, nil
				}
				total += k
			}
		}
		if err != nil {
			if multi {
				// INSERT OR ROLLBACK may have ended the transaction
				// already; a ROLLBACK without one only fails.
				b.conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
			}
			return 0, err
		}
		first += size
	}
	if multi {
		if _, err := b.conn.ExecContext(ctx, `COMMIT`); err != nil {
			b.conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
			return 0, err
		}
	}
	return total, nil
}

func (b *batchInsert) stmt(ctx context.Context, size int) (*sql.Stmt, error) {
	if st := b.stmts[size]; st != nil {
		return st, nil
	}
	st, err := b.conn.PrepareContext(ctx, b.query(size))
	if err != nil {
		return nil, err
	}
	if b.stmts == nil {
		b.stmts = map[int]*sql.Stmt{}
	}
	b.stmts[size] = st
	return st, nil
}

// close closes the prepared statements.
func (b *batchInsert) close() {
	for _, st := range b.stmts {
		st.Close()
	}
	b.stmts = nil
}
