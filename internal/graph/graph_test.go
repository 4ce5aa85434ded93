package graph

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// testLog is a real store with a real audit log whose clock the test sets.
type testLog struct {
	db  *sqlite.DB
	log *auditlog.Log
	now time.Time
}

func newTestLog(t testing.TB) *testLog {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	sealer, err := keys.NewSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLog{db: db, now: t0}
	tl.log, err = auditlog.Open(ctx, auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer, Now: func() time.Time { return tl.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.log.Close(ctx); db.Close() })
	return tl
}

func (tl *testLog) emit(t testing.TB, es ...audit.Event) {
	t.Helper()
	for i := range es {
		if es[i].Time.IsZero() {
			es[i].Time = tl.now
		}
	}
	if err := audit.EmitBatch(context.Background(), tl.log, es); err != nil {
		t.Fatal(err)
	}
}

func (tl *testLog) lineage() *Lineage {
	return &Lineage{Builder: &Builder{Log: tl.db.Audit(), Facts: tl.db, Approvals: tl.db}, Inventory: tl.db}
}

const (
	mailID  = "spiffe://writ.local/agent/mail"
	filesID = "spiffe://writ.local/agent/files"
)

// call is one access event as the access core records it.
func call(allowed bool, id, inst, task, user, target, cred string, details ...string) audit.Event {
	e := audit.Event{Type: audit.AccessAllowed, Decision: "allow", SpiffeID: id, Instance: inst, Task: task, OnBehalfOf: user,
		Target: target, Credential: cred, Details: map[string]string{"via": "process", "method": "POST"}}
	if !allowed {
		e.Type, e.Decision = audit.AccessDenied, "deny"
	}
	_, name, _ := strings.Cut(target, "/")
	e.Details["service"] = name
	for i := 0; i+1 < len(details); i += 2 {
		e.Details[details[i]] = details[i+1]
	}
	return e
}

func edge(t *testing.T, g *Graph, from, to string) Edge {
	t.Helper()
	for _, e := range g.Edges {
		if e.From == from && e.To == to {
			return e
		}
	}
	t.Fatalf("no edge %s → %s in %+v", from, to, g.Edges)
	return Edge{}
}

func hasNode(g *Graph, id string) bool {
	return slices.ContainsFunc(g.Nodes, func(n Node) bool { return n.ID == id })
}

