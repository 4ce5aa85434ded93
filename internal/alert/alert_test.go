package alert

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// env is a real store and audit log with a clock the test moves.
type env struct {
	db  *sqlite.DB
	log *auditlog.Log
	now time.Time
	eng *Engine
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	e := &env{db: db, now: t0}
	clock := func() time.Time { return e.now }
	e.log, err = auditlog.Open(ctx, auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close(ctx); db.Close() })
	e.eng = &Engine{Log: db.Audit(), Store: db, Rules: cfg, Emitter: e.log, Now: clock,
		Webhooks: func(store.Alert) []string { return []string{"ops"} }}
	return e
}

func (e *env) emit(t testing.TB, es ...audit.Event) {
	t.Helper()
	for i := range es {
		if es[i].Time.IsZero() {
			es[i].Time = e.now
		}
	}
	if err := audit.EmitBatch(context.Background(), e.log, es); err != nil {
		t.Fatal(err)
	}
}

func shadowAgent(key string) audit.Event {
	return audit.Event{Type: audit.DiscoveryAgentFound, Node: "h1", Target: "agent/claude",
		Details: map[string]string{"key": key, "identified": "false", "pid": "42", "exe": "/usr/bin/claude", "evidence": "known agent CLI"}}
}

func denied(id string) audit.Event {
	return audit.Event{Type: audit.AccessDenied, SpiffeID: id, Action: "GET /x", Target: "Service/api", Reason: "no rule allows it", Source: "127.0.0.1:5000"}
}

// TestLifecycle: an alert is raised once per subject with its evidence,
// acknowledged and resolved by named humans (audited), and dwell time and
// coverage come out of an injected clock.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	e.emit(t, shadowAgent("process/h1/42/1"))
	e.now = t0.Add(30 * time.Second)
	created, err := e.eng.Sync(ctx)
	if err != nil || len(created) != 1 {
		t.Fatalf("Sync = %+v, %v", created, err)
	}
	a := created[0]
	if a.Rule != RuleShadowAgent || a.Severity != SeverityHigh || !a.FirstEvidence.Equal(t0) || !a.RaisedAt.Equal(t0.Add(30*time.Second)) ||
		len(a.Evidence) != 1 || !strings.Contains(a.Evidence[0].Summary, "pid 42") || a.Evidence[0].Event == "" {
		t.Errorf("alert = %+v", a)
	}
	// The same agent again, and an identified one: no new alert.
	e.now = t0.Add(time.Minute)
	ok := shadowAgent("process/h1/43/1")
	ok.Details["identified"] = "true"
	e.emit(t, shadowAgent("process/h1/42/1"), ok)
	if created, err := e.eng.Sync(ctx); err != nil || len(created) != 0 {
		t.Fatalf("second Sync = %+v, %v", created, err)
	}
	got, _ := e.db.GetAlert(ctx, a.ID)
	if got.Count != 2 || !got.LastEvidence.Equal(t0.Add(time.Minute)) {
		t.Errorf("alert after more evidence = %+v", got)
	}
	if dl, _ := e.db.ListDeliveries(ctx, a.ID); len(dl) != 1 || dl[0].Webhook != "ops" {
		t.Errorf("deliveries = %+v, want one for ops", dl)
	}

	e.now = t0.Add(10 * time.Minute)
	if _, err := e.eng.SetState(ctx, a.ID, store.AlertAcknowledged, "admin:ann", "on it"); err != nil {
		t.Fatal(err)
	}
	e.now = t0.Add(time.Hour)
	res, err := e.eng.SetState(ctx, a.ID, store.AlertResolved, "admin:bob", "")
	if err != nil || res.AckedBy != "admin:ann" || res.ResolvedBy != "admin:bob" {
		t.Fatalf("resolve = %+v, %v", res, err)
	}
	if _, err := e.eng.SetState(ctx, a.ID, store.AlertAcknowledged, "admin:ann", ""); err == nil {
		t.Error("acknowledging a resolved alert succeeded")
	}
	if _, err := e.eng.SetState(ctx, a.ID, store.AlertResolved, "x", strings.Repeat("n", 5000)); err == nil {
		t.Error("a 5000-byte note was accepted")
	}
	// The decisions are in the audit log, with who and the dwell time;
	// the engine reads them without raising anything.
	var types []string
	recs, _ := e.db.Audit().ReadRecords(ctx, 0, 100)
	for _, r := range recs {
		ev, _ := r.Event()
		if ev.Type == audit.AlertAcknowledged || ev.Type == audit.AlertResolved {
			types = append(types, string(ev.Type)+" "+ev.Actor+" "+ev.Details["dwell_seconds"])
		}
	}
	if strings.Join(types, "|") != "alert.acknowledged admin:ann 600|alert.resolved admin:bob 3600" {
		t.Errorf("audit records = %q", types)
	}
	if created, _ := e.eng.Sync(ctx); len(created) != 0 {
		t.Errorf("the engine alerted on its own records: %+v", created)
	}

	// A second shadow agent, raised and never acknowledged.
	e.emit(t, shadowAgent("process/h1/44/1"))
	if _, err := e.eng.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	all, _ := e.db.ListAlerts(ctx, store.AlertFilter{})
	s := Summarize(all, t0.Add(90*time.Minute), time.Hour, Config{Disabled: []string{RuleApprovalPending}})
	if s.Total != 2 || s.Resolved != 1 || s.Open != 1 || s.DwellMedian != 10*time.Minute || s.AckedInTime != 1 || s.Due != 1 || s.Pending != 1 ||
		s.Coverage != 1 || s.RaiseMedian > 30*time.Second || len(s.RulesDisabled) != 1 || s.RulesCatalogue != len(Catalogue) {
		t.Errorf("summary at 90m = %+v", s)
	}
	s = Summarize(all, t0.Add(3*time.Hour), time.Hour, Config{})
	if s.Due != 2 || s.Coverage != 0.5 || s.DetectionCoverage != 1 {
		t.Errorf("summary at 3h = %+v", s)
	}
}

