package dbcreds

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/writ-dev/writ/internal/access"
)

// Enforcer is the enforcement core (access.Enforcer).
type Enforcer interface {
	Identify(ctx context.Context, conn *access.Conn, p *access.Presented, t *access.Target) (*access.Caller, error)
	Enforce(ctx context.Context, req *access.Request) (access.Outcome, error)
	Record(ctx context.Context, req *access.Request, out *access.Outcome, res access.Result)
}

// ProxyConfig configures a [Proxy]. Enforcer and Issuer are required.
type ProxyConfig struct {
	Enforcer Enforcer
	Issuer   *Issuer
	Log      *slog.Logger
	// HandshakeTimeout bounds the startup and authentication of a client
	// and the upstream login (default 10s).
	HandshakeTimeout time.Duration
}

// Proxy is the PostgreSQL wire-protocol proxy: agents connect to it as to
// a PostgreSQL server, with the Service's name as the database, and reach
// the upstream as their task's role without ever seeing its password.
type Proxy struct {
	c        ProxyConfig
	services atomic.Pointer[map[string]*Service]

	mu      sync.Mutex
	lns     map[net.Listener]bool
	conns   map[net.Conn]bool
	cancels map[uint32]cancelTarget // by the process id the client was given
	closed  bool
	wg      sync.WaitGroup
}

// cancelTarget is where a client's CancelRequest goes.
type cancelTarget struct {
	secret   [4]byte // the key the client was given
	upstream net.Addr
	pid      uint32
	key      []byte
}