// TestScriptedRun folds a scripted run of allowed, denied and approved
// calls and checks every node and edge with its counts.
func TestScriptedRun(t *testing.T) {
	ctx := context.Background()
	tl := newTestLog(t)
	// An approval decided by a human, as the approvals service stores it.
	if _, err := tl.db.CreateApproval(ctx, store.Approval{ID: "appr_1", Kind: "http", SpiffeID: mailID, State: "approved",
		DecidedBy: "admin:bob", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), DecidedAt: t0}); err != nil {
		t.Fatal(err)
	}
	tl.emit(t,
		audit.Event{Type: audit.TaskOpened, SpiffeID: mailID, Task: "task_1"}, // not an access: ignored
		call(true, mailID, "inst_1", "task_1", "ann@example.com", "Service/mail", "mail-key"),
		call(true, mailID, "inst_1", "task_1", "ann@example.com", "Service/mail", "mail-key"),
		call(false, mailID, "inst_1", "task_1", "ann@example.com", "Service/mail", ""),
		call(true, mailID, "inst_1", "task_1", "ann@example.com", "Service/mail", "mail-key", "approval", "appr_1"),
		call(true, filesID, "inst_2", "", "", "MCPServer/files", "", "tool", "read_file"),
		call(false, filesID, "inst_2", "", "", "MCPServer/files", "", "tool", "write_file"),
		call(false, "", "", "", "", "", "", "via", "process"),
	)
	l := tl.lineage()
	g, err := l.Query(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Built != 8 {
		t.Errorf("Built = %d, want 8 events folded", g.Built)
	}
	ann, mail, inst1 := "user:ann@example.com", "identity:"+mailID, "instance:inst_1"
	if e := edge(t, g, ann, mail); e.Allowed != 3 || e.Denied != 1 || e.Held != 1 || e.Kind != EdgeOnBehalfOf {
		t.Errorf("user → identity = %+v", e)
	}
	if e := edge(t, g, inst1, "service:mail"); e.Allowed != 3 || e.Denied != 1 || e.Held != 1 || !slices.Equal(e.ApprovedBy, []string{"admin:bob"}) ||
		!e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(t0) {
		t.Errorf("instance → service = %+v", e)
	}
	if e := edge(t, g, inst1, "task:task_1"); e.Allowed != 3 || e.Denied != 1 {
		t.Errorf("instance → task = %+v", e)
	}
	if e := edge(t, g, "service:mail", "credential:mail-key"); e.Allowed != 3 || e.Denied != 0 || e.Kind != EdgeInjected {
		t.Errorf("service → credential = %+v", e)
	}
	if e := edge(t, g, "instance:inst_2", "mcp_server:files"); e.Allowed != 1 || e.Denied != 1 {
		t.Errorf("instance → MCP server = %+v", e)
	}
	if e := edge(t, g, "mcp_server:files", "tool:files/write_file"); e.Allowed != 0 || e.Denied != 1 || e.Kind != EdgeTool {
		t.Errorf("MCP server → tool = %+v", e)
	}
	if e := edge(t, g, "identity:"+Unidentified, "service:"+Unrouted); e.Denied != 1 {
		t.Errorf("unidentified, unrouted = %+v", e)
	}
	if len(g.Edges) != 10 || len(g.Nodes) != 13 {
		t.Errorf("%d edges and %d nodes, want 10 and 13: %+v", len(g.Edges), len(g.Nodes), g)
	}

	// Incremental: more events are folded once, on top of the stored ones.
	tl.now = t0.Add(2 * time.Hour)
	tl.emit(t, call(true, mailID, "inst_1", "task_2", "ann@example.com", "Service/mail", "mail-key"))
	for range 2 {
		if g, err = l.Query(ctx, Query{}); err != nil {
			t.Fatal(err)
		}
	}
	if e := edge(t, g, inst1, "service:mail"); e.Allowed != 4 || !e.LastSeen.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("after one more call, twice queried: %+v", e)
	}
	// A second builder on the same store (another server process) folds
	// nothing twice.
	other := tl.lineage()
	if g, err = other.Query(ctx, Query{}); err != nil {
		t.Fatal(err)
	}
	if e := edge(t, g, inst1, "service:mail"); e.Allowed != 4 {
		t.Errorf("second builder: %+v", e)
	}

	for _, tc := range []struct {
		name    string
		q       Query
		present []string
		absent  []string
	}{
		{"window", Query{Since: t0.Add(90 * time.Minute)}, []string{"task:task_2"}, []string{"task:task_1", "mcp_server:files"}},
		{"identity", Query{Identity: filesID}, []string{"tool:files/read_file"}, []string{"service:mail"}},
		{"task", Query{Task: "task_1"}, []string{"credential:mail-key", ann}, []string{"task:task_2", "mcp_server:files"}},
		{"credential", Query{Credential: "mail-key"}, []string{"service:mail"}, []string{"mcp_server:files"}},
		{"service", Query{Service: "files"}, []string{"tool:files/write_file"}, []string{"service:mail"}},
		{"user", Query{User: "ann@example.com"}, []string{"service:mail"}, []string{"mcp_server:files"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := l.Query(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range tc.present {
				if !hasNode(g, id) {
					t.Errorf("node %s missing: %+v", id, g.Nodes)
				}
			}
			for _, id := range tc.absent {
				if hasNode(g, id) {
					t.Errorf("node %s present", id)
				}
			}
		})
	}
}

