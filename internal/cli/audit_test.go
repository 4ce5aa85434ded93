package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/auditlog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/api"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// auditServer is an audit log in a data directory, served by the audit
// API as `writ serve` mounts it.
type auditServer struct {
	dir string
	db  *sqlite.DB
	log *auditlog.Log
	srv *httptest.Server
}

func newAuditServer(t *testing.T) *auditServer {
	t.Helper()
	dir := t.TempDir()
	// audit verify remembers checkpoints in the user's config directory.
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	// The log stamps events; its clock runs a minute per event.
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var (
		mu    sync.Mutex
		clock = t0
	)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	l, err := auditlog.Open(context.Background(), auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	s := &auditServer{dir: dir, db: db, log: l, srv: httptest.NewServer(api.NewAuditHandler(l, nil))}
	t.Cleanup(s.srv.Close)
	for i := range 30 {
		mu.Lock()
		clock = t0.Add(time.Duration(i) * time.Minute)
		mu.Unlock()
		e := audit.Event{
			Type:     audit.AccessAllowed,
			SpiffeID: fmt.Sprintf("spiffe://writ.local/agent/a%d", i%2),
			Instance: fmt.Sprintf("inst_%d", i%3),
			Task:     "task_1",
			Action:   "GET",
			Target:   "https://api.example.com/x",
			Decision: "allow",
		}
		if i%5 == 0 {
			e.Type, e.Decision, e.Reason = audit.AccessDenied, "deny", "no rule allows it"
		}
		if _, err := l.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// run runs the CLI in process against the server and data directory.
func (s *auditServer) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"--addr", s.srv.URL, "--token", "test", "--data-dir", s.dir}, args...)
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func (s *auditServer) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := s.run(t, args...)
	if code != 0 {
		t.Fatalf("writ %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestAuditQueryCommands(t *testing.T) {
	s := newAuditServer(t)
	if out := s.mustRun(t, "audit", "key"); strings.TrimSpace(out) != s.log.VerifierKey() {
		t.Errorf("audit key = %q, want %q", out, s.log.VerifierKey())
	}
	if out := s.mustRun(t, "audit", "key", "--offline"); strings.TrimSpace(out) != s.log.VerifierKey() {
		t.Errorf("audit key --offline = %q, want %q", out, s.log.VerifierKey())
	}

	var res apitypes.AuditSearchResult
	out := s.mustRun(t, "audit", "search", "--decision", "deny", "--spiffe-id", "spiffe://writ.local/agent", "-o", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 6 || res.Events[0].Index != 25 || res.Events[0].Reason != "no rule allows it" {
		t.Errorf("search --decision deny = %+v, want the 6 denials newest first", res.Events)
	}
	code, out, errs := s.run(t, "audit", "search", "--instance", "inst_1", "--since", "2026-05-01T12:10:00Z", "--until", "2026-05-01T12:20:00Z", "--limit", "2")
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "INDEX") || !strings.Contains(out, "inst_1") || !strings.Contains(errs, "--before 16") {
		t.Errorf("search table: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := s.run(t, "audit", "search", "--since", "last tuesday"); code == 0 || !strings.Contains(errs, "--since") {
		t.Errorf("bad --since: exit %d %s", code, errs)
	}

	out = s.mustRun(t, "audit", "tail", "-n", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "27 ") || !strings.HasPrefix(lines[2], "29 ") {
		t.Errorf("tail -n 3 =\n%s\nwant events 27, 28, 29 oldest first", out)
	}

	out = s.mustRun(t, "audit", "export", "--format", "jsonl", "--since", "2026-05-01T12:25:00Z")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("export --since 12:25 = %d lines, want 5:\n%s", len(lines), out)
	}
	var first apitypes.AuditEntry
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Index != 25 || first.Type != string(audit.AccessDenied) {
		t.Errorf("first exported line %q: %v", lines[0], err)
	}
	if code, _, errs := s.run(t, "audit", "export", "--format", "csv"); code == 0 || !strings.Contains(errs, "jsonl") {
		t.Errorf("export --format csv: exit %d %s", code, errs)
	}
}

func TestAuditTailFollow(t *testing.T) {
	s := newAuditServer(t)
	var (
		mu  sync.Mutex
		out bytes.Buffer
	)
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	done := make(chan int, 1)
	go func() {
		args := []string{"--addr", s.srv.URL, "--token", "t", "audit", "tail", "-f", "-n", "1", "--type", "access.denied", "-o", "json"}
		done <- Main(args, strings.NewReader(""), w, &bytes.Buffer{})
	}()
	text := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(text(), "\n") < n {
			if time.Now().After(deadline) {
				t.Fatalf("tail -f printed %q, want %d lines", text(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(1) // the last denial so far, index 25
	for i := range 4 {
		typ := audit.AccessAllowed
		if i%2 == 1 {
			typ = audit.AccessDenied
		}
		if _, err := s.log.Append(context.Background(), audit.Event{Type: typ, Target: fmt.Sprint("new-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(3)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(text()), "\n") {
		var e apitypes.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tail -o json line %q: %v", line, err)
		}
		got = append(got, fmt.Sprint(e.Index, e.Target))
	}
	if strings.Join(got, ",") != "25https://api.example.com/x,31new-1,33new-3" {
		t.Errorf("tail -f printed %v", got)
	}
	s.log.Close(context.Background())
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("tail -f exit %d after the server closed the stream, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail -f did not end when the log closed")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestAuditProveAndVerify(t *testing.T) {
	s := newAuditServer(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "audit.key")
	os.WriteFile(keyFile, []byte(s.mustRun(t, "audit", "key")), 0o600)
	cpFile := filepath.Join(dir, "cp.txt")
	os.WriteFile(cpFile, []byte(s.mustRun(t, "audit", "checkpoint")), 0o600)

	var res apitypes.AuditSearchResult
	json.Unmarshal([]byte(s.mustRun(t, "audit", "search", "--limit", "1", "--type", "access.denied", "-o", "json")), &res)
	proofFile := filepath.Join(dir, "proof.json")
	os.WriteFile(proofFile, []byte(s.mustRun(t, "audit", "prove", res.Events[0].ID)), 0o600)
	if out := s.mustRun(t, "audit", "verify-proof", proofFile, "--key", "@"+keyFile); !strings.Contains(out, "proof OK: event "+res.Events[0].ID) {
		t.Errorf("verify-proof: %s", out)
	}
	// A proof edited to claim a different decision does not hold.
	b, _ := os.ReadFile(proofFile)
	forged := strings.Replace(string(b), `"decision": "deny"`, `"decision": "allow"`, 1)
	os.WriteFile(proofFile, []byte(forged), 0o600)
	if code, _, errs := s.run(t, "audit", "verify-proof", proofFile, "--key", "@"+keyFile); code != 1 || !strings.Contains(errs, "does NOT hold") {
		t.Errorf("verify-proof of a forged proof: exit %d %s", code, errs)
	}

	// More events, then stop the server: the final checkpoint.
	for range 5 {
		s.log.Append(context.Background(), audit.Event{Type: audit.TokenMinted})
	}
	s.log.Close(context.Background())

	code, out, errs := s.run(t, "audit", "verify", "--key", "@"+keyFile, "--checkpoint", cpFile)
	// 30 events, the checkpoint's own event, 5 more.
	if code != 0 || !strings.Contains(out, "audit log OK: 36 events") || !strings.Contains(out, "extends the saved checkpoint of size 30") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = s.run(t, "audit", "verify")
	if code != 0 || !strings.Contains(errs, "trusting the log key stored in") {
		t.Errorf("verify without --key: exit %d %s", code, errs)
	}
	// A key that did not sign the log (another log's).
	other := newAuditServer(t)
	code, _, errs = s.run(t, "audit", "verify", "--key", other.log.VerifierKey())
	if code != 1 || !strings.Contains(errs, "not signed by a trusted log key") {
		t.Errorf("verify with another log's key: exit %d %s", code, errs)
	}

	// Tamper with the store file directly.
	if _, err := s.db.SQL().Exec(`UPDATE audit_events SET data = replace(data, '"deny"', '"allow"') WHERE idx = 20`); err != nil {
		t.Fatal(err)
	}
	code, _, errs = s.run(t, "audit", "verify", "--key", "@"+keyFile)
	if code != 1 || !strings.Contains(errs, "verification FAILED: index 20: event does not match its stored leaf hash") {
		t.Errorf("verify after tampering: exit %d %s", code, errs)
	}
	if code, _, errs := s.run(t, "audit", "verify", "--data-dir", t.TempDir()); code == 0 || !strings.Contains(errs, "no such file") {
		t.Errorf("verify of an empty data dir: exit %d %s", code, errs)
	}
}

// TestAuditVerifyRemembers: verify remembers the latest checkpoint it
// checked, so that deleting the newest events together with every
// checkpoint that covers them (which leaves a log whole in itself) fails
// the next verify, naming both sizes.
func TestAuditVerifyRemembers(t *testing.T) {
	s := newAuditServer(t)
	s.log.Close(context.Background()) // the final checkpoint covers the 30 events
	state := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "writ", "audit")
	code, out, errs := s.run(t, "audit", "verify")
	if code != 0 || !strings.Contains(out, "remembered the latest checkpoint in "+state) {
		t.Fatalf("first verify: exit %d\n%s%s", code, out, errs)
	}
	ents, err := os.ReadDir(state)
	if err != nil || len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "writ.local%2Faudit+") {
		t.Fatalf("remembered files in %s: %v, %v; want one named after the log key", state, ents, err)
	}
	if code, out, errs := s.run(t, "audit", "verify"); code != 0 || !strings.Contains(out, "the log extends the checkpoint of size 30 verified last time") {
		t.Fatalf("second verify: exit %d\n%s%s", code, out, errs)
	}

	for _, q := range []string{`DELETE FROM audit_events WHERE idx >= 12`, `DELETE FROM audit_checkpoints`} {
		if _, err := s.db.SQL().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errs = s.run(t, "audit", "verify")
	if code != 1 || !strings.Contains(errs, "rolled back: the last verified checkpoint (remembered in "+filepath.Join(state, ents[0].Name())+") covers 30 events, but the log now holds 12") ||
		!strings.Contains(errs, "--no-remember") {
		t.Errorf("verify of the truncated log: exit %d %s", code, errs)
	}
	// Verifying an older copy on purpose.
	if code, out, errs := s.run(t, "audit", "verify", "--no-remember"); code != 0 || !strings.Contains(out, "audit log OK: 12 events") {
		t.Errorf("verify --no-remember: exit %d\n%s%s", code, out, errs)
	}
	// The failed and the --no-remember runs left the remembered checkpoint as it was.
	if code, _, _ := s.run(t, "audit", "verify"); code != 1 {
		t.Errorf("verify after --no-remember: exit %d, want the rollback still reported", code)
	}
}

// TestAuditVerifyPublished: verify also checks the checkpoint writ serve
// published beside the store, so a rolled-back store fails even on a
// first verify (or with --no-remember).
func TestAuditVerifyPublished(t *testing.T) {
	s := newAuditServer(t)
	s.log.Close(context.Background())
	latest, _ := s.log.LatestCheckpoint()
	published := filepath.Join(s.dir, "audit.checkpoint")
	if err := os.WriteFile(published, latest.Note, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := s.run(t, "audit", "verify", "--no-remember"); code != 0 {
		t.Fatalf("verify of the intact log: exit %d\n%s%s", code, out, errs)
	}
	for _, q := range []string{`DELETE FROM audit_events WHERE idx >= 12`, `DELETE FROM audit_checkpoints`} {
		if _, err := s.db.SQL().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errs := s.run(t, "audit", "verify", "--no-remember")
	if code != 1 || !strings.Contains(errs, "rolled back: the checkpoint the server published ("+published+") covers 30 events, but the log now holds 12") {
		t.Errorf("verify of the truncated log: exit %d %s", code, errs)
	}
}
