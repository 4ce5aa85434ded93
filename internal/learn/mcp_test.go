package learn

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/policy"
)

const agentA = "spiffe://writ.local/agent/a"

var tm = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func mcpCall(i int, tool string, args map[string]any) *Access {
	a := &Access{Index: int64(i), Time: tm.Add(time.Duration(i) * time.Second), Allowed: true, Decision: "allow",
		SpiffeID: agentA, Service: "files", Method: "tools/call", Tool: tool}
	if args != nil {
		b, _ := json.Marshal(args)
		a.Args = string(b)
	}
	return a
}

// compileLearned writes l's files and compiles them as the server would.
func compileLearned(t testing.TB, l *Learner) (*policy.Snapshot, string) {
	t.Helper()
	dir := t.TempDir()
	var all strings.Builder
	for _, f := range l.Files() {
		all.Write(f.Content)
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := CompileFiles(dir)
	if err != nil {
		t.Fatalf("learned policy does not compile: %v\n%s", err, all.String())
	}
	return snap, all.String()
}

func decideMCP(snap *policy.Snapshot, tool string, args map[string]any) policy.Effect {
	a := mcpCall(0, tool, args)
	q := a.Request()
	if args != nil {
		q.MCP.Args = a.ArgsMap()
	} else {
		q.MCP.Args = map[string]any{}
	}
	return snap.Decide(q).Effect
}

func TestLearnMCPArguments(t *testing.T) {
	l := NewLearner(Options{NoRate: true})
	i := 0
	add := func(tool string, args map[string]any) {
		i++
		l.Add(mcpCall(i, tool, args))
	}
	for n := range 12 { // more paths than MaxValues: a common directory
		add("read_file", map[string]any{"path": "/data/reports/" + strconv.Itoa(n) + ".txt"})
	}
	add("read_file", map[string]any{"path": "/data/reports/q1/summary.txt"})
	add("search", map[string]any{"q": "alpha", "limit": 10})
	add("search", map[string]any{"q": "beta"})
	add("search", map[string]any{"q": "alpha", "exact": true})
	add("send", nil) // arguments not recorded
	for n := range 20 {
		add("count", map[string]any{"n": n * 3})
	}
	snap, yaml := compileLearned(t, l)
	for _, want := range []string{"arguments not recorded", `paths under /data/reports/`, `integers from 0 to 57`} {
		if !strings.Contains(yaml, want) {
			t.Errorf("policy lacks %q:\n%s", want, yaml)
		}
	}
	for _, tc := range []struct {
		tool string
		args map[string]any
		want policy.Effect
	}{
		{"read_file", map[string]any{"path": "/data/reports/3.txt"}, policy.Allow},
		{"read_file", map[string]any{"path": "/data/reports/q2/new.txt"}, policy.Allow}, // under the directory
		{"read_file", map[string]any{"path": "/data/reports/../../etc/passwd"}, policy.Deny},
		{"read_file", map[string]any{"path": "/etc/passwd"}, policy.Deny},
		{"read_file", map[string]any{"path": "/data/reports/" + strings.Repeat("x", 100)}, policy.Deny}, // longer than observed
		{"read_file", map[string]any{"path": 7}, policy.Deny},
		{"read_file", map[string]any{"path": "/data/reports/1.txt", "mode": "w"}, policy.Deny}, // an argument never seen
		{"read_file", map[string]any{}, policy.Deny},                                           // path was always there
		{"search", map[string]any{"q": "alpha"}, policy.Allow},
		{"search", map[string]any{"q": "beta", "limit": 10}, policy.Allow},
		{"search", map[string]any{"q": "gamma"}, policy.Deny},
		{"search", map[string]any{"q": "alpha", "limit": 11}, policy.Deny},
		{"search", map[string]any{"q": "alpha", "exact": false}, policy.Deny},
		{"search", map[string]any{"q": "*"}, policy.Deny},
		{"send", map[string]any{"to": "anyone"}, policy.Allow}, // not recorded: the tool only
		{"count", map[string]any{"n": 57}, policy.Allow},
		{"count", map[string]any{"n": 58}, policy.Deny},
		{"count", map[string]any{"n": "1"}, policy.Deny},
		{"delete_file", map[string]any{"path": "/data/reports/1.txt"}, policy.Deny},
		{"read_*", map[string]any{"path": "/data/reports/1.txt"}, policy.Deny},
	} {
		if got := decideMCP(snap, tc.tool, tc.args); got != tc.want {
			t.Errorf("%s %v: %s, want %s\n%s", tc.tool, tc.args, got, tc.want, yaml)
		}
	}
}

func TestLearnTokensAndTasks(t *testing.T) {
	l := NewLearner(Options{})
	l.AddToken(tm, agentA, "mail-api", []string{"mail.read"})
	l.AddToken(tm.Add(time.Second), agentA, "mail-api", []string{"mail.read", "mail.send"})
	l.AddToken(tm.Add(2*time.Second), agentA, "crm*", nil)
	l.AddTask(tm, agentA, "task_1", "triage")
	l.CloseTask("task_1", 7)
	l.AddTask(tm, agentA, "task_2", "triage")
	l.CloseTask("task_2", 3)
	l.AddTask(tm, agentA, "task_3", "report [weekly]")
	snap, yaml := compileLearned(t, l)
	tok := func(aud string, scopes ...string) policy.Effect {
		return snap.Decide(&policy.Request{Kind: policy.KindToken, Subject: policy.Subject{SpiffeID: agentA},
			Token: policy.TokenRequest{Audience: aud, Scopes: scopes}, Now: tm}).Effect
	}
	task := func(purpose string) policy.Decision {
		return snap.Decide(&policy.Request{Kind: policy.KindTask, Subject: policy.Subject{SpiffeID: agentA},
			Task: policy.Task{Purpose: purpose}, Now: tm})
	}
	for _, c := range []struct {
		got, want policy.Effect
		what      string
	}{
		{tok("mail-api", "mail.read"), policy.Allow, "observed"},
		{tok("mail-api", "mail.send", "mail.read"), policy.Allow, "observed"},
		{tok("mail-api", "mail.admin"), policy.Deny, "other scope"},
		{tok("mail-apis", "mail.read"), policy.Deny, "other audience"},
		{tok("crm*"), policy.Allow, "literal star audience"},
		{tok("crmx"), policy.Deny, "star is literal"},
		{tok("crm*", "x"), policy.Deny, "no scopes were asked for"},
		{task("triage").Effect, policy.Allow, "task"},
		{task("report [weekly]").Effect, policy.Allow, "glob characters literal"},
		{task("report w").Effect, policy.Deny, "glob characters literal"},
		{task("other").Effect, policy.Deny, "other purpose"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s\n%s", c.what, c.got, c.want, yaml)
		}
	}
	if d := task("triage"); d.Obligations.Budget != 14 {
		t.Errorf("budget %d, want 14 (7 calls x headroom 2)\n%s", d.Obligations.Budget, yaml)
	}
}

func TestCollapse(t *testing.T) {
	learnUsers := func(collapse int) (*policy.Snapshot, string) {
		l := NewLearner(Options{Collapse: collapse, NoRate: true})
		for i := range 25 {
			l.Add(&Access{Time: tm, Allowed: true, SpiffeID: agentA, Service: "hr", Method: "GET", Path: "/users/user" + strconv.Itoa(i) + "/profile"})
		}
		l.Add(&Access{Time: tm, Allowed: true, SpiffeID: agentA, Service: "hr", Method: "POST", Path: "/users/user1/profile"})
		return compileLearned(t, l)
	}
	get := func(snap *policy.Snapshot, method, path string) policy.Effect {
		return snap.Decide(&policy.Request{Kind: policy.KindHTTP, Subject: policy.Subject{SpiffeID: agentA},
			HTTP: policy.HTTPRequest{Service: "hr", Method: method, Path: path}, Now: tm}).Effect
	}
	snap, yaml := learnUsers(20)
	if !strings.Contains(yaml, `--collapse 20: 24 paths of service hr (GET) merged into /users/*/profile`) {
		t.Fatalf("no collapse:\n%s", yaml)
	}
	for path, want := range map[string]policy.Effect{
		"/users/someone/profile": policy.Allow, "/users/someone/profile/x": policy.Deny, "/users/a/b/profile": policy.Deny, "/users/x/avatar": policy.Deny,
	} {
		if got := get(snap, "GET", path); got != want {
			t.Errorf("GET %s: %s, want %s\n%s", path, got, want, yaml)
		}
	}
	if get(snap, "POST", "/users/someone/profile") != policy.Deny || get(snap, "POST", "/users/user1/profile") != policy.Allow {
		t.Errorf("POST was collapsed with GET:\n%s", yaml)
	}
	snap, yaml = learnUsers(0)
	if get(snap, "GET", "/users/someone/profile") != policy.Deny || strings.Count(yaml, "- name:") != 25 {
		t.Errorf("collapsed without --collapse:\n%s", yaml)
	}
}

// FuzzLearnHostile learns from calls with crafted tool names, argument
// names and values and paths (glob characters, huge values, unicode,
// control characters): the policy must compile, allow every observed
// call, and allow nothing of a kind never observed.
func FuzzLearnHostile(f *testing.F) {
	f.Add("read_*", "path", "/data/*/x", "/data/[a]/y", "/a/**/b?", "\\*")
	f.Add("t\u2028ool", "k\"ey", strings.Repeat("v", 300), "é", "/\x00/x", "zz")
	f.Add("[", "", "..", "/../..", "/%2e%2e/x", "\\")
	f.Fuzz(func(t *testing.T, tool, key, v1, v2, path, probe string) {
		if tool == "" {
			return
		}
		l := NewLearner(Options{NoRate: true, Generalizer: DefaultGeneralizer()})
		calls := []map[string]any{{key: v1}, {key: v2}}
		for i, args := range calls {
			l.Add(mcpCall(i, tool, args))
		}
		http := &Access{Time: tm, Allowed: true, SpiffeID: agentA, Service: "svc", Method: "GET", Path: "/" + path}
		l.Add(http)
		snap, yaml := compileLearned(t, l)
		// Every observed call is allowed (those the learner took: valid UTF-8).
		for _, args := range calls {
			a := mcpCall(0, tool, args)
			q := a.Request()
			if q.MCP.Args == nil {
				continue // not JSON-encodable as a string
			}
			if d := snap.Decide(q); d.Effect != policy.Allow && strings.Contains(yaml, "tools:") {
				t.Fatalf("observed call %s %v denied: %v\n%s", tool, args, d.Reasons, yaml)
			}
		}
		// A tool never observed, an argument name never observed, and a
		// value longer than any observed are denied.
		if decideMCP(snap, tool+"x", map[string]any{key: v1}) != policy.Deny {
			t.Fatalf("another tool allowed\n%s", yaml)
		}
		if decideMCP(snap, tool, map[string]any{key: v1, key + "x": "1"}) != policy.Deny {
			t.Fatalf("another argument allowed\n%s", yaml)
		}
		long := strings.Repeat("x", max(len(v1), len(v2))+1) + probe
		if decideMCP(snap, tool, map[string]any{key: long}) != policy.Deny {
			t.Fatalf("a longer value allowed\n%s", yaml)
		}
		if probe != v1 && probe != v2 && len(v1) <= 128 && len(v2) <= 128 {
			if decideMCP(snap, tool, map[string]any{key: probe}) != policy.Deny {
				t.Fatalf("unobserved value %q allowed\n%s", probe, yaml)
			}
		}
		// HTTP: one more segment is never allowed.
		q := http.Request()
		q.HTTP.Path = strings.TrimSuffix(http.Path, "/") + "/extra"
		if snap.Decide(q).Effect != policy.Deny {
			t.Fatalf("GET %s allowed after learning GET %s\n%s", q.HTTP.Path, http.Path, yaml)
		}
	})
}
