package api_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"github.com/writ-dev/writ/internal/auditlog"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/api"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// apiEnv is a log served by NewAuditHandler and a client of it.
type apiEnv struct {
	l   *auditlog.Log
	srv *httptest.Server
	c   *client.Client
}

// openLog opens an audit log on a SQLite store in a temporary directory.
func openLog(t testing.TB) *auditlog.Log {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	sealer, err := keys.NewSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(context.Background(), auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer,
		CheckpointEvery: 1 << 30, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatalf("open audit log: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func sampleEvent(i int) audit.Event {
	return audit.Event{
		Type:      audit.AccessAllowed,
		SpiffeID:  "spiffe://writ.local/agent/mail" + strconv.Itoa(i%3),
		Instance:  "inst_" + strconv.Itoa(i%7),
		Task:      "task_" + strconv.Itoa(i%5),
		Target:    "https://api.example.com/v1/messages",
		Action:    "POST",
		Decision:  "allow",
		Policy:    "mail@3",
		Rule:      "send",
		RequestID: "req_" + strconv.Itoa(i),
		LatencyUS: int64(i + 1),
		Details:   map[string]string{"n": strconv.Itoa(i)},
	}
}

func appendN(t testing.TB, l *auditlog.Log, n int) []auditlog.Entry {
	t.Helper()
	out := make([]auditlog.Entry, n)
	for i := range n {
		en, err := l.Append(context.Background(), sampleEvent(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out[i] = en
	}
	return out
}

// asAudit converts a wire proof to the log's own type by its JSON, the
// way `writ audit verify-proof` reads a saved proof.
func asAudit[T any](t testing.TB, wire any) T {
	t.Helper()
	b, err := json.Marshal(wire)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func newAPI(t *testing.T) *apiEnv {
	t.Helper()
	a := &apiEnv{l: openLog(t)}
	a.srv = httptest.NewServer(api.NewAuditHandler(a.l, nil))
	t.Cleanup(a.srv.Close)
	var err error
	if a.c, err = client.New(a.srv.URL, "t"); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAPIKeyAndCheckpoint(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	k, err := a.c.AuditKey(ctx)
	if err != nil || k.VerifierKey != a.l.VerifierKey() || k.Origin != auditlog.DefaultOrigin {
		t.Fatalf("AuditKey = %+v, %v", k, err)
	}
	appendN(t, a.l, 4)
	cp, err := a.c.AuditCheckpoint(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	trusted, _ := auditlog.ParseVerifierKeys(k.VerifierKey)
	got, err := auditlog.OpenCheckpoint([]byte(cp.Note), trusted)
	if err != nil || got != asAudit[auditlog.Checkpoint](t, cp.Checkpoint) || got.Size != 4 {
		t.Fatalf("checkpoint %+v does not verify with the served key: %v", cp, err)
	}
	appendN(t, a.l, 2)
	if cp2, _ := a.c.AuditCheckpoint(ctx, false); cp2.Size != 4 {
		t.Errorf("latest checkpoint moved to %d without fresh", cp2.Size)
	}
	if cp2, _ := a.c.AuditCheckpoint(ctx, true); cp2.Size != 7 {
		t.Errorf("fresh checkpoint has size %d, want 7 (4 + its event + 2)", cp2.Size)
	}
}

func TestAPISearchAndEvent(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	entries := appendN(t, a.l, 60)
	res, err := a.c.AuditSearch(ctx, apitypes.AuditQuery{Instance: "inst_3", Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 4 || res.Events[0].Index != 59 || res.Events[0].Instance != "inst_3" || res.NextBefore != res.Events[3].Index {
		t.Fatalf("search = %+v", res)
	}
	// Page on.
	total := len(res.Events)
	for res.NextBefore != 0 {
		if res, err = a.c.AuditSearch(ctx, apitypes.AuditQuery{Instance: "inst_3", Limit: 4, Before: res.NextBefore}); err != nil {
			t.Fatal(err)
		}
		total += len(res.Events)
	}
	if total != 9 { // 3, 10, ..., 59
		t.Errorf("paging saw %d events of inst_3, want 9", total)
	}
	en, err := a.c.AuditEvent(ctx, entries[17].ID)
	if err != nil || en.Index != 17 || en.RequestID != "req_17" {
		t.Fatalf("AuditEvent = %+v, %v", en, err)
	}
	var he *client.Error
	if _, err := a.c.AuditEvent(ctx, "evt_missing"); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("AuditEvent(missing) = %v, want 404", err)
	}
	for _, raw := range []string{"limit=0", "limit=5000", "since=yesterday", "bogus=1", "order=up", "after=-1"} {
		resp, err := http.Get(a.srv.URL + "/v1/audit/events?" + raw)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /v1/audit/events?%s = %d, want 400", raw, resp.StatusCode)
		}
	}
}

func TestAPIProofs(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	entries := appendN(t, a.l, 10)
	k, _ := a.c.AuditKey(ctx)
	key, _ := auditlog.ParseVerifierKeys(k.VerifierKey)
	// No checkpoint covers event 9 yet: the server signs one.
	p, err := a.c.AuditProve(ctx, entries[9].ID)
	if err != nil {
		t.Fatal(err)
	}
	ap := asAudit[auditlog.InclusionProof](t, p)
	if cp, err := ap.Verify(key); err != nil || p.Event.ID != entries[9].ID {
		t.Fatalf("proof of %s: checkpoint %+v, %v", entries[9].ID, cp, err)
	}
	old, _ := a.c.AuditCheckpoint(ctx, false)
	appendN(t, a.l, 25)
	cp, err := a.c.AuditConsistency(ctx, old.Size)
	if err != nil {
		t.Fatal(err)
	}
	cp.Old = old.Note
	acp := asAudit[auditlog.ConsistencyProof](t, cp)
	if o, n, err := acp.Verify(key); err != nil || o.Size != old.Size || n.Size <= old.Size {
		t.Fatalf("consistency %d -> %d: %v", o.Size, n.Size, err)
	}
	var he *client.Error
	if _, err := a.c.AuditConsistency(ctx, 1000); !errors.As(err, &he) || he.Status != http.StatusConflict {
		t.Errorf("consistency from a size beyond the log = %v, want 409", err)
	}
}

func TestAPITail(t *testing.T) {
	a := newAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	appendN(t, a.l, 5)
	got := make(chan apitypes.AuditEntry, 100)
	done := make(chan error, 1)
	go func() {
		done <- a.c.AuditTail(ctx, apitypes.AuditQuery{Type: string(audit.AccessDenied)}, 2, func(e apitypes.AuditEntry) error {
			got <- e
			return nil
		})
	}()
	// Events 3 and 4 exist already; append more while tailing. Only
	// access.denied events come through.
	for i := range 6 {
		ev := sampleEvent(i)
		if i%2 == 0 {
			ev.Type = audit.AccessDenied
		}
		if _, err := a.l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	var idx []int64
	for len(idx) < 3 {
		select {
		case e := <-got:
			if e.Type != string(audit.AccessDenied) {
				t.Fatalf("tail passed a %s event through a type filter", e.Type)
			}
			idx = append(idx, e.Index)
		case err := <-done:
			t.Fatalf("tail ended early: %v", err)
		case <-ctx.Done():
			t.Fatalf("tail delivered %v, want three events", idx)
		}
	}
	if idx[0] != 5 || idx[1] != 7 || idx[2] != 9 {
		t.Errorf("tail delivered %v, want [5 7 9]", idx)
	}
	// Closing the log ends the stream.
	a.l.Close(context.Background())
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed the stream") {
			t.Errorf("tail after Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("tail did not end when the log closed")
	}
}

func TestAPITailResumesFromLastEventID(t *testing.T) {
	a := newAPI(t)
	appendN(t, a.l, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.srv.URL+"/v1/audit/tail?after=0", nil)
	req.Header.Set("Last-Event-ID", "5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var ids []string
	for sc.Scan() && len(ids) < 2 {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			ids = append(ids, id)
		}
	}
	if strings.Join(ids, ",") != "6,7" {
		t.Errorf("resumed stream ids %v, want 6,7", ids)
	}
}

func TestAPIExport(t *testing.T) {
	a := newAPI(t)
	now := time.Now().Add(-3 * time.Second)
	ctx := context.Background()
	for i := range 2500 {
		ev := sampleEvent(i)
		ev.Time = now.Add(time.Duration(i) * time.Millisecond)
		if _, err := a.l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	body, err := a.c.AuditExport(ctx, apitypes.AuditQuery{Since: now.Add(1000 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 1500 {
		t.Fatalf("export since 1000s: %d lines, want 1500", len(lines))
	}
	for i, line := range lines {
		var e apitypes.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if e.Index != int64(1000+i) {
			t.Fatalf("line %d has index %d, want %d (oldest first, no gaps)", i+1, e.Index, 1000+i)
		}
	}
	resp, err := http.Get(a.srv.URL + "/v1/audit/export?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("export format=csv = %d, want 400", resp.StatusCode)
	}
}
