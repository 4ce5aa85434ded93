package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/broker"
)

// stripped are request headers that carry writ credentials or caller
// choices; they never reach an upstream (no token passthrough). Hop-by-hop
// headers are removed by the reverse proxy itself.
var stripped = []string{"Authorization", "Proxy-Authorization", "Dpop", HeaderIdentity, HeaderTask, "Proxy-Connection"}

type outKey struct{}

// outbound is what Rewrite needs for one request.
type outbound struct {
	target *url.URL
	inject func(h http.Header, q url.Values) (queryChanged bool)
}

// forward sends an allowed request upstream with the service's credential
// and streams the answer back.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx := r.Context()
	svc := x.svc
	inject, cred, err := p.injector(ctx, svc, x)
	x.cred = cred
	if err != nil {
		p.c.Log.ErrorContext(ctx, "prepare upstream credential", "request_id", x.id, "service", svc.Name, "credential", cred, "error", err)
		x.effect, x.reason, x.status = "allow", "upstream credential unavailable", http.StatusBadGateway
		writeJSON(w, http.StatusBadGateway, errorBody{Error: fmt.Sprintf("the upstream credential of Service/%s is unavailable: %v", svc.Name, err), RequestID: x.id})
		p.record(ctx, x)
		return
	}
	if err := p.recordDecision(ctx, x); err != nil {
		p.failClosed(w, ctx, x, err)
		return
	}
	target := upstreamURL(svc, r, x.path)
	cw := &countingWriter{ResponseWriter: w}
	ctx = context.WithValue(ctx, outKey{}, &outbound{target: target, inject: inject})
	out := r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		var body io.ReadCloser = r.Body
		if p.c.MaxRequestBody > 0 {
			body = http.MaxBytesReader(w, body, p.c.MaxRequestBody)
		}
		out.Body = &countingBody{ReadCloser: body}
	}
	p.upstream(svc).rp.ServeHTTP(cw, out)
	x.effect, x.status, x.out = "allow", cw.status(), cw.n
	if x.reason == "" && len(x.dec.Reasons) > 0 {
		x.reason = x.dec.Reasons[0]
	}
	if b, ok := out.Body.(*countingBody); ok {
		x.in = b.n
	}
	p.record(ctx, x)
}

// upstreamURL is the service's base URL joined with the request's path
// (escaped as the client sent it, less a reverse route's prefix) and query.
func upstreamURL(svc *Service, r *http.Request, path string) *url.URL {
	u := *svc.Upstream
	esc := r.URL.EscapedPath()
	if path != r.URL.Path { // a reverse route: strip the prefix
		if strings.HasPrefix(esc, svc.Prefix) {
			esc = esc[len(svc.Prefix)-1:]
		} else {
			esc = (&url.URL{Path: path}).EscapedPath()
		}
	}
	if esc == "" {
		esc = "/"
	}
	raw := u.EscapedPath() + esc
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
	}
	u.RawQuery = r.URL.RawQuery
	return &u
}

