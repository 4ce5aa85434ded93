package access

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/journal"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"github.com/writ-dev/writ/internal/task"
)

const agent = "spiffe://writ.local/agent/a"

const policies = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: p}
spec:
  subjects: [spiffe://writ.local/agent/a]
  rules:
    - name: read
      effect: allow
      targets: [{http: {service: up, methods: [GET], paths: ["/items/**"]}}]
    - name: read-budget
      description: within a task the same calls are capped (a budget grants only within a task)
      effect: allow
      targets: [{http: {service: up, methods: [GET], paths: ["/items/**"]}}]
      budget: 2
    - name: limited
      effect: allow
      targets: [{http: {service: up, methods: [GET], paths: ["/limited"]}}]
      rate: {limit: 1/1h}
    - name: pay
      effect: allow
      targets: [{http: {service: up, methods: [POST], paths: ["/pay"]}}]
      approval: {approvers: [user:alice], timeout: 1m}
    - name: tasks
      effect: allow
      targets: [{task: {purposes: ["*"]}}, {token: {audiences: [up]}}]
`

// env is an Enforcer over real components: a SQLite store in a temporary
// directory, the policy engine with a rate limiter, the revocation list,
// approvals, tasks, the sealed credential broker and the registry.
type env struct {
	e         *Enforcer
	ev        *audittest.Recorder
	db        *sqlite.DB
	revoke    *revoke.List
	tasks     *task.Service
	approvals *approval.Service
	broker    *broker.Broker
	registry  *registry.Registry
	journal   string
}

func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev := &audittest.Recorder{}
	docs, err := resource.Parse("policy.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(policy.Config{Limiter: ratelimit.New()}, snap)
	rv, err := revoke.New(ctx, revoke.Config{Store: db, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := approval.New(ctx, approval.Config{Store: db, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := task.New(ctx, task.Config{Store: db, Policy: engine, Approvals: ap, Revoke: rv, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := keys.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	br, err := broker.New(broker.Config{Store: db, Sealer: sealer, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := br.Put(ctx, "test", "key", broker.Bearer, broker.NewSecret([]byte("the-secret"))); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, registry.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("writ.local"), Store: db, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	at, err := attest.New(attest.Config{Instances: db})
	if err != nil {
		t.Fatal(err)
	}
	c := Config{
		Attestor: at, Registry: reg, Policy: engine, Credentials: br, Tasks: ts, Revocations: rv, Approvals: ap,
		Emitter: ev, Journal: filepath.Join(dir, "proxy.journal"), Node: "n1",
	}
	if mutate != nil {
		mutate(&c)
	}
	e, err := New(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &env{e: e, ev: ev, db: db, revoke: rv, tasks: ts, approvals: ap, broker: br, registry: reg, journal: c.Journal}
}

var upTarget = &Target{Kind: policy.KindHTTP, Name: "up", Ref: "Service/up", Audience: "up",
	Credential: &CredentialSpec{Name: "key"}}

func request(method, path string) *Request {
	return &Request{ID: "req_TEST", Start: time.Now(), Target: upTarget, Method: method, Path: path, Source: "127.0.0.1:4000",
		Caller: &Caller{SpiffeID: agent, Instance: "inst_1", Via: "token", TokenID: "tok_1"}}
}

// journaled returns the decisions in the journal file as events.
func journaled(t *testing.T, path string) []audit.Event {
	t.Helper()
	recs, damaged, err := journal.Recover(path)
	if err != nil || damaged {
		t.Fatalf("Recover: %v, damaged %v", err, damaged)
	}
	var out []audit.Event
	for _, r := range recs {
		var e audit.Event
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestAllowJournalsThenRecords: an allowed access carries the broker's
// credential, its decision is in the journal when Enforce returns, and
// Record turns it into one access.allowed event with the result, under
// the journaled event id.
func TestAllowJournalsThenRecords(t *testing.T) {
	en := newEnv(t, nil)
	req := request("GET", "/items/1")
	out, err := en.e.Enforce(context.Background(), req)
	if err != nil || out.Effect != Allow || out.Class != OK {
		t.Fatalf("Enforce = %+v, %v", out, err)
	}
	if c := out.Credential; c.Name != "key" || c.Header != "Authorization" || c.Reveal() != "Bearer the-secret" {
		t.Errorf("credential %v %q", c, c.Reveal())
	}
	if s := out.Credential.String() + " " + out.Credential.GoString(); strings.Contains(s, "the-secret") {
		t.Errorf("formatting a credential shows its value: %s", s)
	}
	if out.Policy != "p" || out.Rule != "read" {
		t.Errorf("decided by %s/%s", out.Policy, out.Rule)
	}
	d := journaled(t, en.journal)
	if len(d) != 1 || d[0].ID != out.EventID || d[0].Decision != "allow" || d[0].Credential != "key" || d[0].Details["status"] != "" {
		t.Fatalf("journal after Enforce: %+v (event id %s)", d, out.EventID)
	}
	en.e.Record(context.Background(), req, &out, Result{Status: 200, In: 3, Out: 5})
	en.e.Flush()
	got := en.ev.OfType(audit.AccessAllowed)
	if len(got) != 1 {
		t.Fatalf("%d access.allowed events, want 1", len(got))
	}
	e := got[0]
	if e.ID != out.EventID || e.SpiffeID != agent || e.Instance != "inst_1" || e.Target != "Service/up" || e.Action != "GET /items/1" ||
		e.Details["status"] != "200" || e.Details["bytes_in"] != "3" || e.Details["bytes_out"] != "5" || e.Details["via"] != "token" ||
		e.Node != "n1" || e.Credential != "key" || e.Policy != "p" {
		t.Errorf("event %+v", e)
	}
	if n := en.e.Pending(); n != 0 {
		t.Errorf("%d decisions pending after the event was recorded", n)
	}
}

// TestRefusals: every way the core refuses an access, with the class a
// front end answers and the reason recorded, and nothing journaled.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	en := newEnv(t, nil)
	if _, _, err := en.revoke.Revoke(ctx, store.Revocation{Kind: store.RevokeInstance, Value: "inst_dead"}); err != nil {
		t.Fatal(err)
	}
	open := func(budget int64) string {
		tk, err := en.tasks.Open(ctx, task.Subject{SpiffeID: agent, Instance: "inst_1"},
			task.OpenRequest{Purpose: "test", Audiences: []string{"up"}, Duration: time.Hour, Budget: budget}, "")
		if err != nil {
			t.Fatal(err)
		}
		return tk.ID
	}
	spent := open(1)
	if _, err := en.tasks.Charge(ctx, spent); err != nil {
		t.Fatal(err)
	}
	other, err := en.tasks.Open(ctx, task.Subject{SpiffeID: agent, Instance: "inst_2"},
		task.OpenRequest{Purpose: "test", Audiences: []string{"up"}, Duration: time.Hour, BindInstance: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	// One call of the 1/1h rate is used up before the table runs.
	if out, _ := en.e.Enforce(ctx, request("GET", "/limited")); out.Effect != Allow {
		t.Fatalf("first call under the rate: %+v", out)
	}
	for _, tc := range []struct {
		name   string
		req    func() *Request
		class  Class
		reason string
	}{
		{"default deny", func() *Request { return request("DELETE", "/items/1") }, Forbidden, "no rule"},
		{"other subject", func() *Request {
			r := request("GET", "/items/1")
			r.Caller = &Caller{SpiffeID: "spiffe://writ.local/agent/b", Via: "token"}
			return r
		}, Forbidden, ""},
		{"revoked instance", func() *Request {
			r := request("GET", "/items/1")
			r.Caller.Instance = "inst_dead"
			return r
		}, Forbidden, "instance inst_dead is revoked"},
		{"rate limit", func() *Request { return request("GET", "/limited") }, RateLimited, ""},
		{"no such task", func() *Request {
			r := request("GET", "/items/1")
			r.Task = "task_nope"
			return r
		}, Forbidden, "task task_nope does not exist"},
		{"task header against token task", func() *Request {
			r := request("GET", "/items/1")
			r.Caller.Task, r.Task = "task_a", "task_b"
			return r
		}, Invalid, ""},
		{"task bound to another instance", func() *Request {
			r := request("GET", "/items/1")
			r.Task = other.ID
			return r
		}, Forbidden, "is bound to instance inst_2 of " + agent + " (opened with --bind-instance), and the caller is instance inst_1"},
		{"task budget used up", func() *Request {
			r := request("GET", "/items/1")
			r.Task = spent
			return r
		}, Forbidden, "cannot make more calls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(journaled(t, en.journal))
			out, err := en.e.Enforce(ctx, tc.req())
			if err != nil {
				t.Fatalf("Enforce: %v", err)
			}
			if out.Effect != Deny || out.Class != tc.class || !strings.Contains(out.Reason, tc.reason) || out.Message == "" {
				t.Errorf("outcome %+v, want %v with reason %q", out, tc.class, tc.reason)
			}
			if tc.class == RateLimited && out.RetryAfter <= 0 {
				t.Errorf("rate limited without a retry-after: %+v", out)
			}
			if n := len(journaled(t, en.journal)); n != before {
				t.Errorf("a refusal was journaled (%d decisions, %d before)", n, before)
			}
		})
	}
	// The rule's budget (2) counts the task's calls too.
	budgeted := open(0)
	for i := range 3 {
		r := request("GET", "/items/1")
		r.Task = budgeted
		out, err := en.e.Enforce(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 2; (out.Effect == Allow) != want || out.Task.ID != budgeted && want {
			t.Fatalf("call %d on a task with budget 2: %+v", i+1, out)
		}
		if i == 2 && (out.Class != Forbidden || !strings.Contains(out.Reason, budgeted)) {
			t.Errorf("third call: %q", out.Reason)
		}
	}
}

// TestRefusalRecorded: a refused access is one access.denied event with
// the refusal's reason, the message when there is none.
func TestRefusalRecorded(t *testing.T) {
	en := newEnv(t, nil)
	req := request("DELETE", "/items/1")
	out, _ := en.e.Enforce(context.Background(), req)
	en.e.Record(context.Background(), req, &out, Result{Status: 403})
	unid := &Request{ID: "req_2", Start: time.Now(), Method: "GET", Path: "/x"}
	out2 := Refused(unidentified("who?"))
	en.e.Record(context.Background(), unid, &out2, Result{Status: 401})
	internal := Refused(errors.New("disk on fire"))
	en.e.Record(context.Background(), unid, &internal, Result{Status: 500})
	en.e.Flush()
	got := en.ev.OfType(audit.AccessDenied)
	if len(got) != 3 {
		t.Fatalf("%d access.denied events, want 3", len(got))
	}
	if e := got[0]; e.Decision != "deny" || e.Details["status"] != "403" || e.Reason == "" || e.Target != "Service/up" {
		t.Errorf("policy denial event %+v", e)
	}
	if e := got[1]; e.Reason != "who?" || e.Target != "" || e.SpiffeID != "" {
		t.Errorf("unidentified event %+v", e)
	}
	if e := got[2]; e.Reason != "internal error; see the writ log" || strings.Contains(e.Reason, "fire") {
		t.Errorf("internal failure event %+v", e)
	}
}

// TestApproval: an approval-required access waits for a named human; an
// approval allows it, a denial refuses it, both naming the approval.
func TestApproval(t *testing.T) {
	ctx := context.Background()
	en := newEnv(t, nil)
	for _, approve := range []bool{true, false} {
		done := make(chan Outcome)
		go func() {
			out, err := en.e.Enforce(ctx, request("POST", "/pay"))
			if err != nil {
				t.Error(err)
			}
			done <- out
		}()
		var pending []store.Approval
		for len(pending) == 0 {
			var err error
			if pending, err = en.approvals.List(ctx, store.ApprovalPending); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := en.approvals.Decide(ctx, pending[0].ID, approve, "admin:alice", ""); err != nil {
			t.Fatal(err)
		}
		out := <-done
		if out.Approval != pending[0].ID || (out.Effect == Allow) != approve {
			t.Errorf("approve=%v: %+v", approve, out)
		}
		if !approve && (out.Class != Forbidden || !strings.Contains(out.Reason, pending[0].ID)) {
			t.Errorf("denied approval: %+v", out)
		}
	}
}

// TestFailClosed: while the audit log refuses events, or once the journal
// is closed, an allowed access is Unavailable and Record drops it.
func TestFailClosed(t *testing.T) {
	ctx := context.Background()
	en := newEnv(t, func(c *Config) { c.AuditFailed = func() error { return errors.New("the audit store failed to sync") } })
	req := request("GET", "/items/1")
	out, err := en.e.Enforce(ctx, req)
	if err != nil || out.Class != Unavailable || !strings.Contains(out.Message, "fails closed") {
		t.Fatalf("with the audit log failed: %+v, %v", out, err)
	}
	en.e.Record(ctx, req, &out, Result{Status: 503})
	en.e.Flush()
	if n := len(en.ev.OfType(audit.AccessAllowed)) + len(en.ev.OfType(audit.AccessDenied)); n != 0 {
		t.Errorf("%d access events for an access that did not happen", n)
	}

	en2 := newEnv(t, nil)
	en2.e.Close()
	if out, _ := en2.e.Enforce(ctx, request("GET", "/items/1")); out.Class != Unavailable {
		t.Errorf("with the journal closed: %+v", out)
	}
}

// TestCredentialUnavailable: an allowed access whose credential the broker
// does not have is NoCredential, recorded as allowed with the reason.
func TestCredentialUnavailable(t *testing.T) {
	ctx := context.Background()
	en := newEnv(t, nil)
	req := request("GET", "/items/1")
	req.Target = &Target{Kind: policy.KindHTTP, Name: "up", Ref: "Service/up", Credential: &CredentialSpec{Name: "nope"}}
	out, err := en.e.Enforce(ctx, req)
	if err != nil || out.Effect != Allow || out.Class != NoCredential || !strings.Contains(out.Message, "writ credential put nope") {
		t.Fatalf("%+v, %v", out, err)
	}
	en.e.Record(ctx, req, &out, Result{Status: 502})
	en.e.Flush()
	if got := en.ev.OfType(audit.AccessAllowed); len(got) != 1 || got[0].Reason != "upstream credential unavailable" || got[0].Credential != "nope" {
		t.Errorf("events %+v", got)
	}
}

// TestIdentifyRefusals: without anything to go on, or with a credential
// that is not a writ token, the caller is told how to get an identity.
func TestIdentifyRefusals(t *testing.T) {
	en := newEnv(t, nil)
	_, err := en.e.Identify(context.Background(), &Conn{}, &Presented{}, upTarget)
	out := Refused(err)
	if out.Class != Unidentified || !strings.Contains(out.Reason, "writ entry create") || out.Message != "caller not identified" {
		t.Errorf("no credentials: %+v", out)
	}
}

// TestRecoveryFailureStopsStart: if the recovered decisions cannot be
// recorded, or the journal is not one, the enforcer does not start.
func TestRecoveryFailureStopsStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.journal")
	j, err := journal.Open(journal.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := (&audit.Event{ID: "evt_1", Type: audit.AccessAllowed, Details: map[string]string{"path": "/x"}}).MarshalCanonical()
	if _, err := j.Begin(data); err != nil {
		t.Fatal(err)
	}
	pol := policy.NewEngine(policy.Config{}, nil)
	sink := &audittest.Recorder{}
	sink.FailOn(audit.AccessAllowed, errors.New("audit store unavailable"))
	if _, err := New(context.Background(), Config{Policy: pol, Emitter: sink, Journal: path}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("New with an unrecordable recovered decision: %v", err)
	}
	if n := len(journaled(t, path)); n != 1 {
		t.Fatalf("the journal lost its decision after a failed recovery: %d left", n)
	}
	foreign := filepath.Join(dir, "foreign")
	os.WriteFile(foreign, []byte("not a journal"), 0o600)
	if _, err := New(context.Background(), Config{Policy: pol, Emitter: &audittest.Recorder{}, Journal: foreign}); err == nil || !strings.Contains(err.Error(), "not a writ journal") {
		t.Fatalf("New with a foreign journal file: %v", err)
	}
}

// TestIdentifyProcess: the local process behind a loopback connection (this
// test) is attested and matched to its identity once per connection; a
// process matching two identities must pick one.
func TestIdentifyProcess(t *testing.T) {
	ctx := context.Background()
	en := newEnv(t, nil)
	uid := store.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
	if _, err := en.registry.Create(ctx, "test", store.Entry{Name: "me", SpiffeID: agent, Selectors: []store.Selector{uid}}); err != nil {
		t.Fatal(err)
	}
	conn := func() *Conn {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &Conn{Local: netip.MustParseAddrPort(s.LocalAddr().String()), Remote: netip.MustParseAddrPort(s.RemoteAddr().String())}
	}
	c1 := conn()
	caller, err := en.e.Identify(ctx, c1, &Presented{}, upTarget)
	if err != nil || caller.SpiffeID != agent || caller.Via != "process" || caller.PID != os.Getpid() || !strings.HasPrefix(caller.Instance, "inst_") {
		t.Fatalf("Identify = %+v, %v", caller, err)
	}
	// A second identity for the same process: the cached caller stays on
	// the first connection; a new connection must pick.
	if _, err := en.registry.Create(ctx, "test", store.Entry{Name: "me2", SpiffeID: agent + "2", Selectors: []store.Selector{uid}}); err != nil {
		t.Fatal(err)
	}
	if again, err := en.e.Identify(ctx, c1, &Presented{}, upTarget); err != nil || again != caller {
		t.Errorf("second request on the connection: %+v, %v", again, err)
	}
	c2 := conn()
	_, err = en.e.Identify(ctx, c2, &Presented{}, upTarget)
	if out := Refused(err); out.Class != Forbidden || !strings.Contains(out.Reason, "Writ-Identity") {
		t.Errorf("ambiguous process: %+v", out)
	}
	if picked, err := en.e.Identify(ctx, c2, &Presented{Identity: agent + "2"}, upTarget); err != nil || picked.SpiffeID != agent+"2" {
		t.Errorf("picked identity: %+v, %v", picked, err)
	}
	// An entry whose selectors include the others' and more is the most
	// specific: it wins without a header; the others can still be named.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		t.Fatal(err)
	}
	if _, err := en.registry.Create(ctx, "test", store.Entry{Name: "me3", SpiffeID: agent + "3",
		Selectors: []store.Selector{uid, {Type: "unix", Value: "path:" + exe}}}); err != nil {
		t.Fatal(err)
	}
	c3 := conn()
	if got, err := en.e.Identify(ctx, c3, &Presented{}, upTarget); err != nil || got.SpiffeID != agent+"3" {
		t.Errorf("most specific entry: %+v, %v; want %s", got, err, agent+"3")
	}
	if got, err := en.e.Identify(ctx, c3, &Presented{Identity: agent}, upTarget); err != nil || got.SpiffeID != agent {
		t.Errorf("named less specific identity: %+v, %v", got, err)
	}
	if _, err := en.e.Identify(ctx, c3, &Presented{Identity: "spiffe://writ.local/not-mine"}, upTarget); Refused(err).Class != Forbidden {
		t.Errorf("named identity the process does not hold: %v", err)
	}
}

// writToken is a compact JWT that looks like a writ access token of
// issuer iss (the signature is not checked by HoldsWritToken).
func writToken(typ, iss string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"`+typ+`","kid":"k1"}`)) + "." +
		enc([]byte(`{"iss":"`+iss+`","sub":"spiffe://writ.local/agent/a","aud":"up","jti":"at_1"}`)) + ".c2lnbmF0dXJl"
}

