package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/servertest"
	"github.com/writ-dev/writ/internal/store"
)

const taskPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata:
  name: mailer
spec:
  subjects: [spiffe://writ.local/agent/mailer]
  rules:
    - name: tasks
      effect: allow
      targets: [{task: {purposes: ["reply*"]}}]
    - name: pay
      effect: allow
      targets: [{task: {purposes: ["pay*"]}}]
      approval: {approvers: [group:finance]}
    - name: tok
      effect: allow
      targets: [{token: {audiences: [mail-api], scopes: [mail.read]}}]
`

// TestTaskCommands drives the task, approval, revoke and token commands
// against a real server, in process.
func TestTaskCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := servertest.Config(dir)
	cfg.Proxy.Listen = "off"
	srv := servertest.Start(t, cfg, nil).Server
	pol := dir + "/p.yaml"
	os.WriteFile(pol, []byte(taskPolicy), 0o600)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(append([]string{"--addr", "http://" + srv.HTTPAddr(), "--data-dir", dir}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	must := func(args ...string) string {
		t.Helper()
		code, out, errs := run(args...)
		if code != 0 {
			t.Fatalf("writ %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out
	}
	must("apply", "-f", pol)
	const as = "spiffe://writ.local/agent/mailer"

	out := must("task", "open", "--as", as, "--purpose", "reply to x", "--audience", "mail-api", "--scope", "mail.read")
	if !strings.Contains(out, "state:      open") || !strings.Contains(out, "mailer@1 tasks") {
		t.Errorf("task open output:\n%s", out)
	}
	code, _, errs := run("task", "open", "--as", as, "--purpose", "delete all", "--audience", "mail-api")
	if code != 1 || !strings.Contains(errs, "denied") || !strings.Contains(errs, "default deny") {
		t.Errorf("denied open: exit %d, stderr %q", code, errs)
	}
	code, _, errs = run("task", "open", "--purpose", "reply", "--audience", "mail-api")
	if code != 1 || !strings.Contains(errs, "say who the task is for") {
		t.Errorf("open without identity: exit %d, stderr %q", code, errs)
	}

	var pending store.Task
	json.Unmarshal([]byte(must("task", "open", "--as", as, "--purpose", "pay bills", "--audience", "mail-api", "-o", "json")), &pending)
	if pending.State != store.TaskPending || pending.Approval == "" {
		t.Fatalf("task needing approval: %+v", pending)
	}
	if out := must("approval", "list"); !strings.Contains(out, pending.Approval) || !strings.Contains(out, "group:finance") {
		t.Errorf("approval list:\n%s", out)
	}
	if out := must("approval", "approve", pending.Approval, "--comment", "ok"); !strings.Contains(out, "approved") {
		t.Errorf("approval approve: %q", out)
	}
	if out := must("task", "show", pending.ID); !strings.Contains(out, "state:      open") {
		t.Errorf("approved task:\n%s", out)
	}
	if code, _, errs := run("approval", "deny", pending.Approval); code != 1 || !strings.Contains(errs, "already approved") {
		t.Errorf("deciding twice: exit %d, %q", code, errs)
	}

	var list []store.Task
	json.Unmarshal([]byte(must("task", "list", "--state", "open", "-o", "json")), &list)
	if len(list) != 2 {
		t.Errorf("open tasks: %d, want 2", len(list))
	}
	if out := must("revoke", "--task", pending.ID, "--reason", "test"); !strings.Contains(out, "revoked task "+pending.ID) {
		t.Errorf("revoke: %q", out)
	}
	if out := must("revoke", "--list"); !strings.Contains(out, pending.ID) || !strings.Contains(out, "admin:admin") {
		t.Errorf("revoke --list:\n%s", out)
	}
	if code, _, errs := run("revoke", "--task", "a", "--instance", "b"); code != 1 || !strings.Contains(errs, "exactly one") {
		t.Errorf("revoke with two targets: exit %d, %q", code, errs)
	}
	if code, out, _ := run("token", "introspect", "not-a-token"); code != 1 || !strings.Contains(out, `"active": false`) {
		t.Errorf("introspect garbage: exit %d, %q", code, out)
	}
	closed := must("task", "close", list[len(list)-1].ID, "--reason", "done")
	if !strings.Contains(closed, "state:      closed") {
		t.Errorf("task close:\n%s", closed)
	}
}
