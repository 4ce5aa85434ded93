package approval_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// groupBook is a membership list that changes between decisions, as an
// admin's `writ user groups` or a new OIDC login changes it.
type groupBook struct {
	mu  sync.Mutex
	m   map[string][]string
	err error
	n   int // lookups
}

func (b *groupBook) groups(_ context.Context, name string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return slices.Clone(b.m[name]), b.err
}

func (b *groupBook) set(name string, groups ...string) {
	b.mu.Lock()
	b.m[name] = groups
	b.mu.Unlock()
}

func newGroupService(t *testing.T) (*approval.Service, *groupBook) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := &groupBook{m: map[string][]string{}}
	s, err := approval.New(context.Background(), approval.Config{Store: db, Emitter: &audittest.Recorder{}, Groups: b.groups})
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

// TestGroupApprovers: a rule naming group:G is decided by a member of G
// as the membership is at the decision, never by the human it acts for,
// and the refusal names the rule's approvers.
func TestGroupApprovers(t *testing.T) {
	s, book := newGroupService(t)
	ctx := context.Background()
	sp := spec
	sp.OnBehalfOf, sp.Approvers = "alice", []string{"group:finance"}
	book.set("alice", "finance")
	book.set("bob", "ops")
	book.set("carol", "finance", "ops")

	a, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	// alice is in finance, but the request is hers.
	if _, err := s.Decide(ctx, a.ID, true, "user:alice", ""); !errors.Is(err, approval.ErrSelfApproval) {
		t.Errorf("alice decides her own request: %v, want ErrSelfApproval", err)
	}
	_, err = s.Decide(ctx, a.ID, true, "user:bob", "")
	if !errors.Is(err, approval.ErrNotApprover) || !strings.Contains(err.Error(), "rule needs-human of p@1 names approvers group:finance") {
		t.Errorf("bob, not in finance: %v, want ErrNotApprover naming the rule's approvers", err)
	}
	// bob joins finance: the decision reads the groups now.
	book.set("bob", "ops", "finance")
	got, err := s.Decide(ctx, a.ID, true, "user:bob", "")
	if err != nil || got.State != store.ApprovalApproved || got.DecidedBy != "user:bob" {
		t.Fatalf("bob, now in finance: %+v, %v", got, err)
	}

	// carol leaves finance before deciding: refused.
	b, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	book.set("carol", "ops")
	if _, err := s.Decide(ctx, b.ID, false, "user:carol", "no"); !errors.Is(err, approval.ErrNotApprover) {
		t.Errorf("carol, out of finance: %v, want ErrNotApprover", err)
	}
	// The admin credential decides anything it did not ask for.
	if got, err := s.Decide(ctx, b.ID, false, "admin:ops", "no"); err != nil || got.State != store.ApprovalDenied {
		t.Errorf("admin denies: %+v, %v", got, err)
	}

	// A lookup that fails refuses the decision (not ErrNotApprover:
	// the server's fault) and leaves the request pending.
	c, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	book.mu.Lock()
	book.err = errors.New("store down")
	book.mu.Unlock()
	if _, err := s.Decide(ctx, c.ID, true, "user:bob", ""); err == nil || errors.Is(err, approval.ErrNotApprover) || !strings.Contains(err.Error(), "store down") {
		t.Errorf("decision while the groups cannot be read: %v", err)
	}
	if got, _ := s.Get(ctx, c.ID); got.State != store.ApprovalPending {
		t.Errorf("after a failed lookup the request is %s", got.State)
	}
	// A human named directly needs no lookup.
	book.mu.Lock()
	n := book.n
	book.mu.Unlock()
	sp.Approvers = []string{"group:finance", "user:dave"}
	d, err := s.Request(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(ctx, d.ID, true, "user:dave", ""); err != nil {
		t.Errorf("dave, named: %v", err)
	}
	if book.n != n {
		t.Errorf("a named approver's groups were looked up")
	}
}

// TestGroupApproversWithoutLookup: with no Config.Groups no human is in a
// group; a rule naming only groups is the admin credential's to decide.
func TestGroupApproversWithoutLookup(t *testing.T) {
	s, _, _ := newService(t) // spec names group:finance only
	ctx := context.Background()
	a, err := s.Request(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(ctx, a.ID, true, "user:bob", ""); !errors.Is(err, approval.ErrNotApprover) {
		t.Errorf("a human without group lookup: %v, want ErrNotApprover", err)
	}
	if _, err := s.Decide(ctx, a.ID, true, "admin:admin", ""); err != nil {
		t.Errorf("admin: %v", err)
	}
}

// TestMayDecideHostile: group names match exactly, byte for byte; odd,
// empty and look-alike names never match another; actors of no known
// kind decide nothing.
func TestMayDecideHostile(t *testing.T) {
	req := func(approvers ...string) store.Approval {
		return store.Approval{SpiffeID: "spiffe://writ.local/agent/a", OnBehalfOf: "alice", Policy: "p@1", Rule: "r", Approvers: approvers}
	}
	for _, tc := range []struct {
		name   string
		a      store.Approval
		actor  string
		groups []string
		want   error
	}{
		{"member", req("group:leads"), "user:bob", []string{"leads"}, nil},
		{"one of several groups", req("group:a", "group:leads"), "user:bob", []string{"x", "leads"}, nil},
		{"case differs", req("group:leads"), "user:bob", []string{"Leads"}, approval.ErrNotApprover},
		{"case differs the other way", req("group:Leads"), "user:bob", []string{"leads"}, approval.ErrNotApprover},
		{"upper case", req("group:LEADS"), "user:bob", []string{"leads", "Leads"}, approval.ErrNotApprover},
		{"trailing space", req("group:leads"), "user:bob", []string{"leads "}, approval.ErrNotApprover},
		{"prefix", req("group:leads"), "user:bob", []string{"lead"}, approval.ErrNotApprover},
		{"longer", req("group:lead"), "user:bob", []string{"leads"}, approval.ErrNotApprover},
		{"NUL", req("group:leads"), "user:bob", []string{"leads\x00"}, approval.ErrNotApprover},
		{"NFD look-alike", req("group:équipe"), "user:bob", []string{"e\u0301quipe"}, approval.ErrNotApprover},
		{"Cyrillic look-alike", req("group:ops"), "user:bob", []string{"оps"}, approval.ErrNotApprover},
		{"empty group named", req("group:"), "user:bob", []string{""}, approval.ErrNotApprover},
		{"empty membership", req("group:leads"), "user:bob", []string{""}, approval.ErrNotApprover},
		{"no groups", req("group:leads"), "user:bob", nil, approval.ErrNotApprover},
		{"group entry in groups", req("group:leads"), "user:bob", []string{"group:leads"}, approval.ErrNotApprover},
		{"user named like the group", req("group:leads"), "user:leads", nil, approval.ErrNotApprover},
		{"group named like the user", req("user:leads"), "user:bob", []string{"leads"}, approval.ErrNotApprover},
		{"comma-joined", req("group:a,b"), "user:bob", []string{"a", "b"}, approval.ErrNotApprover},
		{"self, in the group", req("group:leads"), "user:alice", []string{"leads"}, approval.ErrSelfApproval},
		{"admin of the requester's name", req("group:leads"), "admin:alice", nil, approval.ErrSelfApproval},
		{"admin", req("group:leads"), "admin:ops", nil, nil},
		{"empty admin", req("group:leads"), "admin:", nil, approval.ErrNotApprover},
		{"empty user", req(), "user:", nil, approval.ErrNotApprover},
		{"bare name", req("group:leads"), "bob", []string{"leads"}, approval.ErrNotApprover},
		{"bare name, no approvers", req(), "bob", nil, approval.ErrNotApprover},
		{"no actor", req(), "", nil, approval.ErrNotApprover},
		{"human, only workloads named", req("spiffe://writ.local/sup"), "user:bob", nil, nil},
		{"human, none named", req(), "user:bob", nil, nil},
		{"workload named", req("group:leads", "spiffe://writ.local/sup"), "spiffe://writ.local/sup", nil, nil},
		{"workload in a group's name", req("group:spiffe://writ.local/sup"), "spiffe://writ.local/sup", nil, approval.ErrNotApprover},
		{"the requesting workload", req("spiffe://writ.local/agent/a"), "spiffe://writ.local/agent/a", nil, approval.ErrSelfApproval},
	} {
		if err := approval.MayDecide(tc.a, tc.actor, tc.groups); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: MayDecide(%q, %q, %q) = %v, want %v", tc.name, tc.a.Approvers, tc.actor, tc.groups, err, tc.want)
		}
	}
}

// FuzzMayDecide: whatever the names, a human decides a request naming
// humans only when named or in a named group (exactly), never their own,
// and the admin credential anything but its own.
func FuzzMayDecide(f *testing.F) {
	f.Add("bob", "leads", "leads", "alice", false)
	f.Add("bob", "Leads", "leads", "alice", false)
	f.Add("alice", "leads", "leads", "alice", true)
	f.Add("b,ob", "", "", "", true)
	f.Add("bob", "lé\u0301ads", "léads", "x", false)
	f.Fuzz(func(t *testing.T, user, group, approverGroup, onBehalf string, named bool) {
		approvers := []string{"group:" + approverGroup}
		if named {
			approvers = append(approvers, "user:"+user)
		}
		a := store.Approval{SpiffeID: "spiffe://writ.local/agent/a", OnBehalfOf: onBehalf, Approvers: approvers}
		actor := "user:" + user
		err := approval.MayDecide(a, actor, []string{group})
		self := onBehalf != "" && user == onBehalf
		switch {
		case user == "" || self:
			if err == nil {
				t.Fatalf("%q decided (self=%v)", actor, self)
			}
		case named || group == approverGroup && group != "":
			if err != nil {
				t.Fatalf("%q (named %v, group %q for %q) refused: %v", actor, named, group, approverGroup, err)
			}
		default:
			if !errors.Is(err, approval.ErrNotApprover) {
				t.Fatalf("%q in %q decided a request for group:%q: %v", actor, group, approverGroup, err)
			}
		}
		// The admin credential: anything it did not ask for.
		if err := approval.MayDecide(a, "admin:"+user, nil); (err == nil) == (user == "" || self) {
			t.Fatalf("admin:%s: %v (self=%v)", user, err, self)
		}
	})
}