// TestInventoryAndCrownJewels joins discovered processes and credentials
// and finds the paths into a crown jewel, direct (shadow) ones included.
func TestInventoryAndCrownJewels(t *testing.T) {
	ctx := context.Background()
	tl := newTestLog(t)
	tl.emit(t, call(true, mailID, "inst_1", "", "ann@example.com", "Service/payments", "pay-key"),
		call(true, filesID, "inst_2", "", "", "Service/mail", "mail-key"))
	proc := func(pid int, identity string, creds []string, conns ...string) json.RawMessage {
		p := map[string]any{"pid": pid, "exe": "/usr/bin/python3", "credentials": creds}
		var cs []map[string]string
		for _, c := range conns {
			route, svc, _ := strings.Cut(c, ":")
			cs = append(cs, map[string]string{"remote": "10.0.0.1:443", "route": route, "service": svc})
		}
		p["connections"] = cs
		b, _ := json.Marshal(p)
		return b
	}
	items := []store.InventoryItem{
		{Kind: store.InventoryAgent, Key: "process/h1/10/1", Host: "h1", Name: "claude", Shadow: true,
			Data: proc(10, "", []string{"cred_a"}, "direct:payments")},
		{Kind: store.InventoryAgent, Key: "process/h1/11/1", Host: "h1", Name: "mailer", Identity: mailID,
			Data: proc(11, mailID, nil, "writ:payments")},
		{Kind: store.InventoryCredential, Key: "h1/cred_a", Host: "h1", Name: "STRIPE_KEY", Shadow: true,
			Data: json.RawMessage(`{"id":"cred_a","kind":"stripe-access-token","source":"env","fingerprint":"fp_1","pids":[10]}`)},
		{Kind: store.InventoryCredential, Key: "h1/cred_b", Host: "h1", Name: "/home/u/.aws/credentials", Shadow: true,
			Data: json.RawMessage(`{"id":"cred_b","kind":"aws","source":"file","path":"/home/u/.aws/credentials","fingerprint":"fp_2"}`)},
	}
	if err := tl.db.RecordInventory(ctx, t0, items); err != nil {
		t.Fatal(err)
	}
	l := tl.lineage()
	l.CrownJewels = func(context.Context) ([]string, error) { return []string{"payments"}, nil }

	g, err := l.Query(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	claude := "process:process/h1/10/1"
	if e := edge(t, g, claude, "service:payments"); !e.Shadow || e.Kind != EdgeDirect {
		t.Errorf("direct access = %+v", e)
	}
	if e := edge(t, g, claude, "credential:h1/cred_a"); !e.Shadow || e.Kind != EdgeHolds {
		t.Errorf("holds = %+v", e)
	}
	if e := edge(t, g, "identity:"+mailID, "process:process/h1/11/1"); e.Kind != EdgeRunsAs {
		t.Errorf("runs as = %+v", e)
	}
	if !hasNode(g, "credential:h1/cred_b") {
		t.Error("a credential file no process holds is missing")
	}
	for _, n := range g.Nodes {
		if n.ID == "credential:h1/cred_a" && (n.Attrs["fingerprint"] != "fp_1" || !n.Shadow || n.Label != "STRIPE_KEY") {
			t.Errorf("discovered credential node = %+v", n)
		}
		if n.ID == "service:payments" && !n.CrownJewel {
			t.Errorf("payments not marked a crown jewel: %+v", n)
		}
	}

	g, err = l.Query(ctx, Query{CrownJewels: true})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"user:ann@example.com", "identity:" + mailID, "instance:inst_1", "service:payments"},
		{claude, "service:payments"},
	}
	slices.SortFunc(g.Paths, func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
	slices.SortFunc(want, func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
	if len(g.Paths) != len(want) || !slices.EqualFunc(g.Paths, want, slices.Equal) {
		t.Errorf("paths into the crown jewel = %q, want %q", g.Paths, want)
	}
	if hasNode(g, "service:mail") || hasNode(g, "credential:h1/cred_b") {
		t.Errorf("nodes off the paths kept: %+v", g.Nodes)
	}
	if g, err = l.Query(ctx, Query{To: "credential:mail-key"}); err != nil || len(g.Paths) != 1 || g.Paths[0][0] != "identity:"+filesID {
		t.Errorf("paths into mail-key = %q, %v", g.Paths, err)
	}
	if g, err = l.Query(ctx, Query{Identity: mailID}); err != nil || hasNode(g, claude) || !hasNode(g, "process:process/h1/11/1") {
		t.Errorf("identity filter on the inventory: %+v, %v", g.Nodes, err)
	}
	if g, err = l.Query(ctx, Query{Credential: "STRIPE_KEY"}); err != nil || !hasNode(g, claude) || hasNode(g, "process:process/h1/11/1") {
		t.Errorf("credential filter on the inventory: %+v, %v", g.Nodes, err)
	}
	if g, err = l.Query(ctx, Query{To: "service:payments", MaxPaths: 1}); err != nil || len(g.Paths) != 1 || !g.Truncated {
		t.Errorf("MaxPaths 1: %d paths, truncated %v, %v", len(g.Paths), g.Truncated, err)
	}
}

func TestQueryCheck(t *testing.T) {
	for _, q := range []Query{
		{Since: t0, Until: t0},
		{Since: t0.Add(time.Hour), Until: t0},
		{MaxPaths: -1},
		{To: "service"},
		{To: "planet:earth"},
		{To: "service:"},
		{To: "service:a", CrownJewels: true},
		{Identity: "spiffe://x/\x00"},
		{Task: strings.Repeat("a", 2000)},
		{Credential: "a\nb"},
	} {
		if err := q.Check(); err == nil {
			t.Errorf("Check(%+v) accepted", q)
		}
	}
	if err := (&Query{To: "service:a b/c", Since: t0}).Check(); err != nil {
		t.Errorf("Check of a good query: %v", err)
	}
}

// TestUnreadableEventSkipped: a record that is not an event is skipped
// and counted, and the fold goes on past it.
func TestUnreadableEventSkipped(t *testing.T) {
	ctx := context.Background()
	tl := newTestLog(t)
	good, _ := json.Marshal(call(true, mailID, "i", "", "", "Service/mail", ""))
	recs := memRecords{[]byte(`{"id":"e0","time":"2026-01-01T00:00:00Z","type":"access.allowed","details":{"via":3}}`), good}
	b := &Builder{Log: recs, Facts: tl.db}
	next, err := b.Sync(ctx)
	if err != nil || next != 2 {
		t.Fatalf("Sync = %d, %v", next, err)
	}
	facts, _ := tl.db.ListLineage(ctx, store.LineageFilter{})
	if len(facts) != 1 || facts[0].Allowed != 1 {
		t.Errorf("facts = %+v", facts)
	}
}

// memRecords is a log held in memory, for hostile records the real log
// would refuse to append.
type memRecords [][]byte

func (r memRecords) ReadRecords(_ context.Context, from int64, limit int) ([]auditlog.Record, error) {
	var out []auditlog.Record
	for i := from; i < int64(len(r)) && len(out) < limit; i++ {
		out = append(out, auditlog.Record{Index: i, Data: r[i]})
	}
	return out, nil
}