func TestHoldsWritToken(t *testing.T) {
	en := newEnv(t, func(c *Config) { c.Issuer = "https://writ.test" })
	tok := writToken("at+jwt", "https://writ.test")
	for _, tc := range []struct {
		name string
		v    string
		want bool
	}{
		{"alone", tok, true},
		{"bearer", "Bearer " + tok, true},
		{"cookie", "session=1; writ=" + tok + "; theme=dark", true},
		{"quoted", `{"token":"` + tok + `"}`, true},
		{"after a false start", "eyJxx eyJ." + tok, true},
		{"other issuer", writToken("at+jwt", "https://idp.example"), false},
		{"a JWT-SVID", writToken("JWT", "https://writ.test"), false},
		{"not base64", "eyJ!!!.eyJ.x", false},
		{"no token", "session=1", false},
		{"empty", "", false},
	} {
		if got := en.e.HoldsWritToken(tc.v); got != tc.want {
			t.Errorf("%s: HoldsWritToken(%q) = %v, want %v", tc.name, tc.v, got, tc.want)
		}
	}
	noIssuer := newEnv(t, nil)
	if noIssuer.e.HoldsWritToken(tok) {
		t.Error("an enforcer without an issuer recognised a token")
	}
}

// FuzzHoldsWritToken: a writ token is found whatever surrounds it, and
// no input makes the scan fail.
func FuzzHoldsWritToken(f *testing.F) {
	e := &Enforcer{c: Config{Issuer: "https://writ.test"}}
	tok := writToken("at+jwt", "https://writ.test")
	f.Add("session=1; writ=", "; x=2")
	f.Add("eyJ", "")
	f.Add("Bearer eyJhbGciOi.", ".")
	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		e.HoldsWritToken(prefix + suffix)
		if !e.HoldsWritToken(prefix + tok + suffix) {
			t.Fatalf("token not found in %q + token + %q", prefix, suffix)
		}
	})
}

