package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"github.com/writ-dev/writ/internal/auditlog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Fixtures with every field set, so that a renamed or dropped field
// shows in the golden files.
var (
	t0 = time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	t1 = t0.Add(time.Hour)

	fixTask = store.Task{ID: "tsk_1", SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_1", Purpose: "triage",
		OnBehalfOf: "alice", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}, State: store.TaskClosed,
		Budget: 10, Calls: 3, Policy: "mail@2", Rule: "tasks", Approval: "apr_1", Reason: "done", CreatedAt: t0, ExpiresAt: t1, ClosedAt: t1}
	fixRevocation = store.Revocation{Kind: store.RevokeToken, Value: "jti_1", Reason: "leaked", Actor: "admin:admin", CreatedAt: t0, ExpiresAt: t1}
	fixApproval   = store.Approval{ID: "apr_1", Kind: "task", SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_1", Task: "tsk_1",
		OnBehalfOf: "alice", Target: "task", Reason: "pay", Policy: "pay@1", Rule: "r", Approvers: []string{"group:finance"},
		State: store.ApprovalApproved, CreatedAt: t0, ExpiresAt: t1, DecidedAt: t1, DecidedBy: "admin:admin", Comment: "ok"}
	fixInstance = store.Instance{ID: "inst_1", BootID: "boot", PID: 42, StartTick: 7, UID: 1000, Exe: "/usr/bin/python3", FirstSeen: t0, LastSeen: t1}
	fixInfo     = broker.Info{Name: "github", Type: broker.Bearer, Version: 2, Actor: "admin:admin", CreatedAt: t0, UpdatedAt: t1}
	fixEvent    = audit.Event{ID: "evt_1", Time: t0, Type: audit.AccessDenied, SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_1",
		Task: "tsk_1", OnBehalfOf: "alice", Actor: "admin:admin", Target: "https://api.example.com/x", Action: "GET", Decision: "deny",
		Policy: "p@1", Rule: "r", Reason: "no rule allows it", Credential: "github", Source: "127.0.0.1:5000", Node: "n1",
		RequestID: "req_1", LatencyUS: 12, Details: map[string]string{"path": "/x"}}
	fixIdentity = store.Entry{Name: "agent.a", SpiffeID: "spiffe://writ.local/agent/a", Selectors: []store.Selector{{Type: "unix", Value: "uid:1000"}},
		X509TTL: 30 * time.Minute, JWTTTL: 5 * time.Minute, Labels: map[string]string{"team": "mail"}, Revision: 3, CreatedAt: t0, UpdatedAt: t1}
	fixHash = tlog.Hash{1, 2, 3}
)

// golden compares v's JSON as the API writes it with testdata/name.golden.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s: the wire encoding changed:\n got %s\nwant %s", name, buf.Bytes(), want)
	}
}

// TestWireGolden pins the JSON of every answer the API serves. The golden
// files were written from the records the server used to serve directly
// (store.Task, broker.Info, auditlog.Entry, ...), so the mapped wire types
// are byte-compatible with them.
func TestWireGolden(t *testing.T) {
	golden(t, "task", TaskToAPI(fixTask))
	golden(t, "task-list-empty", mapList([]store.Task(nil), TaskToAPI))
	golden(t, "revocation", RevocationToAPI(fixRevocation))
	golden(t, "approval", ApprovalToAPI(fixApproval))
	golden(t, "instance", instanceToAPI(fixInstance))
	golden(t, "credential", CredentialToAPI(fixInfo))
	golden(t, "entry", EntryToAPI(fixIdentity))
	golden(t, "audit-entry", auditEntry(7, fixEvent))
	golden(t, "audit-search", apitypes.AuditSearchResult{Events: []apitypes.AuditEntry{auditEntry(7, fixEvent)}, NextBefore: 7})
	golden(t, "audit-key", apitypes.AuditKey{Origin: "writ.local/audit", VerifierKey: "writ.local/audit+abcd+AAAA"})
	golden(t, "audit-checkpoint", apitypes.SignedCheckpoint{Checkpoint: checkpointToAPI(auditlog.Checkpoint{Origin: "writ.local/audit", Size: 8, Hash: fixHash}), Note: "note"})
	golden(t, "audit-inclusion-proof", apitypes.InclusionProof{Index: 7, Event: AuditEventToAPI(fixEvent), Leaf: "leaf", Checkpoint: "cp", Proof: []tlog.Hash{fixHash}})
	golden(t, "audit-consistency-proof", apitypes.ConsistencyProof{New: "cp", Proof: []tlog.Hash{fixHash}})
	golden(t, "error", apitypes.Errorf(404, apitypes.CodeNotFound, "entry %q: not found", "x"))
	golden(t, "deleted", apitypes.Deleted{Deleted: "Service/api"})
	golden(t, "apply-response", apitypes.ApplyResponse{Results: []apitypes.ApplyResult{{Kind: "AccessPolicy", Name: "p", Action: apitypes.ActionCreated, Version: 1}}})
	golden(t, "resource", apitypes.Resource{Kind: "Service", Name: "api", Version: 2, Labels: map[string]string{"a": "b"},
		Spec: json.RawMessage(`{"upstream":"http://x"}`), Actor: "admin:admin", UpdatedAt: t0})
	golden(t, "graph", GraphToAPI(apitypes.GraphQuery{Identity: "spiffe://writ.local/agent/a", To: "service:api"}, &graph.Graph{Built: 42,
		Nodes: []graph.Node{{ID: "identity:spiffe://writ.local/agent/a", Kind: "identity", Name: "spiffe://writ.local/agent/a", Label: "spiffe://writ.local/agent/a", FirstSeen: t0, LastSeen: t1},
			{ID: "service:api", Kind: "service", Name: "api", Label: "api", CrownJewel: true, FirstSeen: t0, LastSeen: t1},
			{ID: "credential:h1/cred_1", Kind: "credential", Name: "h1/cred_1", Label: "OPENAI_API_KEY", Shadow: true, Attrs: map[string]string{"fingerprint": "ab12"}}},
		Edges: []graph.Edge{{From: "identity:spiffe://writ.local/agent/a", To: "service:api", Kind: "reached", Allowed: 3, Denied: 1, Held: 1,
			ApprovedBy: []string{"admin:bob"}, FirstSeen: t0, LastSeen: t1}},
		Paths: [][]string{{"identity:spiffe://writ.local/agent/a", "service:api"}}, Truncated: true}))
}

// TestAuditEventMatchesLog holds the wire event equal to the log's own
// event encoding, field for field: an event read from the API must be the
// event that was hashed.
func TestAuditEventMatchesLog(t *testing.T) {
	want, _ := json.Marshal(fixEvent)
	got, _ := json.Marshal(AuditEventToAPI(fixEvent))
	if !bytes.Equal(got, want) {
		t.Errorf("wire event %s\n differs from the log's %s", got, want)
	}
	if n, m := reflect.TypeFor[audit.Event]().NumField(), reflect.TypeFor[apitypes.AuditEvent]().NumField(); n != m {
		t.Errorf("audit.Event has %d fields, apitypes.AuditEvent %d: add the new field to both (and to AuditEventToAPI and the fixture)", n, m)
	}
}
