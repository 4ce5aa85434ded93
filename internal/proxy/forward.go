package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/access"
)

// forward sends an allowed request upstream with the credential the
// outcome carries and streams the answer back.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx := r.Context()
	svc := x.svc
	rl := &x.relay
	rl.p, rl.w = p, w
	out, err := rl.outbound(r, upstreamURL(svc, r, x.req.Path), x.out.Credential, p.c.MaxRequestBody)
	var broken error
	if err == nil {
		broken, err = rl.roundTrip(p.transport(svc), out)
	}
	if err != nil {
		rl.status = upstreamFailed(w, r, svc, err)
	}
	res := access.Result{Status: rl.status, In: rl.body.n.Load() + rl.in, Out: rl.out}
	if broken != nil {
		res.Reason = "the answer broke off: " + errText(broken)
	} else if len(x.out.Reasons) > 0 {
		res.Reason = x.out.Reasons[0]
	}
	p.c.Enforcer.Record(ctx, &x.req, &x.out, res)
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

// inject puts the credential on an outbound request: a header value or
// a query parameter.
func inject(c access.Credential, h http.Header, u *url.URL) {
	switch {
	case c.Header != "":
		h.Set(c.Header, c.Reveal())
	case c.Query != "":
		q := u.Query()
		q.Set(c.Query, c.Reveal())
		u.RawQuery = q.Encode()
	}
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
