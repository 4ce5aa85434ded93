package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// RunTasks runs the conformance tests of the Tasks, Revocations and
// Approvals aggregates.
func RunTasks(t *testing.T, open Opener) {
	t.Run("Tasks", func(t *testing.T) { testTasks(t, open(t)) })
	t.Run("TaskBudget", func(t *testing.T) { testTaskBudget(t, open(t)) })
	t.Run("TaskBinding", func(t *testing.T) { testTaskBinding(t, open(t)) })
	t.Run("Revocations", func(t *testing.T) { testRevocations(t, open(t)) })
	t.Run("Approvals", func(t *testing.T) { testApprovals(t, open(t)) })
	t.Run("ApprovalUse", func(t *testing.T) { testApprovalUse(t, open(t)) })
	t.Run("TaskFlows", func(t *testing.T) { testTaskFlows(t, open(t)) })
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleTask(id string) store.Task {
	return store.Task{
		ID: id, SpiffeID: "spiffe://writ.local/agent/drafter", Instance: "inst_1", Purpose: "reply to customers",
		OnBehalfOf: "alice", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read", "mail.draft"},
		State: store.TaskOpen, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
}

func testTasks(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := sampleTask("task_a")
	if _, err := s.CreateTask(ctx, in); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if _, err := s.CreateTask(ctx, in); !errors.Is(err, store.ErrExists) {
		t.Errorf("second CreateTask: err %v, want ErrExists", err)
	}
	got, err := s.GetTask(ctx, "task_a")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if got.SpiffeID != in.SpiffeID || got.Purpose != in.Purpose || len(got.Scopes) != 2 || got.Scopes[1] != "mail.draft" ||
		got.Audiences[0] != "mail-api" || !got.ExpiresAt.Equal(in.ExpiresAt) || got.State != store.TaskOpen {
		t.Errorf("GetTask = %+v, want fields of %+v", got, in)
	}
	if _, err := s.GetTask(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTask(missing): err %v, want ErrNotFound", err)
	}
	if got.Instance != "inst_1" || got.BindInstance {
		t.Errorf("GetTask: instance %q bind %v, want inst_1 recorded, not bound", got.Instance, got.BindInstance)
	}
	other := sampleTask("task_b")
	other.SpiffeID, other.CreatedAt, other.ExpiresAt = "spiffe://writ.local/agent/other", t0.Add(time.Minute), t0.Add(2*time.Minute)
	if _, err := s.CreateTask(ctx, other); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    store.TaskFilter
		want []string
	}{
		{"all newest first", store.TaskFilter{}, []string{"task_b", "task_a"}},
		{"by subject", store.TaskFilter{SpiffeID: in.SpiffeID}, []string{"task_a"}},
		{"by state", store.TaskFilter{State: store.TaskClosed}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListTasks(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, x := range list {
				ids = append(ids, x.ID)
			}
			if len(ids) != len(tc.want) || (len(ids) > 0 && ids[0] != tc.want[0]) {
				t.Errorf("ListTasks(%+v) = %v, want %v", tc.f, ids, tc.want)
			}
		})
	}
	exp, err := s.ExpiredTasks(ctx, t0.Add(2*time.Minute))
	if err != nil || len(exp) != 1 || exp[0].ID != "task_b" {
		t.Errorf("ExpiredTasks = %v, %v; want task_b only", exp, err)
	}
	closed, err := s.TransitionTask(ctx, "task_a", []string{store.TaskOpen, store.TaskPending}, store.TaskClosed, "done", t0.Add(3*time.Minute))
	if err != nil {
		t.Fatalf("TransitionTask: %v", err)
	}
	if closed.State != store.TaskClosed || closed.Reason != "done" || !closed.ClosedAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("closed task = %+v", closed)
	}
	again, err := s.TransitionTask(ctx, "task_a", []string{store.TaskOpen}, store.TaskClosed, "twice", t0)
	if !errors.Is(err, store.ErrPrecondition) || again.State != store.TaskClosed || again.Reason != "done" {
		t.Errorf("closing a closed task: %+v, %v; want ErrPrecondition and the first close kept", again, err)
	}
	if _, err := s.TransitionTask(ctx, "nope", []string{store.TaskOpen}, store.TaskClosed, "", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TransitionTask(missing): err %v, want ErrNotFound", err)
	}
}

