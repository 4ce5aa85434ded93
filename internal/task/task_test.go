package task_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"github.com/writ-dev/writ/internal/task"
)

const policyYAML = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata:
  name: drafter
spec:
  subjects: [spiffe://writ.local/agent/drafter]
  rules:
    - name: tasks
      effect: allow
      targets:
        - task: {purposes: ["reply*"]}
    - name: payments
      effect: allow
      targets:
        - task: {purposes: ["pay*"]}
      approval: {approvers: [group:finance], timeout: 1m}
    - name: mail-token
      effect: allow
      targets:
        - token: {audiences: [mail-api], scopes: [mail.read, mail.draft]}
      max_ttl: 2m
      budget: 3
`

type fixture struct {
	svc *task.Service
	apr *approval.Service
	rev *revoke.List
	rec *audittest.Recorder
}

func newFixture(t *testing.T, withPolicy bool) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	snap := policy.Empty()
	if withPolicy {
		docs, err := resource.Parse("policy.yaml", []byte(policyYAML))
		if err != nil {
			t.Fatal(err)
		}
		if snap, err = policy.Compile(docs, nil); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{rec: &audittest.Recorder{}}
	f.rev, err = revoke.New(ctx, revoke.Config{Store: db, Emitter: f.rec})
	if err != nil {
		t.Fatal(err)
	}
	f.apr, err = approval.New(ctx, approval.Config{Store: db, Emitter: f.rec})
	if err != nil {
		t.Fatal(err)
	}
	f.svc, err = task.New(ctx, task.Config{Store: db, Policy: policy.NewEngine(policy.Config{}, snap), Approvals: f.apr,
		Revoke: f.rev, Emitter: f.rec})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var drafter = task.Subject{SpiffeID: "spiffe://writ.local/agent/drafter", Instance: "inst_1"}

func TestOpenDecisions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    bool
		req       task.OpenRequest
		wantState string
		wantErr   bool
	}{
		{"no policy: default deny", false, task.OpenRequest{Purpose: "reply to customers", Audiences: []string{"mail-api"}}, store.TaskDenied, true},
		{"allowed", true, task.OpenRequest{Purpose: "reply to customers", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}}, store.TaskOpen, false},
		{"purpose not allowed", true, task.OpenRequest{Purpose: "delete everything", Audiences: []string{"mail-api"}}, store.TaskDenied, true},
		{"scope wider than policy", true, task.OpenRequest{Purpose: "reply", Audiences: []string{"mail-api"}, Scopes: []string{"mail.admin"}}, store.TaskDenied, true},
		{"audience not in policy", true, task.OpenRequest{Purpose: "reply", Audiences: []string{"billing-api"}}, store.TaskDenied, true},
		{"needs approval", true, task.OpenRequest{Purpose: "pay invoices", Audiences: []string{"mail-api"}}, store.TaskPending, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.policy)
			got, err := f.svc.Open(context.Background(), drafter, tc.req, "127.0.0.1")
			var de *task.DeniedError
			if tc.wantErr != errors.As(err, &de) {
				t.Fatalf("Open error = %v, want denied %v", err, tc.wantErr)
			}
			if got.State != tc.wantState {
				t.Errorf("state = %q, want %q (reason %s)", got.State, tc.wantState, got.Reason)
			}
			if tc.wantErr && de.Reason == "" {
				t.Error("denial without a reason")
			}
			if f.rec.Count(audit.TaskOpened) != 1 {
				t.Errorf("want one task.opened event")
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, true)
	for _, r := range []task.OpenRequest{
		{Audiences: []string{"mail-api"}},
		{Purpose: "reply"},
		{Purpose: "reply", Audiences: []string{"has space"}},
		{Purpose: "reply", Audiences: []string{"mail-api"}, Duration: 48 * time.Hour},
		{Purpose: "reply", Audiences: []string{"mail-api"}, Budget: -1},
		{Purpose: "reply", Audiences: []string{"mail-api"}, Scopes: []string{`a"b`}},
	} {
		if _, err := f.svc.Open(context.Background(), drafter, r, ""); !errors.Is(err, task.ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", r, err)
		}
	}
	// Bound to an instance, but the opener has none (an operator naming
	// no instance).
	noInstance := task.Subject{SpiffeID: drafter.SpiffeID}
	r := task.OpenRequest{Purpose: "reply", Audiences: []string{"mail-api"}, BindInstance: true}
	if _, err := f.svc.Open(context.Background(), noInstance, r, ""); !errors.Is(err, task.ErrInvalid) {
		t.Errorf("Open bound without an instance = %v, want ErrInvalid", err)
	}
	if tk, err := f.svc.Open(context.Background(), drafter, r, ""); err != nil || !tk.BindInstance || tk.Instance != "inst_1" {
		t.Errorf("Open bound = %+v, %v; want bound to inst_1", tk, err)
	}
}

func TestBudgetFromPolicy(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	tk, err := f.svc.Open(ctx, drafter, task.OpenRequest{Purpose: "reply", Audiences: []string{"mail-api"}, Budget: 10}, "")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Budget != 3 {
		t.Fatalf("budget %d, want the policy's 3", tk.Budget)
	}
	for i := 0; i < 3; i++ {
		if _, err := f.svc.Charge(ctx, tk.ID); err != nil {
			t.Fatalf("charge %d: %v", i, err)
		}
	}
	if _, err := f.svc.Charge(ctx, tk.ID); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("fourth charge: %v, want ErrPrecondition", err)
	}
}

