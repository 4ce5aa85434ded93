package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/broker"
)

// Credentials gives the gateway the upstream credentials it injects.
type Credentials interface {
	Get(ctx context.Context, name string) (broker.Info, broker.Secret, error)
}

// ErrUnavailable reports that an upstream has no live session: it is
// starting, restarting after a crash, or cannot be reached.
var ErrUnavailable = errors.New("the MCP server is not available")

// inheritedEnv are the variables of writ's own environment a stdio server
// receives; everything else (writ's admin token, cloud credentials, ...)
// stays out of it.
var inheritedEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "TZ",
	"NODE_PATH", "npm_config_cache", "NPM_CONFIG_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"}

// upstream keeps one client session to one MCP server alive: it connects
// (or starts the stdio program), waits for the session to end, and
// reconnects (restarts) with backoff. The gateway multiplexes every
// agent's requests over this one session.
type upstream struct {
	srv   *Server
	creds Credentials
	log   *slog.Logger
	after func(time.Duration) <-chan time.Time
	now   func() time.Time
	// onSession runs (in its own goroutine) after each successful
	// connect, and onToolsChanged when the server says its tools changed.
	onSession      func(ctx context.Context, cs *sdk.ClientSession)
	onToolsChanged func(ctx context.Context)

	mu       sync.Mutex
	cs       *sdk.ClientSession
	ready    chan struct{} // closed while cs is set
	starts   int
	lastErr  error
	cancel   context.CancelFunc
	done     chan struct{}
	closed   bool
	ctx      context.Context
	redactor func(string) string
	// hc is the HTTP client of the shared session (nil for stdio), for
	// the fast path.
	hc *http.Client
}

func newUpstream(srv *Server, creds Credentials, log *slog.Logger, now func() time.Time, after func(time.Duration) <-chan time.Time) *upstream {
	return &upstream{srv: srv, creds: creds, log: log.With("server", srv.Name), after: after, now: now,
		ready: make(chan struct{}), done: make(chan struct{}), redactor: func(s string) string { return s }}
}

// start runs the supervision loop until stop.
func (u *upstream) start() {
	ctx, cancel := context.WithCancel(context.Background())
	u.mu.Lock()
	u.ctx, u.cancel = ctx, cancel
	u.mu.Unlock()
	go u.run(ctx)
}

// stop ends the session (terminating a stdio program) and the loop.
func (u *upstream) stop() {
	u.mu.Lock()
	u.closed = true
	cancel, cs := u.cancel, u.cs
	u.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if cs != nil {
		cs.Close()
	}
	<-u.done
}

func (u *upstream) run(ctx context.Context) {
	defer close(u.done)
	backoff := u.srv.RestartInitial
	for ctx.Err() == nil {
		began := u.now()
		cs, err := u.connect(ctx)
		if err == nil {
			u.mu.Lock()
			if u.closed {
				// stop ran while connect was under way: it found no
				// session to close, so this loop closes the one it got.
				// Without this the loop would wait on a session nobody
				// ends, and stop would wait on the loop.
				u.mu.Unlock()
				cs.Close()
				return
			}
			u.cs, u.lastErr = cs, nil
			u.starts++
			close(u.ready)
			u.mu.Unlock()
			u.log.InfoContext(ctx, "MCP server connected", "starts", u.starts)
			if u.onSession != nil {
				go u.onSession(ctx, cs)
			}
			werr := cs.Wait()
			u.mu.Lock()
			u.cs, u.ready = nil, make(chan struct{})
			u.mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			err = fmt.Errorf("session ended: %v", werr)
			if werr == nil {
				err = errors.New("session ended")
			}
		}
		if ctx.Err() != nil {
			return
		}
		u.mu.Lock()
		u.lastErr = err
		u.mu.Unlock()
		if u.now().Sub(began) >= u.srv.RestartMax {
			backoff = u.srv.RestartInitial
		}
		u.log.WarnContext(ctx, "MCP server unavailable; retrying", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-u.after(backoff):
		}
		backoff = min(2*backoff, u.srv.RestartMax)
	}
}

// connect starts or dials the upstream and initialises the shared
// session.
func (u *upstream) connect(ctx context.Context) (*sdk.ClientSession, error) {
	cs, hc, err := u.dial(ctx, &sdk.ClientOptions{
		// The session is every agent's: it declares no sampling,
		// elicitation or roots, so the server cannot ask them of it
		// outside a call, where no agent could be told apart. Input
		// requests within a call come back in its answer (input.go).
		Capabilities: &sdk.ClientCapabilities{},
		ToolListChangedHandler: func(ctx context.Context, _ *sdk.ToolListChangedRequest) {
			if u.onToolsChanged != nil {
				u.onToolsChanged(ctx)
			}
		},
	})
	if err == nil {
		u.mu.Lock()
		u.hc = hc
		u.mu.Unlock()
	}
	return cs, err
}

