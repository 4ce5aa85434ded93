package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// TestServeRefusesRolledBackLog: writ serve keeps its last published
// checkpoint in DATA_DIR/audit.checkpoint and refuses to start on a log
// older than it: here the newest events were deleted together with their
// checkpoints, which leaves a log that verifies on its own.
func TestServeRefusesRolledBackLog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := start(t, cfg)
	if _, err := in.client.CreateEntry(ctx, selfEntry("a", "spiffe://writ.local/agent/a")); err != nil {
		t.Fatal(err)
	}
	mid, err := in.client.AuditCheckpoint(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b", "c"} {
		if _, err := in.client.CreateEntry(ctx, selfEntry(name, "spiffe://writ.local/agent/"+name)); err != nil {
			t.Fatal(err)
		}
	}
	in.stop() // signs the final checkpoint and publishes it

	published := filepath.Join(dir, "audit.checkpoint")
	fi, err := os.Stat(published)
	if err != nil {
		t.Fatalf("no published checkpoint after a clean stop: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", published, fi.Mode().Perm())
	}
	msg, err := os.ReadFile(published)
	if err != nil {
		t.Fatal(err)
	}
	last, err := auditlog.ParseCheckpointNote(msg)
	if err != nil || last.Size <= mid.Size {
		t.Fatalf("published checkpoint = %+v, %v; want one past the middle checkpoint (size %d)", last, err, mid.Size)
	}

	// Roll the log back to the middle checkpoint: delete the newer
	// events and the checkpoints that cover them.
	db, err := sqlite.Open(ctx, cfg.Store.DSN, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DELETE FROM audit_events WHERE idx >= ?`, `DELETE FROM audit_checkpoints WHERE size > ?`} {
		if _, err := db.SQL().Exec(q, mid.Size); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	_, err = server.New(ctx, cfg, server.Options{})
	if !errors.Is(err, auditlog.ErrRolledBack) {
		t.Fatalf("start on a rolled-back log: %v, want it refused as rolled back", err)
	}
	for _, want := range []string{"published a checkpoint of " + itoa(last.Size) + " events", "now holds " + itoa(mid.Size) + " events", published, "writ audit verify"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}

	// The log left is whole in itself: only the published checkpoint
	// shows the rollback. Moved away (as the message says), writ starts.
	if err := os.Rename(published, published+".evidence"); err != nil {
		t.Fatal(err)
	}
	in = start(t, cfg)
	in.stop()
	if _, err := os.Stat(published); err != nil {
		t.Errorf("the published checkpoint was not written again: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
