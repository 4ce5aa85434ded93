package learn_test

import (
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/learn"
)

// tokenTaskLog is a scripted log of token exchanges and tasks, with the
// details the token issuer and the task service record.
func tokenTaskLog() []audit.Event {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	open := func(m int, id, purpose, auds, scope string, extra map[string]string) audit.Event {
		d := map[string]string{"purpose": purpose, "scope": scope, "state": "open", "subject_labels": "team=support"}
		for k, v := range extra {
			d[k] = v
		}
		return audit.Event{Time: at(m), Type: audit.TaskOpened, SpiffeID: mail, Instance: "inst_1", Task: id, Target: auds,
			Action: "open_task", Decision: "allow", Policy: "old@1", Rule: "tasks", Details: d}
	}
	mint := func(m int, id, aud, scope, purpose string) audit.Event {
		return audit.Event{Time: at(m), Type: audit.TokenMinted, SpiffeID: mail, Instance: "inst_1", Task: id, Target: aud,
			Action: "token_exchange", Decision: "allow", Policy: "old@1", Rule: "tokens", Credential: "at_1",
			Details: map[string]string{"scope": scope, "task_purpose": purpose, "task_calls": "0", "subject_labels": "team=support"}}
	}
	return []audit.Event{
		open(0, "task_1", "triage", "mail-api crm", "mail.read", map[string]string{"budget_requested": "50"}),
		mint(1, "task_1", "mail-api", "mail.read", "triage"),
		mint(2, "task_1", "crm", "mail.read", "triage"),
		// Denied by policy (recorded effect), and refused before policy
		// (no policy_effect: not re-decided).
		{Time: at(3), Type: audit.TokenDenied, SpiffeID: mail, Task: "task_1", Target: "bank", Action: "token_exchange", Decision: "deny",
			Reason: "access_denied: policy denied the token", Details: map[string]string{"scope": "mail.read", "policy_effect": "deny",
				"task_purpose": "triage", "task_calls": "2", "subject_labels": "team=support"}},
		{Time: at(3), Type: audit.TokenDenied, SpiffeID: mail, Task: "task_nope", Target: "mail-api", Action: "token_exchange", Decision: "deny",
			Reason: "invalid_grant: task does not exist", Details: map[string]string{"scope": ""}},
		{Time: at(4), Type: audit.TaskClosed, SpiffeID: mail, Task: "task_1", Action: "close_task", Decision: "closed",
			Details: map[string]string{"calls": "7"}},
		open(5, "task_2", "cleanup", "mail-api", "mail.read", nil),
		// The approval that opens a pending task is not a decision of its own.
		{Time: at(6), Type: audit.TaskOpened, SpiffeID: mail, Task: "task_3", Action: "open_task", Decision: "allow", Reason: "approved",
			Details: map[string]string{"approval": "apr_1", "state": "open"}},
	}
}

// The candidate: triage tasks only, with a budget of 4 calls, and tokens
// for mail-api (read) and bank, for callers labelled team=support.
const tokenTaskCandidate = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: mail}
spec:
  subjects: ["label:team=support"]
  rules:
    - name: triage
      effect: allow
      targets: [{task: {purposes: [triage]}}]
      budget: 4
    - name: tokens
      effect: allow
      targets: [{token: {audiences: [mail-api, bank], scopes: [mail.read]}}]
`

func TestReplayTokensAndTasks(t *testing.T) {
	rep := replayCandidate(t, newEventLog(t, tokenTaskLog()), tokenTaskCandidate)
	if rep.Tokens != 3 || rep.Tasks != 2 || rep.Skipped != 1 || rep.Accesses != 0 {
		t.Errorf("tokens %d tasks %d skipped %d accesses %d, want 3 2 1 0", rep.Tokens, rep.Tasks, rep.Skipped, rep.Accesses)
	}
	type row struct{ cat, rule, what string }
	var got []row
	for _, c := range rep.Changes {
		for _, e := range c.Examples {
			what := e.Kind + " " + e.Task + " " + e.Purpose + " " + e.Audience
			if c.Category == learn.BudgetExceeded {
				what += " " + e.Reason
			}
			got = append(got, row{c.Category, c.Policy + "/" + c.Rule, what})
		}
	}
	want := []row{
		// task_1 opened for mail-api and crm: crm is not allowed now; its
		// crm token neither; task_2's purpose is not allowed.
		{learn.NewlyDenied, "/", "task task_1 triage mail-api crm"},
		{learn.NewlyDenied, "/", "token task_1 triage crm"},
		{learn.NewlyDenied, "/", "task task_2 cleanup mail-api"},
		{learn.NewlyAllowed, "mail@1/tokens", "token task_1 triage bank"},
	}
	if len(got) != len(want) {
		t.Fatalf("changes = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// A task the candidate allows, with a budget below the calls it made.
func TestReplayTaskBudget(t *testing.T) {
	evs := tokenTaskLog()
	evs[0].Target = "mail-api" // allowed now, so its budget counts
	rep := replayCandidate(t, newEventLog(t, evs), tokenTaskCandidate)
	if n := rep.Count(learn.BudgetExceeded); n != 1 {
		t.Fatalf("budget_newly_exceeded = %d, want 1: %+v", n, rep.Changes)
	}
	for _, c := range rep.Changes {
		if c.Category != learn.BudgetExceeded {
			continue
		}
		e := c.Examples[0]
		if c.Rule != "triage" || e.Task != "task_1" || e.Calls != 7 || e.Budget != 4 || !strings.Contains(e.Reason, "3 calls beyond the budget") {
			t.Errorf("budget change = %+v", c)
		}
	}
	// Without the caller's recorded labels the candidate covers nobody.
	for i := range evs {
		delete(evs[i].Details, "subject_labels")
	}
	rep = replayCandidate(t, newEventLog(t, evs), tokenTaskCandidate)
	if n := rep.Count(learn.NewlyDenied); n != 4 {
		t.Errorf("without labels: newly denied = %d, want 4 (both tasks, both minted tokens): %+v", n, rep.Changes)
	}
}
