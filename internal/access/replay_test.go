package access

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/task"
)

// TestEventCarriesWhatReplayNeeds: an access event records what its
// decision saw beyond the call (the caller's labels, the target's flow
// labels, the task's purpose and prior calls), so that `writ policy
// replay` can decide it again (#16).
func TestEventCarriesWhatReplayNeeds(t *testing.T) {
	ctx := context.Background()
	en := newEnv(t, nil)
	tk, err := en.tasks.Open(ctx, task.Subject{SpiffeID: agent, Instance: "inst_1"},
		task.OpenRequest{Purpose: "triage mail", Audiences: []string{"up"}, Duration: time.Hour}, "")
	if err != nil {
		t.Fatal(err)
	}
	target := *upTarget
	target.Labels = []string{"private_data", "public_sink"}
	for range 2 {
		req := request("GET", "/items/1")
		req.Target, req.Task = &target, tk.ID
		req.Caller.Labels = map[string]string{"team": "mail", "env": "prod&test"}
		out, err := en.e.Enforce(ctx, req)
		if err != nil || out.Effect != Allow {
			t.Fatalf("Enforce = %+v, %v", out, err)
		}
		en.e.Record(ctx, req, &out, Result{Status: 200})
	}
	en.e.Flush()
	got := en.ev.OfType(audit.AccessAllowed)
	if len(got) != 2 {
		t.Fatalf("%d access.allowed events, want 2", len(got))
	}
	for i, e := range got {
		d := e.Details
		if d["subject_labels"] != "env=prod%26test&team=mail" || d["target_labels"] != "private_data,public_sink" ||
			d["task_purpose"] != "triage mail" || d["task_calls"] != []string{"0", "1"}[i] {
			t.Errorf("event %d details %v", i, d)
		}
	}
	// A refusal before the decision (no caller labels decided on) adds none.
	req := request("DELETE", "/items/1")
	out, _ := en.e.Enforce(ctx, req)
	en.e.Record(ctx, req, &out, Result{})
	en.e.Flush()
	if den := en.ev.OfType(audit.AccessDenied); len(den) != 1 || den[0].Details["task_calls"] != "" {
		t.Errorf("denied events %+v", den)
	}
}
