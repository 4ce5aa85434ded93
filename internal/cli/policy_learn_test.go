package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// TestPolicyLearnReplayApply runs learn, replay and apply --expect-digest
// over a store the way a user does.
func TestPolicyLearnReplayApply(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "writ.db")
	db, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	t0 := time.Now().Add(-time.Hour).UTC()
	l, err := auditlog.Open(ctx, auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/items/1", "/v1/items/2", "/v1/list"} {
		ev := audit.Event{Type: audit.AccessAllowed, Decision: "allow", SpiffeID: "spiffe://writ.local/agent/a",
			Details: map[string]string{"method": "GET", "path": p, "service": "api"}}
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	l.Close(ctx)
	db.Close()

	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := Main(append([]string{"--data-dir", dir, "--addr", "http://127.0.0.1:1", "--token", "x"}, args...), strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	pol := filepath.Join(dir, "learned")
	code, out := run("policy", "learn", "--dir", pol)
	if code != 0 {
		t.Fatalf("learn: exit %d\n%s", code, out)
	}
	m := regexp.MustCompile(`digest (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("learn printed no digest:\n%s", out)
	}
	if code, out := run("policy", "replay", "-f", pol); code != 0 || !strings.Contains(out, "3 accesses, 0 token exchanges and 0 task openings re-decided, 3 unchanged, 0 newly denied") {
		t.Errorf("replay of the learned policy: exit %d\n%s", code, out)
	}
	file := filepath.Join(pol, "learned-agent-a.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte(`paths: ["/v1/items/*"]`), []byte(`paths: ["/v1/items/1"]`), 1)
	if bytes.Equal(edited, b) {
		t.Fatalf("learned policy lacks /v1/items/*:\n%s", b)
	}
	if err := os.WriteFile(file, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = run("policy", "replay", "-f", pol, "--output", "json")
	if code != 1 || !strings.Contains(out, `"category": "newly_denied"`) || !strings.Contains(out, `"path": "/v1/items/2"`) {
		t.Errorf("replay of a narrowed policy: exit %d, want 1 naming /v1/items/2\n%s", code, out)
	}
	code, out = run("apply", "-f", pol, "--expect-digest", m[1])
	if code == 0 || !strings.Contains(out, "not the reviewed "+m[1]) {
		t.Errorf("apply of edited files with the reviewed digest: exit %d\n%s", code, out)
	}
}
