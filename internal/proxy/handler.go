package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/access"
)

// exchange is one request through the proxy: the access it asks for, what
// enforcement decided and the trip upstream. Its request and outcome are
// recorded as the request's audit event once it is finished.
type exchange struct {
	req access.Request
	out access.Outcome
	svc *Service
	// forward is an absolute-form (HTTP_PROXY) request or a CONNECT: an
	// unidentified caller is answered 407 rather than 401.
	forward bool
	relay   relay // the trip upstream, kept here to save an allocation
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.c.MCP != nil && isMCPPath(r) {
		p.c.MCP.ServeHTTP(w, r)
		return
	}
	x := &exchange{req: access.Request{ID: newRequestID(), Start: time.Now(), Method: r.Method, Source: r.RemoteAddr}}
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r, x)
		return
	}
	svc, path, forward, err := p.route(r)
	if err == nil {
		err = checkPath(r.URL.Path, r.URL.EscapedPath())
	}
	x.svc, x.req.Target, x.req.Path, x.forward = svc, svc.accessTarget(), path, forward
	if r.URL.RawQuery != "" {
		x.req.Query = r.URL.Query()
	}
	ctx := r.Context()
	caller, idErr := p.identify(ctx, r, svc)
	x.req.Caller = caller
	if err != nil && notAboutCaller(err) {
		p.refuse(w, r, x, access.Refused(err))
		return
	}
	if idErr != nil {
		p.refuse(w, r, x, access.Refused(idErr))
		return
	}
	if err != nil {
		p.refuse(w, r, x, access.Refused(err))
		return
	}
	x.req.Headers, x.req.Task = policyHeaders(r.Header), r.Header.Get(HeaderTask)
	out, err := p.c.Enforcer.Enforce(ctx, &x.req)
	if err != nil {
		p.c.Log.ErrorContext(ctx, "proxy request failed", "request_id", x.req.ID, "error", err)
	}
	if out.Effect != access.Allow || out.Class != access.OK {
		p.refuse(w, r, x, out)
		return
	}
	x.out = out
	p.forward(w, r, x)
}

// route finds the service a request is for and the path as the upstream
// sees it (decoded). forward reports an absolute-form (HTTP_PROXY)
// request.
func (p *Proxy) route(r *http.Request) (svc *Service, path string, forward bool, err error) {
	t := p.table.Load()
	if ci := connFrom(r.Context()); ci.tunnel != nil {
		return ci.tunnel.service, r.URL.Path, false, nil
	}
	if r.URL.IsAbs() {
		host, port := splitHostPort(r.URL.Host, r.URL.Scheme)
		if r.URL.Scheme != "http" {
			return nil, r.URL.Path, true, &access.Refusal{Class: access.Invalid, Message: fmt.Sprintf("forward requests must be http://; for %s:// use CONNECT (HTTPS_PROXY)", r.URL.Scheme)}
		}
		if s := t.ByHost(host, port); s != nil {
			return s, cleanPath(r.URL.Path), true, nil
		}
		return nil, cleanPath(r.URL.Path), true, &access.Refusal{Class: access.Forbidden, Reason: fmt.Sprintf("no Service matches host %s; the proxy only reaches services named by a Service document", r.URL.Host)}
	}
	if host, port := splitHostPort(r.Host, "http"); host != "" {
		if s := t.ByHost(host, port); s != nil {
			return s, cleanPath(r.URL.Path), false, nil
		}
	}
	if s, rest := t.ByPath(r.URL.Path); s != nil {
		return s, rest, false, nil
	}
	return nil, r.URL.Path, false, &access.Refusal{Class: access.NoRoute, Message: fmt.Sprintf("no Service route for %s; reverse routes are /svc/NAME/..., or set HTTP_PROXY to use the proxy as a forward proxy", r.URL.Path)}
}

func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// splitHostPort splits hostport, filling the scheme's default port.
func splitHostPort(hostport, scheme string) (string, string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
		switch scheme {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), ".")), port
}

// notAboutCaller reports a routing refusal that is not a question of who
// is asking (no route, a malformed request): it is answered before any
// identification failure.
func notAboutCaller(err error) bool {
	var rf *access.Refusal
	return errors.As(err, &rf) && (rf.Class == access.NoRoute || rf.Class == access.Invalid)
}

// sensitive headers are never shown to policy or recorded.
var sensitive = []string{"Authorization", "Proxy-Authorization", "Cookie", "Dpop"}

func policyHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if slices.Contains(sensitive, k) {
			continue
		}
		name, ok := lowerNames[k]
		if !ok {
			name = strings.ToLower(k)
		}
		out[name] = strings.Join(v, ", ")
	}
	return out
}

// lowerNames maps common header names to the lower case policy sees, so
// that policyHeaders need not make them for every request. Read only.
var lowerNames = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "Date", "Expect",
		"Idempotency-Key", "If-Match", "If-Modified-Since", "If-None-Match", "Keep-Alive", "Origin", "Pragma",
		"Range", "Referer", "Te", "Traceparent", "Tracestate", "Upgrade", "User-Agent", "Via", "X-Request-Id",
		HeaderIdentity, HeaderTask} {
		m[k] = strings.ToLower(k)
	}
	return m
}()

// errorBody is the JSON body of every refusal.
type errorBody struct {
	Error     string `json:"error"`
	Reason    string `json:"reason,omitempty"`
	Policy    string `json:"policy,omitempty"`
	Rule      string `json:"rule,omitempty"`
	Approval  string `json:"approval,omitempty"`
	RequestID string `json:"request_id"`
}

// refuse answers a request that will not be forwarded with its outcome,
// recorded first (a refusal's event is journaled before it is answered).
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, x *exchange, out access.Outcome) {
	x.out = out
	status, body := refusal(x, &x.out)
	p.c.Enforcer.Record(r.Context(), &x.req, &x.out, access.Result{Status: status})
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="writ"`)
	case http.StatusProxyAuthRequired:
		h.Set("Proxy-Authenticate", `Bearer realm="writ"`)
	}
	if x.out.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(x.out.RetryAfter.Seconds()))))
	}
	writeJSON(w, status, body)
}

// refusal is the status and JSON error of an outcome that is not
// forwarded.
func refusal(x *exchange, out *access.Outcome) (int, errorBody) {
	body := errorBody{RequestID: x.req.ID, Error: out.Message, Reason: out.Reason, Policy: out.Policy, Rule: out.Rule, Approval: out.Approval}
	switch out.Class {
	case access.Unidentified:
		if x.forward {
			return http.StatusProxyAuthRequired, body
		}
		return http.StatusUnauthorized, body
	case access.TokenRefused:
		return http.StatusUnauthorized, body
	case access.Forbidden:
		return http.StatusForbidden, body
	case access.RateLimited:
		return http.StatusTooManyRequests, body
	case access.Invalid:
		return http.StatusBadRequest, body
	case access.NoRoute:
		return http.StatusNotFound, body
	case access.NoCredential:
		// The caller learns which credential is missing, not the policy.
		return http.StatusBadGateway, errorBody{Error: out.Message, RequestID: x.req.ID}
	case access.Unavailable:
		return http.StatusServiceUnavailable, errorBody{Error: out.Message, Policy: out.Policy, Rule: out.Rule, RequestID: x.req.ID}
	}
	return http.StatusInternalServerError, body
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
