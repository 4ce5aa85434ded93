package account

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

func TestGroups(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, rec := newService(t, &now)
	if _, err := s.Add(ctx, "alice", store.RoleApprover, []string{"leads", "a,b"}, "correct horse battery", "admin:admin"); err == nil ||
		!strings.Contains(err.Error(), `group name "a,b"`) {
		t.Errorf("a group with a comma: %v, want an error naming it", err)
	}
	if _, err := s.Get(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused add left an account: %v", err)
	}
	u, err := s.Add(ctx, "alice", store.RoleApprover, []string{"ops", "Leads", "leads", "ops"}, "correct horse battery", "admin:admin")
	if err != nil || !slices.Equal(u.Groups, []string{"Leads", "leads", "ops"}) {
		t.Fatalf("Add with groups = %q, %v", u.Groups, err)
	}
	if e, _ := rec.Last(audit.UserAdded); e.Details["groups"] != "Leads,leads,ops" {
		t.Errorf("user.added details %v", e.Details)
	}
	lookup := GroupsIn(s.c.Users)
	if g, err := lookup(ctx, "alice"); err != nil || !slices.Equal(g, u.Groups) {
		t.Errorf("GroupsIn(alice) = %q, %v", g, err)
	}
	if g, err := lookup(ctx, "nobody"); err != nil || g != nil {
		t.Errorf("GroupsIn(nobody) = %q, %v; want none, no error", g, err)
	}

	u, err = s.ChangeGroups(ctx, "alice", store.GroupChange{Add: []string{"sec"}, Remove: []string{"Leads"}}, "admin:admin")
	if err != nil || !slices.Equal(u.Groups, []string{"leads", "ops", "sec"}) {
		t.Errorf("add sec, remove Leads = %q, %v", u.Groups, err)
	}
	if e, _ := rec.Last(audit.UserChanged); e.Details["change"] != "groups" || e.Details["from"] != "Leads,leads,ops" || e.Details["groups"] != "leads,ops,sec" || e.Actor != "admin:admin" {
		t.Errorf("user.changed event %+v", e)
	}
	if u, err = s.ChangeGroups(ctx, "alice", store.GroupChange{Replace: true}, "admin:admin"); err != nil || u.Groups != nil {
		t.Errorf("clear = %q, %v", u.Groups, err)
	}
	for _, tc := range []struct {
		c    store.GroupChange
		want string
	}{
		{store.GroupChange{}, "say how to change"},
		{store.GroupChange{Add: []string{"x"}, Remove: []string{"x"}}, `group "x" is both added and removed`},
		{store.GroupChange{Add: []string{" leads"}}, `group name " leads"`},
		{store.GroupChange{Remove: []string{"*"}}, `group name "*"`},
		{store.GroupChange{Replace: true, Set: []string{""}}, `group name ""`},
	} {
		_, err := s.ChangeGroups(ctx, "alice", tc.c, "admin:admin")
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ChangeGroups(%+v) = %v, want an InputError saying %q", tc.c, err, tc.want)
		}
	}
	if _, err := s.ChangeGroups(ctx, "nobody", store.GroupChange{Add: []string{"x"}}, "admin:admin"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("groups of a missing account: %v", err)
	}

	// An OIDC account's groups follow the provider at every login, for
	// every session; an admin cannot change them here.
	_, sess, err := s.LoginOIDC(ctx, "bob@example.com", store.RoleApprover, []string{"finance", "ops"}, "")
	if err != nil || !slices.Equal(sess.User.Groups, []string{"finance", "ops"}) {
		t.Fatalf("first OIDC login: %+v, %v", sess.User, err)
	}
	first, _, err := s.LoginOIDC(ctx, "bob@example.com", store.RoleApprover, []string{"ops"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := rec.Last(audit.UserChanged); e.Actor != "oidc" || e.Details["from"] != "finance,ops" || e.Details["groups"] != "ops" {
		t.Errorf("OIDC groups change event %+v", e)
	}
	if got, err := s.Session(ctx, first); err != nil || !slices.Equal(got.User.Groups, []string{"ops"}) {
		t.Errorf("session after the provider dropped finance: %q, %v", got.User.Groups, err)
	}
	if _, err := s.ChangeGroups(ctx, "bob@example.com", store.GroupChange{Add: []string{"finance"}}, "admin:admin"); err == nil ||
		!strings.Contains(err.Error(), "OIDC") {
		t.Errorf("admin changed an OIDC account's groups: %v", err)
	}
	if _, _, err := s.LoginOIDC(ctx, "bob@example.com", store.RoleApprover, []string{"bad,name"}, ""); err == nil {
		t.Error("LoginOIDC took a group name CheckGroup refuses")
	}
}

func TestCheckGroupHostile(t *testing.T) {
	for _, ok := range []string{"leads", "Leads", "comms-leads", "/team/leads", "Domain Admins", "équipe", "運用", "leads@example.com",
		"a", "x=1:y", strings.Repeat("g", 128)} {
		if err := CheckGroup(ok); err != nil {
			t.Errorf("CheckGroup(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", " ", " leads", "leads ", "a,b", `"leads"`, "lea*ds", "leads?", "[leads]", "lead\nx", "lead\x00",
		"lead\tx", "-leads", ".leads", "e\u0301quipe", "lead\u200bs", strings.Repeat("g", 129), "\xff", "group:leads"} {
		err := CheckGroup(bad)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "group name") {
			t.Errorf("CheckGroup(%q) = %v, want an InputError naming it", bad, err)
		}
	}
	got, refused := CleanGroups([]string{"ops", "a,b", "Leads", "", "ops", "leads"})
	if !slices.Equal(got, []string{"Leads", "leads", "ops"}) || !slices.Equal(refused, []string{"a,b", ""}) {
		t.Errorf("CleanGroups = %q, refused %q", got, refused)
	}
}

// FuzzCheckGroup: an accepted name can be listed with commas, named in a
// policy's group:NAME exactly and printed on one line; CleanGroups keeps
// exactly the accepted values.
func FuzzCheckGroup(f *testing.F) {
	for _, s := range []string{"leads", "Domain Admins", "/a/b", "a,b", " x", "x ", "é", "\x00", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckGroup(name)
		got, refused := CleanGroups([]string{name, name})
		if err != nil {
			if len(got) != 0 || len(refused) != 2 {
				t.Fatalf("CleanGroups kept refused %q: %q", name, got)
			}
			if !strings.Contains(err.Error(), "group name") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if len(got) != 1 || got[0] != name || len(refused) != 0 {
			t.Fatalf("CleanGroups(%q twice) = %q, %q", name, got, refused)
		}
		if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 128 || strings.ContainsAny(name, ",\"'*?[\\") ||
			strings.TrimSpace(name) != name {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || (r != ' ' && unicode.IsSpace(r)) || unicode.Is(unicode.Mn, r) {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
	})
}