// BenchmarkHoldsWritToken is the scan of an ordinary header value and of
// a hostile one (64 KiB of "eyJ", the most candidates a header can hold).
func BenchmarkHoldsWritToken(b *testing.B) {
	e := &Enforcer{c: Config{Issuer: "https://writ.test"}}
	for _, v := range []struct{ name, s string }{
		{"ordinary", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"},
		{"hostile", strings.Repeat("eyJ", 64<<10/3)},
	} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				e.HoldsWritToken(v.s)
			}
		})
	}
}

// TestRecoverRefusal: a refused access's event left in the journal by a
// crash is recorded at the next start as it was journaled (its outcome is
// known); an allowed access's decision as one whose outcome is unknown.
func TestRecoverRefusal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.journal")
	j, err := journal.Open(journal.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []audit.Event{
		{ID: "evt_denied", Type: audit.AccessDenied, Decision: "deny", Reason: "no rule", Details: map[string]string{"path": "/x", "status": "403"}},
		{ID: "evt_allowed", Type: audit.AccessAllowed, Decision: "allow", Details: map[string]string{"path": "/y"}},
	} {
		data, _ := e.MarshalCanonical()
		if _, err := j.Begin(data); err != nil {
			t.Fatal(err)
		}
	}
	sink := &audittest.Recorder{}
	e, err := New(context.Background(), Config{Policy: policy.NewEngine(policy.Config{}, nil), Emitter: sink, Journal: path})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	den, al := sink.OfType(audit.AccessDenied), sink.OfType(audit.AccessAllowed)
	if len(den) != 1 || den[0].ID != "evt_denied" || den[0].Reason != "no rule" || den[0].Details["outcome"] != "" || den[0].Details["status"] != "403" {
		t.Errorf("recovered refusal %+v", den)
	}
	if len(al) != 1 || al[0].Details["outcome"] != "unknown" {
		t.Errorf("recovered decision %+v", al)
	}
}

