package dbcreds

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

func compileErr(t *testing.T, upstream string, spec Spec) (*Service, error) {
	t.Helper()
	return Compile("orders-db", upstream, "orders-db", nil, spec, func(field, format string, args ...any) error {
		return errors.New("spec." + field + ": " + strings.TrimSpace(strings.ReplaceAll(format, "%", "")))
	})
}

// TestCompileHostile: documents that would put anything but quoted
// identifiers and fixed keywords into SQL are refused with the field named;
// odd but valid names are quoted, never spliced.
func TestCompileHostile(t *testing.T) {
	ok := Spec{Admin: "pg-admin", Grants: []Grant{{Privileges: []string{"select"}, Tables: []string{"public.orders"}}}}
	const up = "postgres://127.0.0.1:5432/orders?sslmode=disable"
	for _, c := range []struct {
		name, upstream string
		spec           func(s *Spec)
		field          string
	}{
		{"http upstream", "http://127.0.0.1/x", nil, "spec.upstream"},
		{"user info", "postgres://u:p@127.0.0.1/orders", nil, "spec.upstream"},
		{"no database", "postgres://127.0.0.1:5432/", nil, "spec.upstream"},
		{"nested path", "postgres://127.0.0.1:5432/a/b", nil, "spec.upstream"},
		{"options param", "postgres://127.0.0.1/orders?options=-c%20role%3Dpostgres", nil, "spec.upstream"},
		{"no admin", up, func(s *Spec) { s.Admin = "" }, "spec.postgres.admin"},
		{"bad admin", up, func(s *Spec) { s.Admin = "Admin; DROP" }, "spec.postgres.admin"},
		{"no grants", up, func(s *Spec) { s.Grants = nil }, "spec.postgres.grants"},
		{"privilege injection", up, func(s *Spec) { s.Grants[0].Privileges = []string{"SELECT ON x TO y; DROP TABLE z --"} }, "spec.postgres.grants.0.privileges.0"},
		{"schema privilege on table", up, func(s *Spec) { s.Grants[0].Privileges = []string{"USAGE"} }, "spec.postgres.grants.0.privileges.0"},
		{"two kinds", up, func(s *Spec) { s.Grants[0].Schemas = []string{"public"} }, "spec.postgres.grants.0"},
		{"no kind", up, func(s *Spec) { s.Grants[0].Tables = nil }, "spec.postgres.grants.0"},
		{"quote in name", up, func(s *Spec) { s.Grants[0].Tables = []string{`public."x`} }, "spec.postgres.grants.0.tables.0"},
		{"control in name", up, func(s *Spec) { s.Grants[0].Tables = []string{"public.x\x00y"} }, "spec.postgres.grants.0.tables.0"},
		{"three parts", up, func(s *Spec) { s.Grants[0].Tables = []string{"db.public.x"} }, "spec.postgres.grants.0.tables.0"},
		{"long name", up, func(s *Spec) { s.Grants[0].Tables = []string{strings.Repeat("a", 64)} }, "spec.postgres.grants.0.tables.0"},
		{"dotted schema", up, func(s *Spec) { s.Grants[0] = Grant{Privileges: []string{"USAGE"}, Schemas: []string{"a.b"}} }, "spec.postgres.grants.0.schemas.0"},
		{"dotted group", up, func(s *Spec) { s.MemberOf = []string{"a.b"} }, "spec.postgres.member_of.0"},
		{"connection limit", up, func(s *Spec) { s.ConnectionLimit = -1 }, "spec.postgres.connection_limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := ok
			s.Grants = []Grant{{Privileges: []string{"select"}, Tables: []string{"public.orders"}}}
			if c.spec != nil {
				c.spec(&s)
			}
			_, err := compileErr(t, c.upstream, s)
			if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
				t.Errorf("err = %v, want one at %s", err, c.field)
			}
		})
	}
	s := ok
	s.Grants = []Grant{{Privileges: []string{"select", "SELECT", "insert"}, Tables: []string{"public.orders; DROP TABLE payroll --", "Mixed"}},
		{Privileges: []string{"usage"}, Schemas: []string{"public"}}, {Privileges: []string{"ALL"}, AllTablesInSchema: []string{"reports"}}}
	s.MemberOf = []string{"readers"}
	svc, err := compileErr(t, up, s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range svc.grants {
		got = append(got, g(pgx.Identifier{"writ_r"}))
	}
	want := []string{
		`GRANT SELECT, INSERT ON TABLE "public"."orders; DROP TABLE payroll --", "Mixed" TO "writ_r"`,
		`GRANT USAGE ON SCHEMA "public" TO "writ_r"`,
		`GRANT ALL ON ALL TABLES IN SCHEMA "reports" TO "writ_r"`,
		`GRANT "readers" TO "writ_r"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if svc.Database != "orders" || svc.Spec.ConnectionLimit != DefaultConnectionLimit || svc.Target().Ref != "Service/orders-db" {
		t.Errorf("compiled %+v", svc)
	}
}

// harness is an Issuer over a SQLite store and a real broker, in front of
// a fresh PostgreSQL database with an orders table.
type harness struct {
	db     *sqlite.DB
	sealer *keys.Sealer
	broker *broker.Broker
	rec    *audittest.Recorder
	admin  *pgx.Conn
	svc    *Service
	now    time.Time
	mu     sync.Mutex
}

type storeTasks struct{ db *sqlite.DB }

func (s storeTasks) Get(ctx context.Context, id string) (store.Task, error) {
	return s.db.GetTask(ctx, id)
}

func newHarness(t testing.TB, spec Spec) *harness {
	t.Helper()
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	if _, err := admin.Exec(ctx, `CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sealer, err := keys.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{db: db, sealer: sealer, rec: &audittest.Recorder{}, admin: admin, now: time.Now()}
	h.broker, err = broker.New(broker.Config{Store: db, Sealer: sealer, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	if _, err := h.broker.Put(ctx, "test", "pg-admin", broker.Basic, broker.NewSecret([]byte(u.User.Username()+":unused"))); err != nil {
		t.Fatal(err)
	}
	u.User = nil
	if spec.Admin == "" {
		spec.Admin = "pg-admin"
	}
	h.svc, err = Compile("orders-db", u.String(), "orders-db", nil, spec, func(field, format string, args ...any) error {
		return errors.New(field)
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

func (h *harness) issuer(t testing.TB) *Issuer {
	t.Helper()
	is, err := New(Config{Store: h.db, Sealer: h.sealer, Credentials: h.broker, Tasks: storeTasks{h.db}, Emitter: h.rec, Now: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	return is
}

func (h *harness) task(t testing.TB, id string) store.Task {
	t.Helper()
	tk, err := h.db.CreateTask(context.Background(), store.Task{ID: id, SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_1",
		Purpose: "p", State: store.TaskOpen, CreatedAt: h.clock(), ExpiresAt: h.clock().Add(time.Hour).Truncate(time.Microsecond)})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func (h *harness) roleExists(t *testing.T, role string) bool {
	t.Helper()
	var ok bool
	if err := h.admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func (h *harness) closeTask(t testing.TB, id string) {
	t.Helper()
	if _, err := h.db.TransitionTask(context.Background(), id, []string{store.TaskOpen}, store.TaskClosed, "done", h.clock()); err != nil {
		t.Fatal(err)
	}
}

// TestIssueAndDrop: a task's first access creates one role (also under
// concurrent first accesses), valid until the task's end, able to read
// what the Service grants; the sweep drops it once the task is closed.
func TestIssueAndDrop(t *testing.T) {
	h := newHarness(t, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"public.orders"}}}, ConnectionLimit: 3})
	is := h.issuer(t)
	ctx := context.Background()
	tk := h.task(t, "task_a")
	var wg sync.WaitGroup
	logins := make([]Login, 6)
	errs := make([]error, 6)
	for i := range logins {
		wg.Add(1)
		go func() { defer wg.Done(); logins[i], errs[i] = is.Issue(ctx, h.svc, tk) }()
	}
	wg.Wait()
	created := 0
	for i, l := range logins {
		if errs[i] != nil {
			t.Fatalf("Issue %d: %v", i, errs[i])
		}
		if l.Role != logins[0].Role || !l.Password.Equal(logins[0].Password) {
			t.Errorf("Issue %d gave role %s, first gave %s", i, l.Role, logins[0].Role)
		}
		if l.Created {
			created++
		}
	}
	role := logins[0].Role
	if created != 1 || h.rec.Count(audit.DBRoleCreated) != 1 {
		t.Errorf("%d calls created, %d events; want one role created once", created, h.rec.Count(audit.DBRoleCreated))
	}
	var until time.Time
	var limit int
	var canLogin bool
	if err := h.admin.QueryRow(ctx, `SELECT rolvaliduntil, rolconnlimit, rolcanlogin FROM pg_roles WHERE rolname = $1`, role).Scan(&until, &limit, &canLogin); err != nil {
		t.Fatalf("role %s in pg_roles: %v", role, err)
	}
	if !until.Equal(tk.ExpiresAt) || limit != 3 || !canLogin {
		t.Errorf("role valid until %v, limit %d, login %v; want %v, 3, true", until, limit, canLogin, tk.ExpiresAt)
	}
	if fmt := logins[0].Password; strings.Contains(fmtAll(fmt), fmt.Reveal()) {
		t.Error("a Login's password prints")
	}
	var verifier string
	if err := h.admin.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, role).Scan(&verifier); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(verifier, "SCRAM-SHA-256$4096:") {
		t.Errorf("stored verifier %q is not SCRAM-SHA-256", verifier)
	}
	cfg, _ := pgx.ParseConfig(h.svc.Upstream)
	cfg.User, cfg.Password = role, logins[0].Password.Reveal()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("log in as the role: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 2 {
		t.Errorf("select as the role: %d %v", n, err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO orders VALUES (3)`); err == nil {
		t.Error("the role may insert; the Service grants SELECT only")
	}
	// Sweeping while the task is open keeps the role.
	if _, err := is.Sweep(ctx); err != nil || !h.roleExists(t, role) {
		t.Fatalf("sweep during the task: %v, role exists %v", err, h.roleExists(t, role))
	}
	h.closeTask(t, "task_a")
	if _, err := is.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if h.roleExists(t, role) {
		t.Error("role still exists after its task closed")
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("the role's session survived the drop")
	}
	c.Close(ctx)
	if rs, _ := h.db.ListDBRoles(ctx); len(rs) != 0 {
		t.Errorf("store still records %+v", rs)
	}
	e, ok := h.rec.Last(audit.DBRoleDropped)
	if !ok || e.Details["role"] != role || e.Task != "task_a" || e.Reason != "task closed" {
		t.Errorf("drop event %+v", e)
	}
	if _, err := is.Issue(ctx, h.svc, store.Task{ID: "task_a", State: store.TaskClosed, ExpiresAt: tk.ExpiresAt}); err == nil {
		t.Error("Issue for a closed task succeeded")
	}
	if _, err := is.Issue(ctx, h.svc, store.Task{}); !errors.Is(err, ErrNoTask) {
		t.Errorf("Issue outside a task: %v, want ErrNoTask", err)
	}
}

func fmtAll(s broker.Secret) string {
	return strings.Join([]string{s.String(), s.GoString()}, " ")
}

// TestReapAfterCrash: roles a crashed writ left — one whose task ended
// while writ was down, one recorded but caught half-created — are dropped
// by the first sweep of the next start; a role of a running task stays.
func TestReapAfterCrash(t *testing.T) {
	h := newHarness(t, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}}})
	ctx := context.Background()
	before := h.issuer(t)
	ended, err := before.Issue(ctx, h.svc, h.task(t, "task_ended"))
	if err != nil {
		t.Fatal(err)
	}
	running, err := before.Issue(ctx, h.svc, h.task(t, "task_running"))
	if err != nil {
		t.Fatal(err)
	}
	// A crash between CREATE ROLE and activation: the row says creating.
	half := store.DBRole{Role: roleName(), Service: h.svc.Name, Task: "task_half", SpiffeID: "spiffe://writ.local/agent/a",
		Upstream: h.svc.Upstream, AdminCredential: "pg-admin", Sealed: []byte{1}, ValidUntil: h.clock().Add(time.Hour)}
	h.task(t, "task_half")
	if _, err := h.db.CreateDBRole(ctx, half); err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.Exec(ctx, `CREATE ROLE `+pgx.Identifier{half.Role}.Sanitize()+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	before.Close() // the crash: nothing more from this issuer
	h.closeTask(t, "task_ended")
	h.advance(2 * time.Minute)

	after := h.issuer(t)
	next, err := after.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.roleExists(t, ended.Role) || h.roleExists(t, half.Role) {
		t.Errorf("after restart: ended role exists %v, half-created role exists %v; want both reaped",
			h.roleExists(t, ended.Role), h.roleExists(t, half.Role))
	}
	if !h.roleExists(t, running.Role) {
		t.Error("the role of a running task was reaped")
	}
	if next.IsZero() || !next.Equal(running.ValidUntil) {
		t.Errorf("next sweep at %v, want the running role's end %v", next, running.ValidUntil)
	}
	// At the running task's end the role goes too.
	h.advance(time.Hour)
	if _, err := after.Sweep(ctx); err != nil || h.roleExists(t, running.Role) {
		t.Errorf("after the task's end: %v, role exists %v", err, h.roleExists(t, running.Role))
	}
}

// TestIssueGrantFails: a grant the database refuses rolls the whole role
// back: no role, no record, an error naming the grant.
func TestIssueGrantFails(t *testing.T) {
	h := newHarness(t, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}, {Privileges: []string{"SELECT"}, Tables: []string{"missing"}}}})
	is := h.issuer(t)
	role := roleName()
	is.newRole = func() string { return role }
	ctx := context.Background()
	_, err := is.Issue(ctx, h.svc, h.task(t, "task_x"))
	if err == nil || !strings.Contains(err.Error(), `"missing"`) || !strings.Contains(err.Error(), "42P01") {
		t.Fatalf("Issue with a grant on a missing table: %v", err)
	}
	if h.roleExists(t, role) {
		t.Errorf("role %s exists after a failed issue", role)
	}
	if rs, _ := h.db.ListDBRoles(ctx); len(rs) != 0 || h.rec.Count(audit.DBRoleCreated) != 0 {
		t.Errorf("records %+v, %d create events after a failed issue", rs, h.rec.Count(audit.DBRoleCreated))
	}
}

// TestIssueNotAudited: a role whose creation cannot be put on record is
// dropped and not handed out (fail closed).
func TestIssueNotAudited(t *testing.T) {
	h := newHarness(t, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}}})
	h.rec.FailOn(audit.DBRoleCreated, errors.New("log full"))
	is := h.issuer(t)
	role := roleName()
	is.newRole = func() string { return role }
	_, err := is.Issue(context.Background(), h.svc, h.task(t, "task_y"))
	if err == nil {
		t.Fatal("Issue succeeded although its event could not be recorded")
	}
	if h.roleExists(t, role) {
		t.Errorf("role %s exists after an unaudited issue", role)
	}
	if rs, _ := h.db.ListDBRoles(context.Background()); len(rs) != 0 {
		t.Errorf("records %+v after an unaudited issue", rs)
	}
}
