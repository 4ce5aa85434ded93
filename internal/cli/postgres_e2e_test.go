package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
)

// TestPostgresServeRefused: until the lineage and alert stores are on
// PostgreSQL, writ serve refuses store.driver postgres (fail closed) with
// a message that says so. (The two-server end-to-end test that ran
// before those stores existed is in this file's history.)
func TestPostgresServeRefused(t *testing.T) {
	cfg := servertest.Config(t.TempDir())
	cfg.Store.Driver, cfg.Store.DSN = "postgres", "postgres://writ:hunter2secret@127.0.0.1:5432/writ"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := server.New(context.Background(), cfg, server.Options{})
	if err == nil || !strings.Contains(err.Error(), "not on PostgreSQL yet") || strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("server.New on postgres = %v, want a refusal without the password", err)
	}
}

func TestAuditVerifyDSNErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "verify", "--dsn", "postgres://u:hunter2secret@127.0.0.1:notaport/x"}, "--dsn: open store: parse connection string"},
		{[]string{"audit", "verify", "--dsn", "postgres://u@127.0.0.1/x", "--db", "/tmp/x.db"}, "--db and --dsn name two stores"},
	} {
		var out, errb strings.Builder
		code := Main(tc.args, strings.NewReader(""), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), tc.want) || strings.Contains(errb.String(), "hunter2secret") {
			t.Errorf("writ %s: exit %d, stderr %q; want an error with %q and no password", strings.Join(tc.args, " "), code, errb.String(), tc.want)
		}
	}
}