// TestRefusalJournaledUntilRecorded: Record writes a refusal's event to
// the journal at once, under the id it is recorded with, and settles it
// when it is in the log.
func TestRefusalJournaledUntilRecorded(t *testing.T) {
	en := newEnv(t, nil)
	req := request("DELETE", "/items/1")
	out, _ := en.e.Enforce(context.Background(), req)
	en.e.Record(context.Background(), req, &out, Result{Status: 403})
	if d := journaled(t, en.journal); len(d) == 0 || d[len(d)-1].Type != audit.AccessDenied || d[len(d)-1].ID != out.EventID {
		// The recorder may already have settled it; then the log has it.
		en.e.Flush()
		if got := en.ev.OfType(audit.AccessDenied); len(got) != 1 || got[0].ID != out.EventID {
			t.Fatalf("refusal neither in the journal nor recorded: journal %+v, events %+v", d, got)
		}
	}
	en.e.Flush()
	if got := en.ev.OfType(audit.AccessDenied); len(got) != 1 || got[0].ID != out.EventID || out.EventID == "" {
		t.Errorf("recorded refusal %+v (journaled id %s)", got, out.EventID)
	}
	if n := en.e.Pending(); n != 0 {
		t.Errorf("%d records pending after the refusal was recorded", n)
	}
}