// dial starts or dials the upstream (a stdio server: another process of
// it) and initialises a session of a client with opts. The client passes
// input-required answers on instead of fulfilling them (input.go).
func (u *upstream) dial(ctx context.Context, opts *sdk.ClientOptions, mw ...sdk.Middleware) (*sdk.ClientSession, *http.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, u.srv.Connect)
	defer cancel()
	var secret broker.Secret
	if c := u.srv.Spec.Credential; c != nil {
		_, s, err := u.creds.Get(ctx, c.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("get credential %s: %w", c.Name, err)
		}
		secret = s
		val := s.Reveal()
		u.mu.Lock()
		u.redactor = func(line string) string {
			if len(val) >= 4 {
				return strings.ReplaceAll(line, val, "[REDACTED]")
			}
			return line
		}
		u.mu.Unlock()
	}
	o := *opts
	o.Logger = u.log
	o.MultiRoundTrip = &sdk.MultiRoundTripOptions{Disabled: true}
	client := sdk.NewClient(&sdk.Implementation{Name: "writ-mcp-gateway", Version: "1"}, &o)
	client.AddReceivingMiddleware(mw...)
	var (
		t  sdk.Transport
		hc *http.Client
	)
	if u.srv.Stdio() {
		cmd := exec.Command(u.srv.Spec.Command, u.srv.Spec.Args...)
		cmd.Dir = u.srv.Spec.Dir
		for _, k := range inheritedEnv {
			if v, ok := os.LookupEnv(k); ok {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
		}
		for k, v := range u.srv.Spec.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if c := u.srv.Spec.Credential; c != nil {
			cmd.Env = append(cmd.Env, c.Env+"="+secret.Reveal())
		}
		cmd.Stderr = &lineLogger{log: u.log, redact: u.redact}
		t = &sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}
	} else {
		hc = &http.Client{Transport: &injectTransport{base: upstreamTransport, srv: u.srv, secret: secret}}
		t = &sdk.StreamableClientTransport{Endpoint: u.srv.URL.String(), HTTPClient: hc}
	}
	cs, err := client.Connect(ctx, t, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", u.srv.Target(), err)
	}
	return cs, hc, nil
}

// upstreamTransport carries the requests to URL upstreams: the default
// transport, keeping more idle connections per upstream than its two (every
// agent's calls share an upstream).
var upstreamTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()

func (u *upstream) redact(s string) string {
	u.mu.Lock()
	r := u.redactor
	u.mu.Unlock()
	return r(s)
}

// session returns the live session, waiting for one until ctx ends.
func (u *upstream) session(ctx context.Context) (*sdk.ClientSession, error) {
	for {
		u.mu.Lock()
		cs, ready, lastErr, closed := u.cs, u.ready, u.lastErr, u.closed
		u.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("%s: %w (it was removed)", u.srv.Target(), ErrUnavailable)
		}
		if cs != nil {
			return cs, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("%s: %w: %v", u.srv.Target(), ErrUnavailable, lastErr)
			}
			return nil, fmt.Errorf("%s: %w", u.srv.Target(), ErrUnavailable)
		}
	}
}

// Starts reports how many sessions the upstream has had.
func (u *upstream) Starts() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.starts
}

// injectTransport adds the broker credential to every request to a URL
// upstream. The agent's own Authorization never reaches it: the gateway's
// client builds its requests itself.
type injectTransport struct {
	base   http.RoundTripper
	srv    *Server
	secret broker.Secret
}

func (t *injectTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.srv.Spec.Credential == nil {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set(t.srv.Header, strings.ReplaceAll(t.srv.Template, "{value}", t.secret.Reveal()))
	return t.base.RoundTrip(r)
}

// lineLogger writes each line a stdio server prints on stderr to writ's
// log, tagged with the server's name. Lines are cut at 4 KiB and the
// server's own credential is redacted.
type lineLogger struct {
	log    *slog.Logger
	redact func(string) string
	mu     sync.Mutex
	buf    []byte
}

const maxStderrLine = 4 << 10

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > maxStderrLine {
				l.emit(l.buf[:maxStderrLine])
				l.buf = l.buf[:0]
			}
			return len(p), nil
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) emit(line []byte) {
	if len(line) > maxStderrLine {
		line = line[:maxStderrLine]
	}
	s := strings.TrimRight(string(line), "\r")
	if s == "" {
		return
	}
	l.log.Info("MCP server stderr", "line", l.redact(s))
}
