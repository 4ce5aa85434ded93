package dbcreds

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// BenchmarkIssueFirstQuery: a task's first access end to end at the
// issuer: create the role (record, CREATE ROLE + grants in one
// transaction, activate, audit), log in as it and run the first query.
// ns/op is create→first query latency; 1e9/ns_per_op is roles/s.
func BenchmarkIssueFirstQuery(b *testing.B) {
	h := newHarness(b, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}}})
	is := h.issuer(b)
	ctx := context.Background()
	var ids []string
	b.Cleanup(func() {
		for _, id := range ids {
			h.closeTask(b, id)
		}
		if _, err := is.Sweep(ctx); err != nil {
			b.Error(err)
		}
	})
	tasks := make([]string, b.N)
	for i := range tasks {
		tasks[i] = fmt.Sprintf("task_b%d_%d", time.Now().UnixNano(), i)
		h.task(b, tasks[i])
		ids = append(ids, tasks[i])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk, _ := h.db.GetTask(ctx, tasks[i])
		login, err := is.Issue(ctx, h.svc, tk)
		if err != nil {
			b.Fatal(err)
		}
		cfg, _ := pgconn.ParseConfig(h.svc.Upstream)
		cfg.User, cfg.Password = login.Role, login.Password.Reveal()
		c, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Exec(ctx, `SELECT count(*) FROM orders`).Close(); err != nil {
			b.Fatal(err)
		}
		c.Close(ctx)
	}
}

// benchPair runs fn against a connection made directly to PostgreSQL as
// the task's role, and against one made through the proxy.
func benchPair(b *testing.B, fn func(b *testing.B, connect func() *pgconn.PgConn)) {
	h := newHarness(b, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}}})
	is := h.issuer(b)
	e := &tokenEnforcer{task: h.task(b, "task_bench")}
	addr := startProxy(b, h, is, e)
	ctx := context.Background()
	login, err := is.Issue(ctx, h.svc, e.task)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.closeTask(b, "task_bench"); is.Sweep(ctx) })
	direct, _ := pgconn.ParseConfig(h.svc.Upstream)
	direct.User, direct.Password = login.Role, login.Password.Reveal()
	for _, c := range []struct {
		name string
		cfg  *pgconn.Config
	}{{"direct", direct}, {"proxy", clientConfig(b, addr, "good-token")}} {
		b.Run(c.name, func(b *testing.B) {
			fn(b, func() *pgconn.PgConn {
				pc, err := pgconn.ConnectConfig(ctx, c.cfg)
				if err != nil {
					b.Fatal(err)
				}
				return pc
			})
		})
	}
}

// BenchmarkWireQuery: one query round trip on an open session, directly
// and through the proxy (the relay's cost per query).
func BenchmarkWireQuery(b *testing.B) {
	benchPair(b, func(b *testing.B, connect func() *pgconn.PgConn) {
		c := connect()
		defer c.Close(context.Background())
		ctx := context.Background()
		for b.Loop() {
			if _, err := c.Exec(ctx, `SELECT 1`).ReadAll(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWireConnect: opening a session (and running one query),
// directly as the role and through the proxy (identification, the
// enforcement decision, the role lookup and the upstream login).
func BenchmarkWireConnect(b *testing.B) {
	benchPair(b, func(b *testing.B, connect func() *pgconn.PgConn) {
		ctx := context.Background()
		for b.Loop() {
			c := connect()
			if _, err := c.Exec(ctx, `SELECT 1`).ReadAll(); err != nil {
				b.Fatal(err)
			}
			c.Close(ctx)
		}
	})
}