func testTaskBudget(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := sampleTask("task_budget")
	in.Budget = 2
	if _, err := s.CreateTask(ctx, in); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		got, err := s.ChargeTask(ctx, in.ID, t0)
		if err != nil || got.Calls != int64(i) {
			t.Fatalf("ChargeTask %d: %+v, %v", i, got, err)
		}
	}
	if got, err := s.ChargeTask(ctx, in.ID, t0); !errors.Is(err, store.ErrPrecondition) || got.Calls != 2 {
		t.Errorf("ChargeTask over budget: calls %d, err %v; want 2 and ErrPrecondition", got.Calls, err)
	}
	nb := sampleTask("task_nobudget")
	if _, err := s.CreateTask(ctx, nb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChargeTask(ctx, nb.ID, t0.Add(time.Hour)); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("ChargeTask at expiry: err %v, want ErrPrecondition", err)
	}
	if _, err := s.ChargeTask(ctx, nb.ID, t0); err != nil {
		t.Errorf("ChargeTask without budget: %v", err)
	}
	for _, n := range []int64{7, 3} { // never lowered
		if err := s.RecordTaskCalls(ctx, nb.ID, n); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.GetTask(ctx, nb.ID); got.Calls != 7 {
		t.Errorf("calls after RecordTaskCalls(7), (3) = %d, want 7", got.Calls)
	}
	if err := s.RecordTaskCalls(ctx, "nope", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordTaskCalls(missing): %v, want ErrNotFound", err)
	}
}

func testRevocations(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := store.Revocation{Kind: store.RevokeInstance, Value: "inst_1", Reason: "compromised", Actor: "admin:admin", CreatedAt: t0}
	got, created, err := s.PutRevocation(ctx, r)
	if err != nil || !created || got.Value != "inst_1" {
		t.Fatalf("PutRevocation: %+v %v %v", got, created, err)
	}
	again := r
	again.Reason, again.CreatedAt = "second", t0.Add(time.Minute)
	got, created, err = s.PutRevocation(ctx, again)
	if err != nil || created || got.Reason != "compromised" || !got.CreatedAt.Equal(t0) {
		t.Errorf("second PutRevocation = %+v created %v err %v; want the first record kept", got, created, err)
	}
	tok := store.Revocation{Kind: store.RevokeToken, Value: "jti-1", CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	if _, _, err := s.PutRevocation(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		want int
	}{{"all", time.Time{}, 2}, {"before expiry", t0.Add(time.Minute), 2}, {"after expiry", t0.Add(10 * time.Minute), 1}} {
		list, err := s.ListRevocations(ctx, tc.now)
		if err != nil || len(list) != tc.want {
			t.Errorf("%s: ListRevocations = %d (%v), want %d", tc.name, len(list), err, tc.want)
		}
	}
	n, err := s.PruneRevocations(ctx, t0.Add(10*time.Minute))
	if err != nil || n != 1 {
		t.Errorf("PruneRevocations = %d, %v; want 1", n, err)
	}
	list, _ := s.ListRevocations(ctx, time.Time{})
	if len(list) != 1 || list[0].Kind != store.RevokeInstance {
		t.Errorf("after prune: %+v, want the permanent instance revocation only", list)
	}
	// Lifting deletes the record and returns it; lifting again is not found.
	lifted, err := s.DeleteRevocation(ctx, store.RevokeInstance, "inst_1")
	if err != nil || lifted.Reason != "compromised" || lifted.Actor != "admin:admin" {
		t.Errorf("DeleteRevocation = %+v, %v; want the stored record", lifted, err)
	}
	if _, err := s.DeleteRevocation(ctx, store.RevokeInstance, "inst_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteRevocation: %v, want ErrNotFound", err)
	}
	list, err = s.ListRevocations(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.Kind == store.RevokeInstance && r.Value == "inst_1" {
			t.Error("a lifted revocation is still listed")
		}
	}
}

