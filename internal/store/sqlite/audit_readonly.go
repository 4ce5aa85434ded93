package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"
)

// OpenReadOnly opens an existing store file for reading only, without
// applying migrations, for offline tools such as `writ audit verify` that
// must not change what they inspect. A running server may have the store
// open at the same time.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open store %s: no such file (point --data-dir at the directory `writ serve` uses)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	sdb, err := sql.Open("sqlite", fileDSN(path, q))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(4)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %s read-only: %w", path, err)
	}
	return &DB{db: sdb, path: path, now: time.Now, readOnly: true}, nil
}
