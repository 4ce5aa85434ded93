package server_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
)

const dbPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: me}
spec:
  subjects: [spiffe://writ.local/agent/me]
  rules:
    - name: tasks
      effect: allow
      targets: [{task: {}}]
    - name: orders-token
      effect: allow
      targets: [{token: {audiences: [orders-db]}}]
    - name: orders
      effect: allow
      targets: [{http: {service: orders-db, methods: [CONNECT]}}]
`

// psqlPath finds psql, or skips (fails under CI=true, where it is
// installed with PostgreSQL).
func psqlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("psql is required in CI")
		}
		t.Skip("psql is not installed")
	}
	return p
}

// dbEnv is a writ server with the PostgreSQL proxy in front of a fresh
// database holding two tables, one granted to tasks and one not.
type dbEnv struct {
	in    *instance
	ev    *events
	psql  string
	proxy string
	admin *pgx.Conn
}

func setupDB(t *testing.T) *dbEnv {
	t.Helper()
	psql := psqlPath(t)
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	if _, err := admin.Exec(ctx, `CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2); CREATE TABLE payroll (id int)`); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	cfg := tokenConfig(t)
	cfg.Proxy.PostgresListen = "127.0.0.1:0"
	in, ev := startLogged(t, cfg)
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", agentID)); err != nil {
		t.Fatal(err)
	}
	// Trust authentication on the test server: any password logs in.
	if _, err := in.client.PutCredential(ctx, "orders-admin", "basic", u.User.Username()+":unused"); err != nil {
		t.Fatal(err)
	}
	apply(t, in.client, "orders.yaml", dbPolicy+"---\n"+fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: orders-db}
spec:
  upstream: postgres://%s%s?sslmode=disable
  postgres:
    admin: orders-admin
    grants:
      - {privileges: [SELECT], tables: [public.orders]}
`, u.Host, u.Path))
	return &dbEnv{in: in, ev: ev, psql: psql, proxy: in.srv.PostgresProxyAddr(), admin: admin}
}

func (e *dbEnv) openTask(t *testing.T) string {
	t.Helper()
	tk, err := e.in.client.OpenTask(context.Background(), apitypes.OpenTaskRequest{SpiffeID: agentID, Purpose: "report", Audiences: []string{"orders-db"}})
	if err != nil {
		t.Fatal(err)
	}
	return tk.ID
}

// run runs psql through the proxy as the agent (this test's uid, a
// registered process), with no password anywhere in its environment.
func (e *dbEnv) psqlCmd(ctx context.Context, task string, sql ...string) *exec.Cmd {
	host, port, _ := net.SplitHostPort(e.proxy)
	args := []string{"-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", fmt.Sprintf("host=%s port=%s dbname=orders-db user=%s sslmode=disable connect_timeout=5", host, port, task)}
	for _, s := range sql {
		args = append(args, "-c", s)
	}
	cmd := exec.CommandContext(ctx, e.psql, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "PGCONNECT_TIMEOUT=5"}
	return cmd
}

func (e *dbEnv) psqlRun(t *testing.T, task string, sql ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := e.psqlCmd(ctx, task, sql...).CombinedOutput()
	return string(out), err
}