// TestRepeatedDenials: the threshold counts within the window, across
// Syncs (the windows are carried in the cursor's state) and per caller.
func TestRepeatedDenials(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{DenialThreshold: 3, DenialWindow: time.Minute})
	a, b := "spiffe://writ.local/agent/a", "spiffe://writ.local/agent/b"
	e.emit(t, denied(a), denied(a), denied(b))
	if c, _ := e.eng.Sync(ctx); len(c) != 0 {
		t.Fatalf("two denials raised %+v", c)
	}
	e.now = t0.Add(2 * time.Minute) // outside the window: counting starts again
	e.emit(t, denied(a), denied(a))
	if c, _ := e.eng.Sync(ctx); len(c) != 0 {
		t.Fatalf("denials outside the window raised %+v", c)
	}
	e.now = t0.Add(2*time.Minute + 10*time.Second)
	e.emit(t, denied(a))
	c, err := e.eng.Sync(ctx)
	if err != nil || len(c) != 1 || c[0].Subject != a || c[0].Rule != RuleRepeatedDenials {
		t.Fatalf("third denial within the window: %+v, %v", c, err)
	}
	// Other rules on denials.
	rev := denied(b)
	rev.Reason = "instance inst_9 is revoked"
	bypass := denied("")
	bypass.Reason = `request path "/a/..;/b" contains a semicolon; the upstream could read it as another path than the one policy decides on`
	e.emit(t, rev, bypass)
	c, _ = e.eng.Sync(ctx)
	rules := map[string]string{}
	for _, x := range c {
		rules[x.Rule] = x.Subject
	}
	if rules[RuleRevokedUse] != b || rules[RulePolicyBypass] != "unidentified@127.0.0.1" {
		t.Errorf("alerts = %+v", c)
	}
	// A disabled rule raises nothing.
	e2 := newEnv(t, Config{Disabled: []string{RuleShadowAgent}})
	e2.emit(t, shadowAgent("k"))
	if c, _ := e2.eng.Sync(ctx); len(c) != 0 {
		t.Errorf("disabled rule raised %+v", c)
	}
}

