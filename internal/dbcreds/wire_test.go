package dbcreds

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/store"
)

// tokenEnforcer stands in for the enforcement core: no local process is
// identified; the token "good-token" is the caller of task, any other
// token is refused. It records every access it is handed.
type tokenEnforcer struct {
	task store.Task
	mu   sync.Mutex
	recs []access.Result
	outs []access.Outcome
}

func (e *tokenEnforcer) Identify(_ context.Context, _ *access.Conn, p *access.Presented, _ *access.Target) (*access.Caller, error) {
	switch {
	case p.Token == nil:
		return nil, &access.Refusal{Class: access.Unidentified, Message: "caller not identified", Reason: "no registered process"}
	case p.Token.Authorization == "Bearer good-token":
		return &access.Caller{SpiffeID: e.task.SpiffeID, Task: e.task.ID, Via: "token"}, nil
	}
	return nil, &access.Refusal{Class: access.TokenRefused, Message: "caller not identified", Reason: "access token refused"}
}

func (e *tokenEnforcer) Enforce(_ context.Context, req *access.Request) (access.Outcome, error) {
	if req.Method != "CONNECT" || req.Path != "/" || req.Target.Ref != "Service/orders-db" {
		return access.Outcome{Class: access.Forbidden, Message: "unexpected request"}, nil
	}
	return access.Outcome{Effect: access.Allow, Task: e.task}, nil
}

func (e *tokenEnforcer) Record(_ context.Context, _ *access.Request, out *access.Outcome, res access.Result) {
	e.mu.Lock()
	e.recs = append(e.recs, res)
	e.outs = append(e.outs, *out)
	e.mu.Unlock()
}

func (e *tokenEnforcer) recorded() []access.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]access.Result(nil), e.recs...)
}

func startProxy(t testing.TB, h *harness, is *Issuer, e Enforcer) string {
	t.Helper()
	p, err := NewProxy(ProxyConfig{Enforcer: e, Issuer: is, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.SetServices(map[string]*Service{h.svc.Name: h.svc})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { p.Close() })
	return ln.Addr().String()
}

// recordingConn keeps every byte the client reads.
type recordingConn struct {
	net.Conn
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (c recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.buf.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func clientConfig(t testing.TB, addr, password string) *pgconn.Config {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg, err := pgconn.ParseConfig("postgres://agent@" + host + ":" + port + "/orders-db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = password
	return cfg
}

// TestProxyAgentNeverSeesPassword: a client holding only a writ token
// reaches the database as the task's role; nothing it reads carries the
// role's password or its verifier; cancel requests reach the upstream;
// the access is recorded with its byte counts.
func TestProxyAgentNeverSeesPassword(t *testing.T) {
	h := newHarness(t, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}}})
	is := h.issuer(t)
	e := &tokenEnforcer{task: h.task(t, "task_w")}
	addr := startProxy(t, h, is, e)
	ctx := context.Background()

	var mu sync.Mutex
	var seen bytes.Buffer
	cfg := clientConfig(t, addr, "good-token")
	cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
		return recordingConn{Conn: c, mu: &mu, buf: &seen}, nil
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through the proxy with a token: %v", err)
	}
	res := c.ExecParams(ctx, `SELECT current_user::text, count(*)::text FROM orders`, nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || !strings.HasPrefix(string(res.Rows[0][0]), "writ_") || string(res.Rows[0][1]) != "2" {
		t.Fatalf("query through the proxy: %v %q", res.Err, res.Rows)
	}
	role := string(res.Rows[0][0])
	// A cancel request through the proxy stops a running query.
	go func() {
		for range 100 {
			time.Sleep(50 * time.Millisecond)
			var n int
			h.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active'`, role).Scan(&n)
			if n > 0 {
				c.CancelRequest(ctx) // to the proxy, with the key it gave
				return
			}
		}
	}()
	start := time.Now()
	_, err = c.Exec(ctx, `SELECT pg_sleep(20)`).ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Errorf("cancelled query: %v, want SQLSTATE 57014 (query_canceled)", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("the cancel took %v", time.Since(start))
	}
	c.Close(ctx)

	login, err := is.Issue(ctx, h.svc, e.task)
	if err != nil || login.Role != role {
		t.Fatalf("the task's role is %q (%v), the session ran as %q", login.Role, err, role)
	}
	mu.Lock()
	transcript := seen.String()
	mu.Unlock()
	if strings.Contains(transcript, login.Password.Reveal()) || strings.Contains(transcript, "SCRAM-SHA-256") {
		t.Error("the client read the role's password or verifier")
	}
	if !strings.Contains(transcript, role) {
		t.Error("the transcript does not even hold the role name; is it recorded at all?")
	}
	waitFor(t, func() bool {
		r := e.recorded()
		return len(r) == 1 && r[0].Status == 200 && r[0].In > 0 && r[0].Out > 0
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// TestProxyRefusals: wrong or missing tokens and unknown Services are
// refused with PostgreSQL errors, recorded, and create nothing.
func TestProxyRefusals(t *testing.T) {
	h := newHarness(t, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}}})
	is := h.issuer(t)
	e := &tokenEnforcer{task: h.task(t, "task_r")}
	addr := startProxy(t, h, is, e)
	ctx := context.Background()
	for _, c := range []struct {
		name, password, db, code string
	}{
		{"bad token", "forged", "orders-db", "28P01"},
		{"empty password", "", "orders-db", "28000"},
		{"unknown service", "good-token", "payroll", "3D000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := clientConfig(t, addr, c.password)
			cfg.Database = c.db
			_, err := pgconn.ConnectConfig(ctx, cfg)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != c.code {
				t.Errorf("connect: %v, want SQLSTATE %s", err, c.code)
			}
		})
	}
	if rs, _ := h.db.ListDBRoles(ctx); len(rs) != 0 {
		t.Errorf("refused connections created roles: %+v", rs)
	}
	if n := len(e.recorded()); n != 2 {
		t.Errorf("%d accesses recorded, want the 2 refusals of identified Services", n)
	}
}