func (e *dbEnv) roleExists(t *testing.T, role string) bool {
	t.Helper()
	var ok bool
	if err := e.admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// goneWithin waits for role to disappear and fails if that takes longer
// than limit.
func (e *dbEnv) goneWithin(t *testing.T, role string, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		if !e.roleExists(t, role) {
			d := time.Since(since)
			if d > limit {
				t.Errorf("role %s was dropped %v after the task ended, more than %v", role, d, limit)
			}
			return d
		}
		if time.Since(since) > 10*time.Second {
			t.Fatalf("role %s still exists 10s after its task ended", role)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventsOf returns the audit events of typ so far.
func (ev *events) eventsOf(typ string) []map[string]string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []map[string]string
	for _, e := range ev.ev {
		if e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestDynamicPostgresRole: an agent reaches PostgreSQL for one task with
// a login that did not exist before the task and does not exist after
// it: psql through the proxy runs as a fresh role (never seeing a
// password), with only the Service's grants; the role and its sessions
// are gone within 1 s of the task's close, and of a revocation; every
// create and drop is an audit event.
func TestDynamicPostgresRole(t *testing.T) {
	env := setupDB(t)
	ctx := context.Background()
	task := env.openTask(t)
	out, err := env.psqlRun(t, task, `SELECT current_user, count(*) FROM orders`, `\conninfo`)
	if err != nil {
		t.Fatalf("psql through the proxy: %v\n%s", err, out)
	}
	role, rest, _ := strings.Cut(strings.TrimSpace(out), "|")
	if !strings.HasPrefix(role, "writ_") || !strings.HasPrefix(rest, "2\n") {
		t.Fatalf("psql output %q: want a writ_ role and 2 orders", out)
	}
	if !strings.Contains(out, `as user "`+task+`"`) || strings.Contains(out, "SCRAM") {
		t.Errorf("\\conninfo shows %q: the agent sees its task, not the login", out)
	}
	if !env.roleExists(t, role) {
		t.Fatalf("role %s does not exist during the task", role)
	}
	// Least privilege: only SELECT on orders.
	if out, err := env.psqlRun(t, task, `INSERT INTO orders VALUES (3)`); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("insert: %v %q, want permission denied", err, out)
	}
	if out, err := env.psqlRun(t, task, `SELECT * FROM payroll`); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("select from an ungranted table: %v %q, want permission denied", err, out)
	}
	if out, err := env.psqlRun(t, task, `SELECT rolpassword FROM pg_authid`); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("read password verifiers: %v %q, want permission denied", err, out)
	}
	// The same task gets the same role on its next connection.
	if out, err := env.psqlRun(t, task, `SELECT current_user`); err != nil || strings.TrimSpace(out) != role {
		t.Errorf("second connection: %q %v, want role %s", out, err, role)
	}
	// The tier report sees the per-task credential and the live role.
	rep, err := env.in.client.Tier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var jit *apitypes.TierRow
	for i := range rep.Rows {
		if rep.Rows[i].ID == "jit-credentials" {
			jit = &rep.Rows[i]
		}
	}
	if jit == nil || jit.Verdict != "met" || !strings.Contains(jit.Evidence, "1 of 1 Services") || !strings.Contains(jit.Evidence, "1 dynamic database roles exist, 0 of them outliving") {
		t.Errorf("tier row jit-credentials during the task = %+v", jit)
	}
	// Without a task: refused, nothing created.
	if out, err := env.psqlRun(t, "me", `SELECT 1`); err == nil || !strings.Contains(out, "per task") {
		t.Errorf("connection outside a task: %v %q, want a refusal naming tasks", err, out)
	}

	// A session open while the task closes is ended, and the role is
	// dropped within 1 s of the close.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	long := env.psqlCmd(sctx, task, `SELECT pg_sleep(25)`)
	var longOut strings.Builder
	long.Stdout, long.Stderr = &longOut, &longOut
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var longErr error
	wg.Add(1)
	go func() { defer wg.Done(); longErr = long.Wait() }()
	waitActive(t, env, role)
	closed := time.Now()
	if _, err := env.in.client.CloseTask(ctx, task, "done"); err != nil {
		t.Fatal(err)
	}
	d := env.goneWithin(t, role, closed, time.Second)
	wg.Wait()
	if longErr == nil || !strings.Contains(longOut.String(), "terminating connection") {
		t.Errorf("the session open at close: %v %q, want it terminated", longErr, longOut.String())
	}
	t.Logf("role dropped %v after close", d)
	if out, err := env.psqlRun(t, task, `SELECT 1`); err == nil || !strings.Contains(out, "revoked") {
		t.Errorf("connection after close: %v %q, want refused", err, out)
	}

	// Revocation of a task drops its role as fast.
	task2 := env.openTask(t)
	out, err = env.psqlRun(t, task2, `SELECT current_user`)
	role2 := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(role2, "writ_") || role2 == role {
		t.Fatalf("second task: %q %v, want a new role", out, err)
	}
	revoked := time.Now()
	if _, err := env.in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: store.RevokeTask, Value: task2, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	d = env.goneWithin(t, role2, revoked, time.Second)
	t.Logf("role dropped %v after revocation", d)

	// The drop is recorded just after the role is gone.
	for deadline := time.Now().Add(5 * time.Second); len(env.ev.eventsOf("dbcreds.role_dropped")) < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	created, dropped := env.ev.eventsOf("dbcreds.role_created"), env.ev.eventsOf("dbcreds.role_dropped")
	roles := func(es []map[string]string) string {
		var s []string
		for _, e := range es {
			s = append(s, e["detail.role"]+"/"+e["task"])
		}
		return strings.Join(s, " ")
	}
	want := role + "/" + task + " " + role2 + "/" + task2
	if got := roles(created); got != want {
		t.Errorf("role_created events for %q, want %q", got, want)
	}
	if got := roles(dropped); got != want {
		t.Errorf("role_dropped events for %q, want %q", got, want)
	}
}

// waitActive waits until role has a session running a query.
func waitActive(t *testing.T, env *dbEnv, role string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var n int
		if err := env.admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active'`, role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatalf("no active session of %s", role)
}