func TestApprovalOpensTask(t *testing.T) {
	for _, approve := range []bool{true, false} {
		f := newFixture(t, true)
		ctx := context.Background()
		tk, err := f.svc.Open(ctx, drafter, task.OpenRequest{Purpose: "pay invoices", Audiences: []string{"mail-api"}}, "")
		if err != nil || tk.Approval == "" {
			t.Fatalf("Open = %+v, %v; want pending with an approval", tk, err)
		}
		if _, err := f.svc.Charge(ctx, tk.ID); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("charging a pending task: %v, want ErrPrecondition", err)
		}
		if _, err := f.apr.Decide(ctx, tk.Approval, approve, "admin:admin", ""); err != nil {
			t.Fatal(err)
		}
		got, err := f.svc.Get(ctx, tk.ID)
		want := store.TaskOpen
		if !approve {
			want = store.TaskDenied
		}
		if err != nil || got.State != want {
			t.Errorf("approve=%v: task %+v, %v; want %s", approve, got, err, want)
		}
	}
}

func TestCloseRevokes(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	tk, err := f.svc.Open(ctx, drafter, task.OpenRequest{Purpose: "reply", Audiences: []string{"mail-api"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := f.svc.Charge(ctx, tk.ID); err != nil {
			t.Fatal(err)
		}
	}
	closed, err := f.svc.Close(ctx, tk.ID, "admin:admin", "done")
	if err != nil || closed.State != store.TaskClosed || closed.Calls != 2 {
		t.Fatalf("Close = %+v, %v", closed, err)
	}
	if stored, _ := f.svc.Get(ctx, tk.ID); stored.Calls != 2 {
		t.Errorf("stored calls after close = %d, want the 2 counted in memory", stored.Calls)
	}
	if !f.rev.Revoked(store.RevokeTask, tk.ID) {
		t.Error("closing did not revoke the task's credentials")
	}
	if _, err := f.svc.Close(ctx, tk.ID, "admin:admin", "again"); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("closing twice: %v, want ErrPrecondition", err)
	}
	if f.rec.Count(audit.TaskClosed) != 1 || f.rec.Count(audit.Revocation) != 1 {
		t.Error("want one task.closed and one revocation event")
	}
}

func TestRunClosesRevokedAndExpired(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := f.svc.Open(ctx, drafter, task.OpenRequest{Purpose: "reply", Audiences: []string{"mail-api"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	short, err := f.svc.Open(ctx, task.Subject{SpiffeID: drafter.SpiffeID, Instance: "inst_2"},
		task.OpenRequest{Purpose: "reply", Audiences: []string{"mail-api"}, Duration: 50 * time.Millisecond}, "")
	if err != nil {
		t.Fatal(err)
	}
	go f.svc.Run(ctx)
	if _, _, err := f.rev.Revoke(ctx, store.Revocation{Kind: store.RevokeInstance, Value: "inst_1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		ga, _ := f.svc.Get(ctx, a.ID)
		gs, _ := f.svc.Get(ctx, short.ID)
		if ga.State == store.TaskClosed && gs.State == store.TaskClosed {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	ga, _ := f.svc.Get(ctx, a.ID)
	gs, _ := f.svc.Get(ctx, short.ID)
	t.Errorf("revoked task %s (%s), expired task %s (%s); want both closed", ga.State, ga.Reason, gs.State, gs.Reason)
}

// A task belongs to its SPIFFE ID: every instance may use it, unless it
// was opened bound to its instance; the errors say which rule refused.
func TestUsable(t *testing.T) {
	shared := store.Task{ID: "task_s", SpiffeID: "spiffe://writ.local/a", Instance: "inst_1"}
	bound := shared
	bound.ID, bound.BindInstance = "task_b", true
	for _, tc := range []struct {
		name     string
		t        store.Task
		id, inst string
		want     error
	}{
		{"opener", shared, "spiffe://writ.local/a", "inst_1", nil},
		{"another instance", shared, "spiffe://writ.local/a", "inst_2", nil},
		{"no instance", shared, "spiffe://writ.local/a", "", nil},
		{"another identity", shared, "spiffe://writ.local/b", "inst_1", task.ErrOtherIdentity},
		{"bound, opener", bound, "spiffe://writ.local/a", "inst_1", nil},
		{"bound, another instance", bound, "spiffe://writ.local/a", "inst_2", task.ErrOtherInstance},
		{"bound, another identity", bound, "spiffe://writ.local/b", "inst_1", task.ErrOtherIdentity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := task.Usable(tc.t, tc.id, tc.inst)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Usable = %v, want %v", err, tc.want)
			}
		})
	}
	err := task.Usable(bound, "spiffe://writ.local/a", "inst_2")
	if !strings.Contains(err.Error(), "bound to instance inst_1") || !strings.Contains(err.Error(), "caller is instance inst_2") {
		t.Errorf("message %q does not say which instance", err)
	}
	err = task.Usable(shared, "spiffe://writ.local/b", "inst_1")
	if !strings.Contains(err.Error(), "belongs to spiffe://writ.local/a, not to the caller spiffe://writ.local/b") {
		t.Errorf("message %q does not name the identities", err)
	}
}