// NewProxy returns a Proxy serving no Service until [Proxy.SetServices].
func NewProxy(c ProxyConfig) (*Proxy, error) {
	if c.Enforcer == nil || c.Issuer == nil {
		return nil, errors.New("create PostgreSQL proxy: enforcer and issuer are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	p := &Proxy{c: c, lns: map[net.Listener]bool{}, conns: map[net.Conn]bool{}, cancels: map[uint32]cancelTarget{}}
	p.services.Store(&map[string]*Service{})
	return p, nil
}

// SetServices installs the Services of kind postgres, by name.
func (p *Proxy) SetServices(m map[string]*Service) { p.services.Store(&m) }

// Serve accepts connections on ln until it is closed.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	p.lns[ln] = true
	p.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return nil
		}
		p.conns[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			p.serveConn(c)
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

// Close stops the listeners and ends every session.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for ln := range p.lns {
		ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// SQLSTATE codes of the refusals.
const (
	codeProtocol     = "08P01" // protocol_violation
	codeAuthSpec     = "28000" // invalid_authorization_specification
	codeBadPassword  = "28P01" // invalid_password
	codeInsufficient = "42501" // insufficient_privilege
	codeNoDatabase   = "3D000" // invalid_catalog_name
	codeUnavailable  = "08006" // connection_failure
	codeTooMany      = "53300" // too_many_connections
)

// maxStartupLen is PostgreSQL's own limit on a startup packet.
const maxStartupLen = 10000

// maxPasswordLen bounds the password message (a writ access token).
const maxPasswordLen = 16 << 10

// Startup request codes.
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

// startup is what a client's first packet asked for.
type startup struct {
	params map[string]string
	// cancel is set for a CancelRequest instead.
	cancel *pgproto3.CancelRequest
	// minor is the minor protocol version asked for (3.minor).
	minor uint16
}

// readStartup reads the client's startup packet, declining SSL and GSS
// encryption (the proxy listens on loopback) by answering 'N'.
func readStartup(r io.Reader, w io.Writer) (startup, error) {
	var declined int
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return startup{}, fmt.Errorf("read startup packet: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n < 8 || n > maxStartupLen {
			return startup{}, fmt.Errorf("startup packet of %d bytes; a PostgreSQL client sends 8 to %d", n, maxStartupLen)
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return startup{}, fmt.Errorf("read startup packet: %w", err)
		}
		code := binary.BigEndian.Uint32(body)
		switch {
		case code == sslRequestCode || code == gssEncRequestCode:
			if declined++; declined > 2 || n != 8 {
				return startup{}, errors.New("repeated or malformed encryption request")
			}
			if _, err := w.Write([]byte{'N'}); err != nil {
				return startup{}, err
			}
			continue
		case code == cancelRequestCode:
			var cr pgproto3.CancelRequest
			if err := cr.Decode(body); err != nil {
				return startup{}, fmt.Errorf("cancel request: %w", err)
			}
			return startup{cancel: &cr}, nil
		case code>>16 != 3:
			return startup{}, fmt.Errorf("protocol version %d.%d is not supported; use 3.0", code>>16, code&0xffff)
		}
		minor := uint16(code & 0xffff)
		if minor != 0 {
			// Decode only knows 3.0 and 3.2; read later minors as 3.0 and
			// negotiate down.
			binary.BigEndian.PutUint32(body, pgproto3.ProtocolVersion30)
		}
		var sm pgproto3.StartupMessage
		if err := sm.Decode(body); err != nil {
			return startup{}, fmt.Errorf("startup message: %w", err)
		}
		return startup{params: sm.Parameters, minor: minor}, nil
	}
}

// readPassword reads a PasswordMessage ('p').
func readPassword(r io.Reader) (string, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	if hdr[0] != 'p' {
		return "", fmt.Errorf("expected a password message, got message type %q", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 5 || n > maxPasswordLen {
		return "", fmt.Errorf("password message of %d bytes; at most %d", n, maxPasswordLen)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	var pm pgproto3.PasswordMessage
	if err := pm.Decode(body); err != nil || len(pm.Password)+1 != len(body) {
		return "", errors.New("malformed password message")
	}
	return pm.Password, nil
}

// send encodes msgs to w in one write.
func send(w io.Writer, msgs ...pgproto3.BackendMessage) error {
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	_, err := w.Write(buf)
	return err
}

// fatal answers a refusal and ends the session.
func fatal(w io.Writer, code, msg, hint string) {
	send(w, &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg, Hint: hint})
}

// forwarded are the startup parameters passed on to the upstream session;
// others are ignored.
var forwarded = []string{"application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "extra_float_digits", "search_path"}

func newRequestID() string { return "req_" + rand.Text()[:16] }

func (p *Proxy) serveConn(c net.Conn) {
	relayed := false
	defer func() {
		if !relayed {
			lingerClose(c)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.SetDeadline(time.Now().Add(p.c.HandshakeTimeout))
	st, err := readStartup(c, c)
	if err != nil {
		fatal(c, codeProtocol, err.Error(), "")
		return
	}
	if st.cancel != nil {
		p.forwardCancel(ctx, st.cancel)
		return
	}
	var neg []string
	for k := range st.params {
		if strings.HasPrefix(k, "_pq_.") {
			neg = append(neg, k)
		}
	}
	if st.minor != 0 || len(neg) > 0 {
		if err := send(c, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: neg}); err != nil {
			return
		}
	}
	if st.params["replication"] != "" && st.params["replication"] != "false" && st.params["replication"] != "0" {
		fatal(c, codeInsufficient, "replication connections are not proxied", "")
		return
	}
	name := st.params["database"]
	svc := (*p.services.Load())[name]
	if svc == nil {
		fatal(c, codeNoDatabase, fmt.Sprintf("no Service %q of kind postgres", name),
			"connect with the Service's name as the database (dbname=NAME); list Services with `writ get Service`")
		return
	}
	req := &access.Request{ID: newRequestID(), Start: time.Now(), Target: svc.Target(), Method: "CONNECT", Path: "/", Source: c.RemoteAddr().String()}
	if u := st.params["user"]; strings.HasPrefix(u, "task_") {
		req.Task = u
	}
	conn := &access.Conn{Local: addrPort(c.LocalAddr()), Remote: addrPort(c.RemoteAddr())}
	defer conn.Close()
	caller, err := p.c.Enforcer.Identify(ctx, conn, &access.Presented{}, req.Target)
	if err != nil {
		// Not a registered local process: ask for a writ access token
		// as the password.
		if err := send(c, &pgproto3.AuthenticationCleartextPassword{}); err != nil {
			return
		}
		tok, rerr := readPassword(c)
		if rerr != nil {
			p.refuse(ctx, c, req, access.Refused(err), codeAuthSpec)
			return
		}
		if tok == "" {
			p.refuse(ctx, c, req, access.Refused(err), codeAuthSpec)
			return
		}
		caller, err = p.c.Enforcer.Identify(ctx, conn, &access.Presented{Token: &access.TokenProof{Authorization: "Bearer " + tok}}, req.Target)
		if err != nil {
			p.refuse(ctx, c, req, access.Refused(err), codeBadPassword)
			return
		}
	}
	req.Caller = caller
	out, err := p.c.Enforcer.Enforce(ctx, req)
	if err != nil {
		p.c.Log.ErrorContext(ctx, "PostgreSQL proxy access failed", "request_id", req.ID, "error", err)
	}
	if out.Effect != access.Allow || out.Class != access.OK {
		p.refuse(ctx, c, req, out, codeInsufficient)
		return
	}
	login, err := p.c.Issuer.Issue(ctx, svc, out.Task)
	if err != nil {
		p.c.Log.ErrorContext(ctx, "issue database role", "request_id", req.ID, "service", svc.Name, "task", out.Task.ID, "error", err)
		msg := fmt.Sprintf("no database role for %s: %v", svc.target.Ref, err)
		if errors.Is(err, ErrNoTask) {
			msg = "dynamic database credentials are issued per task"
		}
		fatal(c, codeInsufficient, msg, "connect with user=TASK_ID (`writ task open`), or send a task's access token as the password")
		out.Class, out.Message, out.Reason = access.NoCredential, msg, "database role unavailable"
		p.c.Enforcer.Record(ctx, req, &out, access.Result{Status: 502})
		return
	}
	up, err := p.dialUpstream(ctx, svc, login, st.params)
	if err != nil {
		p.c.Log.ErrorContext(ctx, "PostgreSQL upstream login", "request_id", req.ID, "service", svc.Name, "role", login.Role, "error", err)
		fatal(c, codeUnavailable, fmt.Sprintf("%s is unavailable: could not log in upstream as the task's role", svc.target.Ref), "")
		out.Class, out.Message, out.Reason = access.NoCredential, "upstream login failed", "upstream login failed"
		p.c.Enforcer.Record(ctx, req, &out, access.Result{Status: 502})
		return
	}
	defer up.Conn.Close()
	pid, secret := p.register(up)
	defer p.unregister(pid)
	msgs := []pgproto3.BackendMessage{&pgproto3.AuthenticationOk{}}
	for k, v := range up.ParameterStatuses {
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: k, Value: v})
	}
	msgs = append(msgs, &pgproto3.BackendKeyData{ProcessID: pid, SecretKey: secret[:]}, &pgproto3.ReadyForQuery{TxStatus: up.TxStatus})
	if err := send(c, msgs...); err != nil {
		p.c.Enforcer.Record(ctx, req, &out, access.Result{Status: 499})
		return
	}
	c.SetDeadline(time.Time{})
	relayed = true
	in, back := relay(c, up.Conn)
	p.c.Enforcer.Record(ctx, req, &out, access.Result{Status: 200, In: in, Out: back})
}

// lingerClose closes a connection refused during the handshake so that
// the client reads the error: it ends the sending side, then reads what
// the client still sends for a moment (bounded) before closing, as a
// close with unread input would reset the connection and lose the error.
func lingerClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		tc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
	}
	c.Close()
}

// refuse answers an outcome that does not reach the upstream, recorded
// first.
func (p *Proxy) refuse(ctx context.Context, c net.Conn, req *access.Request, out access.Outcome, code string) {
	status := 403
	switch out.Class {
	case access.Unidentified:
		status, code = 401, codeAuthSpec
	case access.TokenRefused:
		status, code = 401, codeBadPassword
	case access.RateLimited:
		status, code = 429, codeTooMany
	case access.Unavailable, access.Internal:
		status, code = 503, codeUnavailable
	}
	p.c.Enforcer.Record(ctx, req, &out, access.Result{Status: status})
	msg := out.Message
	if out.Reason != "" && out.Reason != msg {
		msg += ": " + out.Reason
	}
	hint := ""
	if out.Class == access.Unidentified {
		hint = "run the agent as a registered process on this host (`writ entry create`), or send a writ access token for this Service as the password (PGPASSWORD)"
	}
	fatal(c, code, msg, hint)
}

// dialUpstream logs in to the Service's database as the task's role and
// takes over the connection.
func (p *Proxy) dialUpstream(ctx context.Context, svc *Service, login Login, params map[string]string) (*pgconn.HijackedConn, error) {
	cfg, err := pgconn.ParseConfig(svc.Upstream)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = login.Role, login.Password.Reveal()
	cfg.MinProtocolVersion, cfg.MaxProtocolVersion = "3.0", "3.0"
	cfg.Fallbacks = nil
	for _, k := range forwarded {
		if v, ok := params[k]; ok {
			cfg.RuntimeParams[k] = v
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.HandshakeTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, pgMessage(err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	return pc.Hijack()
}

// register gives a session the process id and key its client will cancel
// with (not the upstream's: the client never learns the upstream's key).
func (p *Proxy) register(up *pgconn.HijackedConn) (uint32, [4]byte) {
	var secret [4]byte
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		var b [8]byte
		rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if _, taken := p.cancels[pid]; pid == 0 || taken {
			continue
		}
		copy(secret[:], b[4:])
		p.cancels[pid] = cancelTarget{secret: secret, upstream: up.Conn.RemoteAddr(), pid: up.PID, key: up.SecretKey}
		return pid, secret
	}
}

func (p *Proxy) unregister(pid uint32) {
	p.mu.Lock()
	delete(p.cancels, pid)
	p.mu.Unlock()
}

// forwardCancel passes a client's CancelRequest on to the upstream session
// it names, if the key matches.
func (p *Proxy) forwardCancel(ctx context.Context, cr *pgproto3.CancelRequest) {
	p.mu.Lock()
	t, ok := p.cancels[cr.ProcessID]
	p.mu.Unlock()
	if !ok || len(cr.SecretKey) != 4 || [4]byte(cr.SecretKey) != t.secret {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	uc, err := d.DialContext(ctx, t.upstream.Network(), t.upstream.String())
	if err != nil {
		p.c.Log.WarnContext(ctx, "forward cancel request", "error", err)
		return
	}
	defer uc.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: t.pid, SecretKey: t.key}).Encode(nil)
	if err == nil {
		uc.Write(buf)
	}
}

// relay copies both ways until either side ends, and returns the bytes
// sent upstream and back.
func relay(client, upstream net.Conn) (in, out int64) {
	done := make(chan struct{})
	go func() {
		in, _ = io.Copy(upstream, client)
		upstream.Close()
		close(done)
	}()
	out, _ = io.Copy(client, upstream)
	client.Close()
	<-done
	return in, out
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}
