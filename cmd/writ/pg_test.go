package main

import (
	"context"
	"net/url"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
)

// scriptDatabase creates an empty PostgreSQL database dropped when the
// script ends, and returns its DSN (the pgdsn and pgdatabase commands).
func scriptDatabase(ts *testscript.TestScript) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, drop, err := pgtest.Create(ctx)
	ts.Check(err)
	ts.Defer(func() {
		if err := drop(); err != nil {
			ts.Logf("%v", err)
		}
	})
	return dsn
}

// pgDatabase implements the pgdatabase script command.
func pgDatabase(ts *testscript.TestScript) {
	u, err := url.Parse(scriptDatabase(ts))
	ts.Check(err)
	ts.Setenv("PGADMINURL", u.String())
	ts.Setenv("PGADMINUSER", u.User.Username())
	u.User = nil
	ts.Setenv("PGURL", u.String())
}
