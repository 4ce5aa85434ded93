package auditlog_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/auditlog"
)

// rollbackLog makes a closed log with a published checkpoint file: 10
// events, a checkpoint (size 10), its checkpoint event, 10 more events and
// the final checkpoint (size 21), which the file holds.
func rollbackLog(t *testing.T) (*env, *auditlog.CheckpointFile) {
	t.Helper()
	e := newEnv(t)
	f := &auditlog.CheckpointFile{Path: filepath.Join(t.TempDir(), "audit.checkpoint")}
	cfg := e.config()
	cfg.Published = f
	l := e.open(t, cfg)
	appendN(t, l, 10)
	if _, _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	msg, err := f.Read()
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := auditlog.ParseCheckpointNote(msg); err != nil || cp.Size != 21 {
		t.Fatalf("published checkpoint after Close = %+v, %v; want size 21", cp, err)
	}
	if fi, err := os.Stat(f.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("published checkpoint file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	return e, f
}

// truncate deletes the events from index 10 on and the checkpoints that
// cover them: what is left is a whole log of 10 events whose latest
// checkpoint covers them all.
func (e *env) truncate(t *testing.T) {
	t.Helper()
	e.exec(t, `DELETE FROM audit_events WHERE idx >= 10`)
	e.exec(t, `DELETE FROM audit_checkpoints WHERE size > 10`)
	e.reopenDB(t)
}

func TestOpenRefusesRollback(t *testing.T) {
	e, f := rollbackLog(t)
	e.truncate(t)
	// On its own the truncated log is whole: verify and Open pass.
	if rep, err := e.verify(t); err != nil || rep.Size != 10 {
		t.Fatalf("Verify of the truncated log = %+v, %v; want it to pass with 10 events (no checkpoint is left to tell)", rep, err)
	}
	cfg := e.config()
	cfg.Published = f
	_, err := auditlog.Open(context.Background(), cfg)
	if !errors.Is(err, auditlog.ErrRolledBack) {
		t.Fatalf("Open of a rolled-back log = %v, want ErrRolledBack", err)
	}
	for _, want := range []string{"published a checkpoint of 21 events", "now holds 10 events", f.Path, "move " + f.Path + " away"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open error %q does not say %q", err, want)
		}
	}

	// Regrown past the published size with other events (the history
	// forks at index 10): refused as rewritten.
	l := e.open(t, e.config())
	appendN(t, l, 20)
	l.Close(context.Background())
	_, err = auditlog.Open(context.Background(), cfg)
	if !errors.Is(err, auditlog.ErrRolledBack) || !strings.Contains(err.Error(), "first 21 events no longer match") {
		t.Fatalf("Open of a log rewritten past the published checkpoint = %v, want it refused", err)
	}
}

func TestOpenWritesPublished(t *testing.T) {
	e, f := rollbackLog(t)
	// A log that extends the published checkpoint opens, and the file
	// follows the log's checkpoints.
	os.Remove(f.Path)
	cfg := e.config()
	cfg.Published = f
	l := e.open(t, cfg)
	if msg, err := f.Read(); err != nil || msg == nil {
		t.Fatalf("Open did not publish the latest checkpoint when the file was missing: %q, %v", msg, err)
	}
	appendN(t, l, 3)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	msg, _ := f.Read()
	if cp, err := auditlog.ParseCheckpointNote(msg); err != nil || cp.Size != 24 {
		t.Fatalf("published after 3 more events = %+v, %v; want size 24", cp, err)
	}
	if _, err := auditlog.Open(context.Background(), cfg); err != nil {
		t.Fatalf("reopen of an intact log: %v", err)
	}
}

func TestVerifyRemembered(t *testing.T) {
	e, f := rollbackLog(t)
	remembered, _ := f.Read()
	trusted, _, err := auditlog.StoredVerifiers(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	verify := func() (*auditlog.VerifyReport, error) {
		return auditlog.Verify(context.Background(), e.db.Audit(), auditlog.VerifyOptions{
			Trusted: trusted, Remembered: remembered, RememberedFrom: "/home/me/.config/writ/audit/x"})
	}
	rep, err := verify()
	if err != nil || rep.RememberedConsistency == nil || rep.LatestNote == nil {
		t.Fatalf("Verify of an intact log against the remembered checkpoint = %+v, %v", rep, err)
	}

	e.truncate(t)
	_, err = verify()
	var ve *auditlog.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("Verify of a truncated log = %v, want a *VerifyError", err)
	}
	for _, want := range []string{"rolled back", "covers 21 events, but the log now holds 10", "remembered in /home/me/.config/writ/audit/x"} {
		if !strings.Contains(ve.Problem, want) {
			t.Errorf("Verify = %q, want it to say %q", ve.Problem, want)
		}
	}

	l := e.open(t, e.config())
	appendN(t, l, 20)
	l.Close(context.Background())
	_, err = verify()
	if !errors.As(err, &ve) || !strings.Contains(ve.Problem, "first 21 events do not match the last verified checkpoint") {
		t.Fatalf("Verify of a log rewritten past the remembered checkpoint = %v", err)
	}
}

func TestCheckpointFile(t *testing.T) {
	dir := t.TempDir()
	f := auditlog.CheckpointFile{Path: filepath.Join(dir, "sub", "cp")}
	if msg, err := f.Read(); msg != nil || err != nil {
		t.Fatalf("Read of a missing file = %q, %v; want nothing", msg, err)
	}
	for _, msg := range []string{"one\n", "two, longer\n"} {
		if err := f.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got, err := f.Read(); err != nil || string(got) != msg {
			t.Fatalf("Read after Write(%q) = %q, %v", msg, got, err)
		}
	}
	if fi, err := os.Stat(f.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(f.Path)); len(ents) != 1 {
		t.Errorf("temporary files left beside the checkpoint file: %v", ents)
	}
	if err := os.WriteFile(f.Path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(); err == nil || !strings.Contains(err.Error(), "not a checkpoint") {
		t.Errorf("Read of a 1 MiB file = %v, want it refused", err)
	}
	r := auditlog.RememberedFile(dir, "writ.local/audit+1a2b3c4d+AbCd")
	if filepath.Base(r.Path) != "writ.local%2Faudit+1a2b3c4d" || filepath.Dir(r.Path) != dir {
		t.Errorf("RememberedFile = %s, want DIR/writ.local%%2Faudit+1a2b3c4d (the key's name and hash, not its key)", r.Path)
	}
}