func packet(code uint32, body ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

func startupPacket(params ...string) []byte {
	var body []byte
	for _, p := range params {
		body = append(body, p...)
		body = append(body, 0)
	}
	return packet(pgproto3.ProtocolVersion30, append(body, 0)...)
}

// TestProxyHostileStartup: malformed, oversized and unexpected startup
// and authentication packets end the connection with an error (or
// silently, for a cancel that names no session) and never a panic or a
// hang; the proxy serves the next client.
func TestProxyHostileStartup(t *testing.T) {
	h := newHarness(t, Spec{Grants: []Grant{{Privileges: []string{"SELECT"}, Tables: []string{"orders"}}}})
	is := h.issuer(t)
	e := &tokenEnforcer{task: h.task(t, "task_h")}
	addr := startProxy(t, h, is, e)
	ssl := packet(sslRequestCode)
	passwordMsg := func(typ byte, n uint32, body string) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{typ}, n), body...)
	}
	good := startupPacket("user", "agent", "database", "orders-db")
	for _, c := range []struct {
		name string
		in   []byte
		want string // prefix of what the proxy answers: E error, N declined, R auth request; "" nothing
	}{
		{"tiny length", []byte{0, 0, 0, 4}, "E"},
		{"huge length", []byte{0x7f, 0, 0, 0, 0, 3, 0, 0}, "E"},
		{"protocol 2", packet(2 << 16), "E"},
		{"three SSL requests", append(append(ssl, ssl...), ssl...), "NNE"},
		{"long SSL request", packet(sslRequestCode, 1, 2, 3, 4), "E"},
		{"unterminated startup", packet(pgproto3.ProtocolVersion30, 'u', 's', 'e', 'r', 0, 'x'), "E"},
		{"unknown database", startupPacket("user", "agent", "database", "nope"), "E"},
		{"replication", startupPacket("user", "agent", "database", "orders-db", "replication", "database"), "E"},
		{"query instead of password", append(clone(good), passwordMsg('Q', 9, "SELECT")...), "RE"},
		{"oversized password", append(clone(good), passwordMsg('p', 1<<24, "x")...), "RE"},
		{"unterminated password", append(clone(good), passwordMsg('p', 8, "abcd")...), "RE"},
		{"cancel for nobody", packet(cancelRequestCode, 0, 0, 0, 1, 1, 2, 3, 4), ""},
		{"truncated", []byte{0, 0, 0, 40, 0, 3}, "E"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(c.in)
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("read: %v (the proxy did not end the connection)", err)
			}
			var kinds []byte
			for rest := got; len(rest) > 0; {
				kinds = append(kinds, rest[0])
				if rest[0] == 'N' && len(rest) == 1 || rest[0] == 'N' && rest[1] != 0 {
					rest = rest[1:]
					continue
				}
				if len(rest) < 5 {
					t.Fatalf("answer %q is cut short", got)
				}
				rest = rest[1+binary.BigEndian.Uint32(rest[1:5]):]
			}
			if string(kinds) != c.want {
				t.Errorf("answer messages %q, want %q (raw %q)", kinds, c.want, got)
			}
		})
	}
	if _, err := pgconn.ConnectConfig(context.Background(), clientConfig(t, addr, "good-token")); err != nil {
		t.Errorf("a good client after the hostile ones: %v", err)
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// FuzzStartup: the startup and password readers never panic, never read
// past what a packet declares, and accept only what they can decode.
func FuzzStartup(f *testing.F) {
	f.Add(startupPacket("user", "agent", "database", "orders-db"))
	f.Add(append(packet(sslRequestCode), startupPacket("user", "a", "database", "b")...))
	f.Add(packet(cancelRequestCode, 0, 0, 0, 1, 1, 2, 3, 4))
	f.Add(append(startupPacket("user", "a", "database", "b"), 'p', 0, 0, 0, 9, 't', 'o', 'k', 0))
	f.Add(packet(3<<16|2, 'u', 0, 'v', 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var w bytes.Buffer
		st, err := readStartup(r, &w)
		if err != nil {
			return
		}
		if st.cancel == nil && st.params == nil {
			t.Fatal("a startup without parameters was accepted")
		}
		if bytes.Count(w.Bytes(), []byte{'N'}) > 2 {
			t.Fatalf("declined encryption %d times", w.Len())
		}
		before := r.Len()
		pw, err := readPassword(r)
		if err == nil && (strings.IndexByte(pw, 0) >= 0 || before-r.Len() != 6+len(pw)) {
			t.Fatalf("password %q read %d bytes", pw, before-r.Len())
		}
	})
}
