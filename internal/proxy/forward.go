package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/broker"
)

// forward sends an allowed request upstream with the service's credential
// and streams the answer back.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx := r.Context()
	svc := x.svc
	inj, cred, err := p.injector(ctx, svc, x)
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
	rl := &x.relay
	rl.p, rl.w = p, w
	out, err := rl.outbound(r, upstreamURL(svc, r, x.path), inj, p.c.MaxRequestBody)
	var broken error
	if err == nil {
		broken, err = rl.roundTrip(p.transport(svc), out)
	}
	if err != nil {
		rl.status = upstreamFailed(w, r, svc, err)
	}
	x.effect, x.status, x.in, x.out = "allow", rl.status, rl.body.n.Load()+rl.in, rl.out
	if broken != nil {
		x.reason = "the answer broke off: " + errText(broken)
	}
	if x.reason == "" && len(x.dec.Reasons) > 0 {
		x.reason = x.dec.Reasons[0]
	}
	p.record(ctx, x)
	if broken != nil {
		// The answer is incomplete: end the client connection so that the
		// client does not take it for whole.
		panic(http.ErrAbortHandler)
	}
}

// upstreamFailed answers a request the upstream did not answer and returns
// the status (499 when the client went away; nothing is written then).
func upstreamFailed(w http.ResponseWriter, r *http.Request, svc *Service, err error) int {
	status := http.StatusBadGateway
	msg := fmt.Sprintf("Service/%s: the upstream could not be reached or failed: %v", svc.Name, errText(err))
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
		msg = fmt.Sprintf("the request body is over the proxy's %d-byte limit", mbe.Limit)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return 499 // client went away
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		status = http.StatusGatewayTimeout
		msg = fmt.Sprintf("Service/%s: the upstream did not answer in time (timeouts.response %v)", svc.Name, svc.Response)
	}
	writeJSON(w, status, errorBody{Error: msg})
	return status
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

// injection puts the service's credential on an outbound request: a
// header value or a query parameter.
type injection struct {
	header string // header to set, or
	query  string // query parameter to set
	value  string
}

func (in injection) apply(h http.Header, u *url.URL) {
	switch {
	case in.header != "":
		h.Set(in.header, in.value)
	case in.query != "":
		q := u.Query()
		q.Set(in.query, in.value)
		u.RawQuery = q.Encode()
	}
}

// injector returns the injection of the service's credential (none if it
// has none) and the credential's name for the audit record.
func (p *Proxy) injector(ctx context.Context, svc *Service, x *exchange) (injection, string, error) {
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
			return injection{}, name, err
		}
		return injection{header: "Authorization", value: "Bearer " + tok.Reveal()}, name + ":" + jti, nil
	}
	cs := svc.Spec.Credential
	if cs == nil {
		return injection{}, "", nil
	}
	if p.c.Credentials == nil {
		return injection{}, cs.Name, errors.New("no credential broker")
	}
	info, sec, err := p.c.Credentials.Get(ctx, cs.Name)
	if err != nil {
		if errors.Is(err, broker.ErrNotFound) {
			return injection{}, cs.Name, fmt.Errorf("credential %s does not exist; add it with `writ credential put %s`", cs.Name, cs.Name)
		}
		return injection{}, cs.Name, errors.New("the broker could not open it")
	}
	mode := svc.Inject
	if mode == "" {
		mode = info.Type
	}
	v := sec.Reveal()
	switch mode {
	case broker.Bearer:
		return injection{header: "Authorization", value: "Bearer " + v}, cs.Name, nil
	case broker.Basic:
		return injection{header: "Authorization", value: "Basic " + base64.StdEncoding.EncodeToString([]byte(v))}, cs.Name, nil
	case broker.Header:
		name := cs.Header
		if name == "" {
			name = "Authorization"
		}
		val := v
		if cs.Template != "" {
			val = strings.ReplaceAll(cs.Template, "{value}", v)
		}
		return injection{header: name, value: val}, cs.Name, nil
	case broker.Query:
		if cs.Query == "" {
			return injection{}, cs.Name, errors.New("query injection needs credential.query in the Service")
		}
		return injection{query: cs.Query, value: v}, cs.Name, nil
	}
	return injection{}, cs.Name, fmt.Errorf("unknown injection %q", mode)
}

// transport returns the service's upstream transport, made on first use.
func (p *Proxy) transport(svc *Service) http.RoundTripper {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rt, ok := p.transports[svc]; ok {
		return rt
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
			// Pass Accept-Encoding on as the client sent it and the
			// answer's encoding back untouched, rather than asking for
			// gzip and decompressing here (CPU, and an answer of unknown
			// length that is then flushed write by write).
			DisableCompression: true,
			TLSClientConfig:    &tls.Config{RootCAs: svc.RootCAs, ServerName: svc.Spec.TLS.ServerName, MinVersion: tls.VersionTLS12},
		}
	}
	p.transports[svc] = rt
	return rt
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
