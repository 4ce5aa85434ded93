package learn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/learn"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

const (
	mail = "spiffe://writ.local/agent/mail"
	crm  = "spiffe://writ.local/agent/crm"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// call is one scripted access.
type call struct {
	id, service, method, path string
	denied                    bool
	at                        time.Duration // after t0
}

// traffic is the scripted log: what two agents did, including a burst of
// eight reads in one minute and one refused delete.
func traffic() []call {
	cs := []call{
		{mail, "mailapi", "GET", "/v1/messages/123", false, 0},
		{mail, "mailapi", "GET", "/v1/messages/456", false, time.Minute},
		{mail, "mailapi", "POST", "/v1/drafts", false, 2 * time.Minute},
		{mail, "mailapi", "POST", "/v1/drafts", false, 3 * time.Minute},
		{mail, "mailapi", "GET", "/v1/threads/2026-05-01", false, 4 * time.Minute},
		{mail, "mailapi", "GET", "/v1/blobs/0f8fad5b-d9cb-469f-a165-70867728950e", false, 5 * time.Minute},
		{mail, "mailapi", "DELETE", "/v1/messages/123", true, 6 * time.Minute},
		{crm, "crm", "GET", "/customers/42/orders", false, 7 * time.Minute},
		{crm, "crm", "GET", "/customers/deadbeefdeadbeef01/orders", false, 8 * time.Minute},
	}
	for i := range 8 {
		cs = append(cs, call{crm, "crm", "GET", "/customers/7/orders", false, 10*time.Minute + time.Duration(i)*time.Second})
	}
	return cs
}

// newLog writes the scripted traffic, with unrelated events between, to
// an audit log in a temporary SQLite store and returns the store.
func newLog(t *testing.T, calls []call) *sqlite.DB {
	t.Helper()
	var evs []audit.Event
	for i, c := range calls {
		e := audit.Event{
			Time: t0.Add(c.at), Type: audit.AccessAllowed, Decision: "allow", SpiffeID: c.id, Instance: "inst_1",
			Action: c.method + " " + c.path, Policy: "old@1", Rule: "everything",
			Details: map[string]string{"method": c.method, "path": c.path, "service": c.service, "status": "200"},
		}
		if c.denied {
			e.Type, e.Decision, e.Rule, e.Policy = audit.AccessDenied, "deny", "", ""
		}
		evs = append(evs, e)
		if i%3 == 0 {
			evs = append(evs, audit.Event{Time: t0.Add(c.at), Type: audit.TokenMinted, SpiffeID: c.id})
		}
	}
	return newEventLog(t, evs)
}

// newEventLog appends evs, in order, to an audit log in a temporary
// SQLite store and returns the store.
func newEventLog(t *testing.T, evs []audit.Event) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
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
	var clock atomic.Int64 // the log's clock follows the script
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	l, err := auditlog.Open(ctx, auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	for _, e := range evs {
		clock.Store(e.Time.UnixNano())
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func learnFiles(t *testing.T, db *sqlite.DB) ([]learn.File, *learn.Learner) {
	t.Helper()
	l, err := learn.Learn(context.Background(), db.Audit(), learn.Filter{}, learn.Options{Generalizer: learn.DefaultGeneralizer()})
	if err != nil {
		t.Fatal(err)
	}
	return l.Files(), l
}

func writeFiles(t *testing.T, files []learn.File) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLearnAllowsExactlyWhatWasObserved(t *testing.T) {
	ctx := context.Background()
	db := newLog(t, traffic())
	files, l := learnFiles(t, db)
	if len(files) != 2 || files[0].Name != "learned-agent-crm.yaml" || files[1].Name != "learned-agent-mail.yaml" {
		t.Fatalf("files = %v, want learned-agent-crm.yaml and learned-agent-mail.yaml", files)
	}
	for _, want := range []string{
		`paths: ["/v1/messages/*"]`, `methods: ["POST"], paths: ["/v1/drafts"]`, `paths: ["/v1/threads/*"]`, `paths: ["/v1/blobs/*"]`,
		`# 2 calls (GET 2), first 2026-05-01T12:00:00Z, last 2026-05-01T12:01:00Z, peak 1 per minute, e.g. "GET /v1/messages/123"`,
	} {
		if !bytes.Contains(files[1].Content, []byte(want)) {
			t.Errorf("mail policy lacks %s:\n%s", want, files[1].Content)
		}
	}
	// Ten reads of /customers/*/orders, eight in one minute: limit 16.
	if want := "peak 8 per minute"; !bytes.Contains(files[0].Content, []byte(want)) || !bytes.Contains(files[0].Content, []byte("rate: {limit: 16/1m}")) {
		t.Errorf("crm policy lacks the peak and its rate:\n%s", files[0].Content)
	}
	den := l.Denied()
	if len(den) != 1 || den[0].SpiffeID != mail || den[0].Method != "DELETE" || den[0].Path != "/v1/messages/*" || den[0].Count != 1 {
		t.Errorf("denied = %+v, want mail's one DELETE /v1/messages/*", den)
	}
	if bytes.Contains(files[1].Content, []byte("DELETE")) {
		t.Errorf("denied traffic was learned:\n%s", files[1].Content)
	}

	snap, err := learn.CompileFiles(writeFiles(t, files))
	if err != nil {
		t.Fatalf("learned policy does not compile: %v\n%s\n%s", err, files[0].Content, files[1].Content)
	}
	rep, err := learn.Replay(ctx, db.Audit(), learn.Filter{}, snap, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Changes) != 0 || rep.Accesses != int64(len(traffic())) {
		t.Errorf("replay of the learned log: %+v, want %d accesses and no change", rep, len(traffic()))
	}

	eng := policy.NewEngine(policy.Config{}, snap)
	for _, nm := range []struct{ id, service, method, path string }{
		{mail, "mailapi", "GET", "/v1/messages/123/attachments"}, // another path
		{mail, "mailapi", "GET", "/v1/messages"},
		{mail, "mailapi", "DELETE", "/v1/messages/123"}, // another method
		{mail, "mailapi", "GET", "/v1/drafts"},
		{mail, "mailapi", "POST", "/v1/messages/9"},
		{mail, "mailapi", "GET", "/v1/messages/1/2"},
		{mail, "crm", "GET", "/customers/42/orders"}, // another service
		{crm, "mailapi", "GET", "/v1/messages/123"},  // another identity
		{"spiffe://writ.local/agent/other", "crm", "GET", "/customers/42/orders"},
	} {
		req := &policy.Request{Kind: policy.KindHTTP, Subject: policy.Subject{SpiffeID: nm.id},
			HTTP: policy.HTTPRequest{Service: nm.service, Method: nm.method, Path: nm.path}, Now: t0}
		if d := eng.Decide(ctx, req); d.Effect != policy.Deny {
			t.Errorf("%s %s %s %s: %s by %s, want deny", nm.id, nm.service, nm.method, nm.path, d.Effect, d.Rule)
		}
	}
}

func TestLearnIsDeterministic(t *testing.T) {
	db := newLog(t, traffic())
	a, la := learnFiles(t, db)
	b, lb := learnFiles(t, newLog(t, traffic()))
	if len(a) != len(b) {
		t.Fatalf("%d files, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Content, b[i].Content) {
			t.Errorf("file %d differs between runs:\n%s\n---\n%s", i, a[i].Content, b[i].Content)
		}
	}
	ra, rb := learn.Report(a, la.Denied()), learn.Report(b, lb.Denied())
	if !bytes.Equal(ra, rb) || !bytes.Contains(ra, []byte("digest "+learn.Digest(a))) {
		t.Errorf("reports differ or lack the digest:\n%s\n---\n%s", ra, rb)
	}
	c := append([]learn.File(nil), a...)
	c[0].Content = append(bytes.Clone(c[0].Content), '\n')
	if learn.Digest(c) == learn.Digest(a) {
		t.Error("digest does not change when a file does")
	}
}

func TestLearnFilters(t *testing.T) {
	db := newLog(t, traffic())
	for _, tc := range []struct {
		f    learn.Filter
		want []string
	}{
		{learn.Filter{Identity: "spiffe://writ.local/agent/m*"}, []string{"learned-agent-mail.yaml"}},
		{learn.Filter{Identity: "spiffe://writ.local/agent/**"}, []string{"learned-agent-crm.yaml", "learned-agent-mail.yaml"}},
		{learn.Filter{Service: "crm"}, []string{"learned-agent-crm.yaml"}},
		{learn.Filter{Since: t0.Add(7 * time.Minute)}, []string{"learned-agent-crm.yaml"}},
		{learn.Filter{Until: t0.Add(7 * time.Minute)}, []string{"learned-agent-mail.yaml"}},
	} {
		l, err := learn.Learn(context.Background(), db.Audit(), tc.f, learn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range l.Files() {
			got = append(got, f.Name)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%+v: files %v, want %v", tc.f, got, tc.want)
		}
	}
}

// candidate is a hand-written change of what mail may do: messages may
// now be deleted, drafts need approval, threads and blobs are gone.
const candidate = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: mail}
spec:
  subjects: ["spiffe://writ.local/agent/mail"]
  rules:
    - name: messages
      effect: allow
      targets: [{http: {service: mailapi, methods: [GET, DELETE], paths: ["/v1/messages/*"]}}]
    - name: drafts
      effect: allow
      targets: [{http: {service: mailapi, methods: [POST], paths: ["/v1/drafts"]}}]
      approval: {approvers: [group:leads]}
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: crm}
spec:
  subjects: ["spiffe://writ.local/agent/crm"]
  rules:
    - name: orders
      effect: allow
      targets: [{http: {service: crm, methods: [GET], paths: ["/customers/*/orders"]}}]
      rate: {limit: 5/1m}
`

func TestReplayReportsAHandWrittenChange(t *testing.T) {
	rep := replayCandidate(t, newLog(t, traffic()), candidate)
	type row struct{ cat, id, policy, rule, paths string }
	var got []row
	for _, c := range rep.Changes {
		var ps []string
		for _, e := range c.Examples {
			ps = append(ps, e.Method+" "+e.Path)
		}
		if int64(len(c.Examples)) != c.Count {
			t.Errorf("%s %s: count %d, %d examples", c.Category, c.Rule, c.Count, len(c.Examples))
		}
		got = append(got, row{c.Category, c.SpiffeID, c.Policy, c.Rule, strings.Join(ps, "|")})
	}
	want := []row{
		// The 6th of the 8 reads within a minute exceeds 5/1m.
		{learn.NewlyDenied, crm, "crm@1", "orders", "GET /customers/7/orders|GET /customers/7/orders|GET /customers/7/orders"},
		{learn.NewlyDenied, mail, "", "", "GET /v1/threads/2026-05-01|GET /v1/blobs/0f8fad5b-d9cb-469f-a165-70867728950e"},
		{learn.ApprovalRequired, mail, "mail@1", "drafts", "POST /v1/drafts|POST /v1/drafts"},
		{learn.NewlyAllowed, mail, "mail@1", "messages", "DELETE /v1/messages/123"},
	}
	if len(got) != len(want) {
		t.Fatalf("changes = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if n := rep.Count(learn.NewlyDenied); n != 5 {
		t.Errorf("newly denied = %d, want 5", n)
	}
	if rep.Unchanged != rep.Accesses-8 {
		t.Errorf("unchanged = %d of %d, want all but 8", rep.Unchanged, rep.Accesses)
	}
}

// replayCandidate replays db's log with the policy file src, keeping 10
// examples per change.
func replayCandidate(t *testing.T, db *sqlite.DB, src string) learn.ReplayReport {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := learn.CompileFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := learn.Replay(context.Background(), db.Audit(), learn.Filter{}, snap, 10)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