// TestEnforceMCP: the same core decides an MCP call on its server, tool
// and arguments, and records it under the tool's name.
func TestEnforceMCP(t *testing.T) {
	ctx := context.Background()
	docs, err := resource.Parse("policy.yaml", []byte(`apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: m}
spec:
  subjects: [spiffe://writ.local/agent/a]
  rules:
    - {name: read, effect: allow, targets: [{mcp: {server: files, tools: ["read_*"]}}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	en := newEnv(t, func(c *Config) { c.Policy = policy.NewEngine(policy.Config{}, snap) })
	files := &Target{Kind: policy.KindMCP, Name: "files", Ref: "MCPServer/files"}
	call := func(tool string) (*Request, Outcome) {
		req := request("tools/call", "")
		req.Target, req.Tool, req.Args = files, tool, map[string]any{"path": "/tmp/x"}
		out, err := en.e.Enforce(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return req, out
	}
	req, out := call("read_file")
	if out.Effect != Allow || out.Rule != "read" || !out.Credential.IsZero() {
		t.Fatalf("read_file: %+v", out)
	}
	en.e.Record(ctx, req, &out, Result{Status: 200})
	if _, out := call("delete_file"); out.Effect != Deny || out.Class != Forbidden {
		t.Errorf("delete_file: %+v", out)
	}
	en.e.Flush()
	got := en.ev.OfType(audit.AccessAllowed)
	if len(got) != 1 || got[0].Action != "tools/call read_file" || got[0].Details["tool"] != "read_file" || got[0].Target != "MCPServer/files" {
		t.Errorf("events %+v", got)
	}
}