// injector returns the function that puts the service's credential on an
// outbound request and the credential's name for the audit record.
func (p *Proxy) injector(ctx context.Context, svc *Service, x *exchange) (func(http.Header, url.Values) bool, string, error) {
	if t := svc.Spec.Token; t != nil {
		aud := t.Audience
		if aud == "" {
			aud = svc.Name
		}
		tok, jti, err := broker.Mint(ctx, p.c.Signer, broker.MintParams{
			Issuer: p.c.Issuer, Subject: x.caller.SpiffeID, Instance: x.caller.Instance, Task: x.task.ID,
			Audience: aud, Scopes: t.Scopes, TTL: svc.TokenTTL, Now: p.c.Now(),
		})
		name := "minted:" + aud
		if err != nil {
			return nil, name, err
		}
		return func(h http.Header, _ url.Values) bool { h.Set("Authorization", "Bearer "+tok.Reveal()); return false }, name + ":" + jti, nil
	}
	cs := svc.Spec.Credential
	if cs == nil {
		return nil, "", nil
	}
	if p.c.Credentials == nil {
		return nil, cs.Name, errors.New("no credential broker")
	}
	info, sec, err := p.c.Credentials.Get(ctx, cs.Name)
	if err != nil {
		if errors.Is(err, broker.ErrNotFound) {
			return nil, cs.Name, fmt.Errorf("credential %s does not exist; add it with `writ credential put %s`", cs.Name, cs.Name)
		}
		return nil, cs.Name, errors.New("the broker could not open it")
	}
	mode := svc.Inject
	if mode == "" {
		mode = info.Type
	}
	v := sec.Reveal()
	switch mode {
	case broker.Bearer:
		return func(h http.Header, _ url.Values) bool { h.Set("Authorization", "Bearer "+v); return false }, cs.Name, nil
	case broker.Basic:
		enc := "Basic " + base64.StdEncoding.EncodeToString([]byte(v))
		return func(h http.Header, _ url.Values) bool { h.Set("Authorization", enc); return false }, cs.Name, nil
	case broker.Header:
		name := cs.Header
		if name == "" {
			name = "Authorization"
		}
		val := v
		if cs.Template != "" {
			val = strings.ReplaceAll(cs.Template, "{value}", v)
		}
		return func(h http.Header, _ url.Values) bool { h.Set(name, val); return false }, cs.Name, nil
	case broker.Query:
		if cs.Query == "" {
			return nil, cs.Name, errors.New("query injection needs credential.query in the Service")
		}
		return func(_ http.Header, q url.Values) bool { q.Set(cs.Query, v); return true }, cs.Name, nil
	}
	return nil, cs.Name, fmt.Errorf("unknown injection %q", mode)
}

// upstream returns the service's transport and reverse proxy.
func (p *Proxy) upstream(svc *Service) *upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.transports[svc]; ok {
		return u
	}
	var rt http.RoundTripper
	if p.c.Transport != nil {
		rt = p.c.Transport(svc)
	} else {
		d := &net.Dialer{Timeout: svc.Connect, KeepAlive: 30 * time.Second}
		rt = &http.Transport{
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   svc.Connect,
			ResponseHeaderTimeout: svc.Response,
			IdleConnTimeout:       svc.Idle,
			ExpectContinueTimeout: time.Second,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			ForceAttemptHTTP2:     true,
			TLSClientConfig:       &tls.Config{RootCAs: svc.RootCAs, ServerName: svc.Spec.TLS.ServerName, MinVersion: tls.VersionTLS12},
		}
	}
	u := &upstream{rt: rt}
	u.rp = &httputil.ReverseProxy{
		Transport:  rt,
		BufferPool: bufPool{},
		ErrorLog:   nil,
		Rewrite: func(pr *httputil.ProxyRequest) {
			o := pr.In.Context().Value(outKey{}).(*outbound)
			pr.Out.URL = o.target
			pr.Out.Host = ""
			for _, h := range stripped {
				pr.Out.Header.Del(h)
			}
			if o.inject != nil {
				q := pr.Out.URL.Query()
				if o.inject(pr.Out.Header, q) {
					pr.Out.URL.RawQuery = q.Encode()
				}
			}
			if _, ok := pr.Out.Header["User-Agent"]; !ok {
				pr.Out.Header["User-Agent"] = nil
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status := http.StatusBadGateway
			msg := fmt.Sprintf("Service/%s: the upstream could not be reached or failed: %v", svc.Name, errText(err))
			var mbe *http.MaxBytesError
			var ne net.Error
			switch {
			case errors.As(err, &mbe):
				status = http.StatusRequestEntityTooLarge
				msg = fmt.Sprintf("the request body is over the proxy's %d-byte limit", mbe.Limit)
			case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
				status = 499 // client went away; nothing is written
			case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
				status = http.StatusGatewayTimeout
				msg = fmt.Sprintf("Service/%s: the upstream did not answer in time (timeouts.response %v)", svc.Name, svc.Response)
			}
			if cw, ok := w.(*countingWriter); ok {
				cw.failed = status
			}
			if status == 499 {
				return
			}
			writeJSON(w, status, errorBody{Error: msg})
		},
	}
	p.transports[svc] = u
	return u
}

// errText shortens transport errors: they are user-facing and must not
// carry anything but the failure.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

type bufPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufPool) Put(b []byte) { buffers.Put(&b) }

// countingWriter records the status and body bytes of a response.
type countingWriter struct {
	http.ResponseWriter
	code   int
	failed int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 && code >= 200 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) status() int {
	if c.failed != 0 {
		return c.failed
	}
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
