package approval_test

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
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

func newService(t *testing.T) (*approval.Service, *audittest.Recorder, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &audittest.Recorder{}
	s, err := approval.New(context.Background(), approval.Config{Store: db, Emitter: rec})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec, db
}

var spec = approval.Spec{Kind: "task", SpiffeID: "spiffe://writ.local/agent/a", Task: "task_1", Target: "task: pay invoices",
	Policy: "p@1", Rule: "needs-human", Approvers: []string{"group:finance"}}

func TestDecideWakesWaiter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		approve bool
		want    string
		event   audit.Type
	}{
		{"approve", true, store.ApprovalApproved, audit.ApprovalGranted},
		{"deny", false, store.ApprovalDenied, audit.ApprovalDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rec, _ := newService(t)
			ctx := context.Background()
			var hooked []string
			s.OnDecide(func(_ context.Context, a store.Approval) { hooked = append(hooked, a.State) })
			a, err := s.Request(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan store.Approval, 1)
			go func() {
				w, err := s.Wait(ctx, a.ID)
				if err != nil {
					t.Error(err)
				}
				got <- w
			}()
			time.Sleep(20 * time.Millisecond)
			if _, err := s.Decide(ctx, a.ID, tc.approve, "admin:admin", "ok"); err != nil {
				t.Fatal(err)
			}
			select {
			case w := <-got:
				if w.State != tc.want || w.DecidedBy != "admin:admin" {
					t.Errorf("Wait = %+v, want %s by admin:admin", w, tc.want)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Wait did not return after the decision")
			}
			if _, err := s.Decide(ctx, a.ID, !tc.approve, "admin:other", ""); !errors.Is(err, store.ErrPrecondition) {
				t.Errorf("second decision: %v, want ErrPrecondition", err)
			}
			if len(hooked) != 1 || hooked[0] != tc.want {
				t.Errorf("hooks saw %v, want [%s]", hooked, tc.want)
			}
			if evs := rec.Types(); len(evs) != 2 || evs[0] != audit.ApprovalRequested || evs[1] != tc.event {
				t.Errorf("events %v, want requested then %s", evs, tc.event)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	s, rec, _ := newService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	sp := spec
	sp.Timeout = 50 * time.Millisecond
	a, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Wait(ctx, a.ID)
	if err != nil || w.State != store.ApprovalExpired {
		t.Fatalf("Wait = %+v, %v; want expired", w, err)
	}
	if _, err := s.Decide(ctx, a.ID, true, "admin:late", ""); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("approving after expiry: %v, want ErrPrecondition", err)
	}
	if evs := rec.Types(); evs[len(evs)-1] != audit.ApprovalExpired {
		t.Errorf("events %v, want approval.expired last", evs)
	}
	pending, _ := s.List(ctx, store.ApprovalPending)
	if len(pending) != 0 {
		t.Errorf("pending after expiry: %+v", pending)
	}
	if _, err := s.List(ctx, "bogus"); err == nil {
		t.Error("List(bogus) succeeded")
	}
}

func TestPendingSurvivesRestart(t *testing.T) {
	s, _, db := newService(t)
	ctx := context.Background()
	sp := spec
	sp.Timeout = 30 * time.Millisecond
	a, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := approval.New(ctx, approval.Config{Store: db, Emitter: audit.Discard})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s2.Wait(ctx, a.ID)
	if err != nil || w.State != store.ApprovalExpired {
		t.Errorf("after restart Wait = %+v, %v; want expired at the stored deadline", w, err)
	}
}

// TestSelfApprovalRefused: the identity that asked — the workload, or the
// user its task acts for — cannot decide its own request, and a workload
// may decide only a request that names it an approver.
func TestSelfApprovalRefused(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	sp := spec
	sp.OnBehalfOf = "alice"
	sp.Approvers = []string{"group:finance", "spiffe://writ.local/supervisor"}
	for _, tc := range []struct {
		actor string
		want  error
	}{
		{"spiffe://writ.local/agent/a", approval.ErrSelfApproval},
		{"user:alice", approval.ErrSelfApproval},
		{"admin:alice", approval.ErrSelfApproval},
		{"spiffe://writ.local/agent/other", approval.ErrNotApprover},
		{"", approval.ErrNotApprover},
	} {
		a, err := s.Request(ctx, sp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Decide(ctx, a.ID, true, tc.actor, ""); !errors.Is(err, tc.want) {
			t.Errorf("decision by %q: %v, want %v", tc.actor, err, tc.want)
		}
		if got, _ := s.Get(ctx, a.ID); got.State != store.ApprovalPending {
			t.Errorf("after the refused decision by %q the request is %s", tc.actor, got.State)
		}
	}
	for _, actor := range []string{"spiffe://writ.local/supervisor", "admin:bob"} {
		a, err := s.Request(ctx, sp)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Decide(ctx, a.ID, true, actor, ""); err != nil || got.State != store.ApprovalApproved || got.DecidedBy != actor {
			t.Errorf("decision by %s: %+v, %v", actor, got, err)
		}
	}
}

// TestUseBoundApproval: an approval bound to a call permits that call
// once, for the identity that asked, before it expires.
func TestUseBoundApproval(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	rec := &audittest.Recorder{}
	s, err := approval.New(context.Background(), approval.Config{Store: db, Emitter: rec, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const bind = "MCPServer/mail tools/call send sha256:aaaa"
	sp := spec
	sp.Kind, sp.Binding, sp.Timeout = "mcp", bind, time.Hour
	a, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Use(ctx, a.ID, bind, sp.SpiffeID); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("using a pending approval: %v", err)
	}
	if _, err := s.Decide(ctx, a.ID, true, "admin:bob", ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, binding, caller, want string }{
		{"other arguments", "MCPServer/mail tools/call send sha256:bbbb", sp.SpiffeID, "was granted for " + bind},
		{"other tool", "MCPServer/mail tools/call delete sha256:aaaa", sp.SpiffeID, "was granted for"},
		{"other caller", bind, "spiffe://writ.local/agent/b", "another identity"},
		{"unknown approval", bind, sp.SpiffeID, "does not exist"},
	} {
		id := a.ID
		if tc.name == "unknown approval" {
			id = "apr_nope"
		}
		if _, err := s.Use(ctx, id, tc.binding, tc.caller); !errors.Is(err, approval.ErrNotUsable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrNotUsable saying %q", tc.name, err, tc.want)
		}
	}
	got, err := s.Use(ctx, a.ID, bind, sp.SpiffeID)
	if err != nil || got.UsedAt.IsZero() {
		t.Fatalf("Use = %+v, %v", got, err)
	}
	if _, err := s.Use(ctx, a.ID, bind, sp.SpiffeID); !errors.Is(err, approval.ErrNotUsable) || !strings.Contains(err.Error(), "used already") {
		t.Errorf("second use: %v", err)
	}
	if rec.Count(audit.ApprovalUsed) != 1 {
		t.Errorf("approval.used events: %d, want 1", rec.Count(audit.ApprovalUsed))
	}

	// Expiry: approved but not used before the deadline.
	b, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(ctx, b.ID, true, "admin:bob", ""); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.Use(ctx, b.ID, bind, sp.SpiffeID); !errors.Is(err, approval.ErrNotUsable) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("using an expired approval: %v", err)
	}
}

// TestHumanApprovers: a human cannot decide a request made on their own
// behalf, nor one whose policy names other humans; a named human can.
func TestHumanApprovers(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	sp := spec
	sp.OnBehalfOf, sp.Approvers = "alice", []string{"user:alice", "user:bob"}
	a, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(ctx, a.ID, true, "user:alice", ""); !errors.Is(err, approval.ErrSelfApproval) {
		t.Errorf("alice approves her own request: %v, want ErrSelfApproval", err)
	}
	if _, err := s.Decide(ctx, a.ID, true, "user:carol", ""); !errors.Is(err, approval.ErrNotApprover) {
		t.Errorf("carol, not among the approvers: %v, want ErrNotApprover", err)
	}
	got, err := s.Decide(ctx, a.ID, true, "user:bob", "looks right")
	if err != nil || got.State != store.ApprovalApproved || got.DecidedBy != "user:bob" {
		t.Errorf("bob approves: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		a     store.Approval
		actor string
		want  bool
	}{
		{store.Approval{OnBehalfOf: "alice"}, "user:alice", true},
		{store.Approval{OnBehalfOf: "alice"}, "admin:alice", true},
		{store.Approval{OnBehalfOf: "alice"}, "user:alice2", false},
		{store.Approval{SpiffeID: "spiffe://writ.local/agent/a"}, "spiffe://writ.local/agent/a", true},
		{store.Approval{}, "user:", false},
		{store.Approval{}, "", false},
	} {
		if got := approval.SelfApproval(tc.a, tc.actor); got != tc.want {
			t.Errorf("SelfApproval(%+v, %q) = %v", tc.a, tc.actor, got)
		}
	}
}

// A decision that arrives after the deadline, before anything expired
// the request, expires it and is refused: the caller must not read a nil
// error as "decided".
func TestDecideAfterDeadline(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s, err := approval.New(context.Background(), approval.Config{Store: db, Emitter: &audittest.Recorder{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sp := spec
	sp.Timeout = time.Minute
	a, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute) // the deadline itself
	got, err := s.Decide(ctx, a.ID, true, "admin:late", "")
	if !errors.Is(err, store.ErrPrecondition) || got.State != store.ApprovalExpired {
		t.Fatalf("Decide after the deadline = %s, %v; want expired and ErrPrecondition", got.State, err)
	}
	// And again, now that the store says expired.
	if _, err := s.Decide(ctx, a.ID, false, "admin:late", ""); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("second Decide = %v, want ErrPrecondition", err)
	}
}