func testApprovals(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := store.Approval{ID: "apr_1", Kind: "task", SpiffeID: "spiffe://writ.local/agent/drafter", Task: "task_a",
		Target: "task: wire money", Policy: "p@1", Rule: "r", Approvers: []string{"group:security"},
		State: store.ApprovalPending, CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}
	if _, err := s.CreateApproval(ctx, a); err != nil {
		t.Fatalf("CreateApproval: %v", err)
	}
	if _, err := s.CreateApproval(ctx, a); !errors.Is(err, store.ErrExists) {
		t.Errorf("second CreateApproval: err %v, want ErrExists", err)
	}
	b := a
	b.ID, b.CreatedAt = "apr_2", t0.Add(time.Second)
	if _, err := s.CreateApproval(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetApproval(ctx, "apr_1")
	if err != nil || got.Approvers[0] != "group:security" || !got.ExpiresAt.Equal(a.ExpiresAt) || got.Target != a.Target {
		t.Errorf("GetApproval = %+v, %v", got, err)
	}
	d, err := s.DecideApproval(ctx, "apr_1", store.ApprovalApproved, "admin:admin", "ok", t0.Add(time.Minute))
	if err != nil || d.State != store.ApprovalApproved || d.DecidedBy != "admin:admin" || !d.DecidedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("DecideApproval = %+v, %v", d, err)
	}
	if d, err := s.DecideApproval(ctx, "apr_1", store.ApprovalDenied, "mallory", "", t0); !errors.Is(err, store.ErrPrecondition) || d.State != store.ApprovalApproved {
		t.Errorf("deciding twice: %+v, %v; want ErrPrecondition and approved kept", d, err)
	}
	if _, err := s.DecideApproval(ctx, "nope", store.ApprovalDenied, "x", "", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DecideApproval(missing): err %v, want ErrNotFound", err)
	}
	pending, err := s.ListApprovals(ctx, store.ApprovalPending)
	if err != nil || len(pending) != 1 || pending[0].ID != "apr_2" {
		t.Errorf("ListApprovals(pending) = %+v, %v; want apr_2", pending, err)
	}
	all, err := s.ListApprovals(ctx, "")
	if err != nil || len(all) != 2 || all[0].ID != "apr_2" {
		t.Errorf("ListApprovals(all) = %d, %v; want 2 newest first", len(all), err)
	}
}

// testTaskBinding: whether a task is bound to its opening instance is kept.
func testTaskBinding(t *testing.T, s store.Store) {
	ctx := context.Background()
	bound := sampleTask("task_bound")
	bound.BindInstance = true
	if _, err := s.CreateTask(ctx, bound); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetTask(ctx, "task_bound"); err != nil || !got.BindInstance || got.Instance != "inst_1" {
		t.Errorf("GetTask(bound) = %+v, %v; want BindInstance to inst_1", got, err)
	}
}

// testApprovalUse: an approved request bound to a call is used once, and
// only by that call.
func testApprovalUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	bind := "MCPServer/mail tools/call send sha256:aa"
	a := store.Approval{ID: "apr_u", Kind: "mcp", SpiffeID: "spiffe://writ.local/agent/a", Target: "MCPServer/mail tools/call send",
		Binding: bind, State: store.ApprovalPending, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if _, err := s.CreateApproval(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetApproval(ctx, "apr_u"); err != nil || got.Binding != bind || !got.UsedAt.IsZero() {
		t.Fatalf("GetApproval = %+v, %v", got, err)
	}
	if _, err := s.UseApproval(ctx, "apr_u", bind, t0); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("using a pending approval: %v, want ErrPrecondition", err)
	}
	if _, err := s.DecideApproval(ctx, "apr_u", store.ApprovalApproved, "admin:admin", "", t0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UseApproval(ctx, "apr_u", "MCPServer/mail tools/call send sha256:bb", t0); !errors.Is(err, store.ErrPrecondition) || !got.UsedAt.IsZero() {
		t.Errorf("using it for another call: %+v, %v; want ErrPrecondition, unused", got, err)
	}
	got, err := s.UseApproval(ctx, "apr_u", bind, t0.Add(time.Second))
	if err != nil || !got.UsedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("UseApproval = %+v, %v", got, err)
	}
	if got, err := s.UseApproval(ctx, "apr_u", bind, t0.Add(2*time.Second)); !errors.Is(err, store.ErrPrecondition) || !got.UsedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("using it twice: %+v, %v; want ErrPrecondition and the first use kept", got, err)
	}
	if _, err := s.UseApproval(ctx, "nope", bind, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UseApproval(missing): %v, want ErrNotFound", err)
	}
}

// testTaskFlows: the labels a task touched are kept with the access that
// touched each first.
func testTaskFlows(t *testing.T, s store.Store) {
	ctx := context.Background()
	if fs, err := s.TaskFlows(ctx, "task_f"); err != nil || len(fs) != 0 {
		t.Fatalf("TaskFlows(new) = %v, %v", fs, err)
	}
	if err := s.TouchTask(ctx, "task_f", []string{"private_data"}, "MCPServer/fs tools/call read", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchTask(ctx, "task_f", []string{"private_data", "untrusted_content"}, "Service/web GET /", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchTask(ctx, "task_g", []string{"public_sink"}, "x", t0); err != nil {
		t.Fatal(err)
	}
	fs, err := s.TaskFlows(ctx, "task_f")
	if err != nil || len(fs) != 2 || fs[0].Label != "private_data" || fs[0].Via != "MCPServer/fs tools/call read" || !fs[0].At.Equal(t0) ||
		fs[1].Label != "untrusted_content" || fs[1].Via != "Service/web GET /" {
		t.Errorf("TaskFlows = %+v, %v", fs, err)
	}
}