// receiver is a webhook endpoint that fails the first fails requests.
type receiver struct {
	mu     sync.Mutex
	fails  int
	bodies [][]byte
	sigs   []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		r.fails--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	r.bodies = append(r.bodies, b)
	r.sigs = append(r.sigs, req.Header.Get(SignatureHeader))
}

// TestWebhookDelivery: a new alert is delivered, signed, after retries
// with backoff, and a restart (a new Deliverer) loses nothing.
func TestWebhookDelivery(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	rcv := &receiver{fails: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	secret := []byte("0123456789abcdef-secret")
	hook := Webhook{Name: "ops", URL: srv.URL + "/hook/T0K3N", Secret: secret}
	if err := hook.Check(); err != nil {
		t.Fatal(err)
	}
	e.emit(t, audit.Event{Type: audit.ApprovalRequested, SpiffeID: "spiffe://writ.local/agent/a", Action: "mcp", Target: "MCPServer/files",
		Reason: "needs a human", Details: map[string]string{"approval": "apr_7"}})
	if _, err := e.eng.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return e.now }
	newDeliverer := func() *Deliverer {
		return &Deliverer{Store: e.db, Hooks: map[string]Webhook{"ops": hook}, Now: clock, MaxAttempts: 5}
	}
	dv := newDeliverer()
	if n, err := dv.DeliverDue(ctx); n != 0 || err != nil {
		t.Fatalf("first attempt against a failing receiver: %d, %v", n, err)
	}
	if n, _ := dv.DeliverDue(ctx); n != 0 {
		t.Fatal("retried before the backoff passed")
	}
	e.now = e.now.Add(time.Second)
	dv.DeliverDue(ctx)  // second failure; next in 2s
	dv = newDeliverer() // a restart
	e.now = e.now.Add(2 * time.Second)
	if n, err := dv.DeliverDue(ctx); n != 1 || err != nil {
		t.Fatalf("after the backoff: %d, %v", n, err)
	}
	if len(rcv.bodies) != 1 {
		t.Fatalf("receiver got %d bodies", len(rcv.bodies))
	}
	body := rcv.bodies[0]
	if err := VerifySignature(secret, body, rcv.sigs[0], e.now, 5*time.Minute); err != nil {
		t.Errorf("signature: %v", err)
	}
	if err := VerifySignature([]byte("another-secret-0123"), body, rcv.sigs[0], e.now, 5*time.Minute); err == nil {
		t.Error("signature verified under another secret")
	}
	for _, want := range []string{`"writ approval approve apr_7"`, `"writ alert ack alr_`, `"rule":"approval_pending"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
	all, _ := e.db.ListAlerts(ctx, store.AlertFilter{})
	dls, _ := e.db.ListDeliveries(ctx, all[0].ID)
	if len(dls) != 1 || dls[0].Attempts != 3 || dls[0].DeliveredAt.IsZero() || strings.Contains(dls[0].LastError, "T0K3N") {
		t.Errorf("delivery = %+v", dls)
	}

	// A receiver that never answers 2xx: given up after MaxAttempts,
	// errors never holding the URL's secret path.
	rcv.fails = 1000
	e.emit(t, shadowAgent("k2"))
	e.eng.Sync(ctx)
	for range 10 {
		e.now = e.now.Add(time.Hour)
		dv.DeliverDue(ctx)
	}
	all, _ = e.db.ListAlerts(ctx, store.AlertFilter{Rule: RuleShadowAgent})
	dls, _ = e.db.ListDeliveries(ctx, all[0].ID)
	if len(dls) != 1 || !dls[0].Failed || dls[0].Attempts != 5 || strings.Contains(dls[0].LastError, "T0K3N") || !strings.Contains(dls[0].LastError, "503") {
		t.Errorf("failed delivery = %+v", dls)
	}
}

func TestSlackBody(t *testing.T) {
	d := store.Delivery{ID: 1, Body: []byte(`{"id":"alr_1","rule":"shadow_credential","severity":"high","title":"Static credential","subject":"OPENAI_API_KEY","evidence":[{"summary":"in env"}]}`)}
	b, err := Body(FormatSlack, d)
	if err != nil || !strings.HasPrefix(string(b), `{"text":"[HIGH] Static credential: OPENAI_API_KEY\nin env\nFix: `) || !strings.Contains(string(b), "writ alert ack alr_1") {
		t.Errorf("slack body = %s, %v", b, err)
	}
}

func TestConfigHostile(t *testing.T) {
	for _, c := range []Config{{Disabled: []string{"nope"}}, {DenialThreshold: -1}, {DenialWindow: 48 * time.Hour}, {AuthFailThreshold: 2_000_000}} {
		if err := c.Check(); err == nil {
			t.Errorf("Check(%+v) accepted", c)
		}
	}
	for _, w := range []Webhook{
		{Name: "", URL: "https://x"}, {Name: "a b", URL: "https://x"}, {Name: "a", URL: "ftp://x/T0K3N"},
		{Name: "a", URL: "https://user:T0K3N@x/"}, {Name: "a", URL: "/relative/T0K3N"}, {Name: "a", URL: "https://x/#T0K3N"},
		{Name: "a", URL: "https://x", Format: "teams"}, {Name: "a", URL: "https://x", MinSeverity: "urgent"},
		{Name: "a", URL: "https://x", Rules: []string{"nope"}}, {Name: "a", URL: "https://x", Secret: []byte("short")},
	} {
		err := w.Check()
		if err == nil {
			t.Errorf("Check(%+v) accepted", w)
		} else if strings.Contains(err.Error(), "T0K3N") {
			t.Errorf("error shows the URL's secret: %v", err)
		}
	}
	if s := (Webhook{Name: "ops", URL: "https://hooks.example.com/services/T0K3N"}).String(); strings.Contains(s, "T0K3N") {
		t.Errorf("String() = %q", s)
	}
}

// TestRuleUsage: the engine carries, across Syncs and in its stored
// cursor state, when each policy rule last decided a request, across the
// policy's versions; a state of an older release (windows only) is read
// as empty.
func TestRuleUsage(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	allowed := audit.Event{Type: audit.AccessAllowed, SpiffeID: "spiffe://writ.local/agent/a", Policy: "mail@1", Rule: "read"}
	e.emit(t, allowed, denied("spiffe://writ.local/agent/a"))
	if _, err := e.eng.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e.now = t0.Add(time.Hour)
	allowed.Policy = "mail@2"
	d := denied("spiffe://writ.local/agent/b")
	d.Policy, d.Rule = "mail@2", "no-delete"
	e.emit(t, allowed, d)
	if _, err := e.eng.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cur, err := e.db.GetCursor(ctx, store.CursorAlerts)
	if err != nil {
		t.Fatal(err)
	}
	u := RuleUsage(cur.State)
	if len(u) != 2 || u["mail/read"].Count != 2 || !u["mail/read"].Last.Equal(t0.Add(time.Hour)) || u["mail/no-delete"].Count != 1 {
		t.Errorf("rule usage = %+v", u)
	}
	if len(RuleUsage([]byte(`{"repeated_denials/x":["2026-01-01T00:00:00Z"]}`))) != 0 || len(RuleUsage(nil)) != 0 {
		t.Error("an old or absent state has rule usage")
	}
}

// TestPostureFinding: a high or critical posture finding raises one
// alert of its severity per finding id; a medium one raises nothing.
func TestPostureFinding(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{})
	finding := func(id, sev string) audit.Event {
		return audit.Event{Type: audit.PostureFinding, Target: id, Details: map[string]string{"check": "direct_access", "severity": sev,
			"title": "process reaches service:pay around writ", "fix": "set HTTPS_PROXY"}}
	}
	e.emit(t, finding("direct_access/a", SeverityCritical), finding("direct_access/a", SeverityCritical), finding("wildcard_subject/p", SeverityMedium),
		finding("static_credential/h/c", SeverityHigh))
	c, err := e.eng.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range c {
		if a.Rule != RulePostureFinding || !strings.Contains(a.Evidence[0].Summary, "fix: set HTTPS_PROXY") {
			t.Errorf("alert %+v", a)
		}
		got[a.Subject] = a.Severity
	}
	if len(got) != 2 || got["direct_access/a"] != SeverityCritical || got["static_credential/h/c"] != SeverityHigh {
		t.Errorf("posture alerts = %v", got)
	}
}
