package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/journal"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/store"
)

// exchange is one request through the proxy: what it asked, who asked,
// what was decided and what came of it. It becomes the audit event.
type exchange struct {
	id      string
	start   time.Time
	svc     *Service
	caller  *Caller
	method  string
	path    string
	query   url.Values
	task    store.Task
	dec     policy.Decision
	effect  string // allow or deny, after approval
	reason  string
	cred    string
	appr    string // approval id
	status  int
	in, out int64
	source  string
	latency time.Duration
	// decided is set once the decision to allow is in the journal, under
	// ticket; the final event carries eventID.
	decided bool
	ticket  journal.Ticket
	eventID string

	// Parts of the request's path kept here to save allocations.
	preq  policy.Request // the policy question
	relay relay          // the trip upstream
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{id: newRequestID(), start: time.Now(), method: r.Method, source: r.RemoteAddr}
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r, x)
		return
	}
	svc, path, forward, err := p.route(r)
	x.svc, x.path = svc, path
	if r.URL.RawQuery != "" {
		x.query = r.URL.Query()
	}
	ctx := r.Context()
	caller, idErr := p.identify(ctx, r, svc, forward)
	x.caller = caller
	if err != nil && notAboutCaller(err) {
		p.refuse(w, r, x, err)
		return
	}
	if idErr != nil {
		p.refuse(w, r, x, idErr)
		return
	}
	if err != nil {
		p.refuse(w, r, x, err)
		return
	}
	if err := p.enforce(ctx, r, x); err != nil {
		p.refuse(w, r, x, err)
		return
	}
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
			return nil, r.URL.Path, true, &denial{status: http.StatusBadRequest, msg: fmt.Sprintf("forward requests must be http://; for %s:// use CONNECT (HTTPS_PROXY)", r.URL.Scheme)}
		}
		if s := t.ByHost(host, port); s != nil {
			return s, cleanPath(r.URL.Path), true, nil
		}
		return nil, cleanPath(r.URL.Path), true, &denial{status: http.StatusForbidden, reason: fmt.Sprintf("no Service matches host %s; the proxy only reaches services named by a Service document", r.URL.Host)}
	}
	if host, port := splitHostPort(r.Host, "http"); host != "" {
		if s := t.ByHost(host, port); s != nil {
			return s, cleanPath(r.URL.Path), false, nil
		}
	}
	if s, rest := t.ByPath(r.URL.Path); s != nil {
		return s, rest, false, nil
	}
	return nil, r.URL.Path, false, &denial{status: http.StatusNotFound, msg: fmt.Sprintf("no Service route for %s; reverse routes are /svc/NAME/..., or set HTTP_PROXY to use the proxy as a forward proxy", r.URL.Path)}
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
	var d *denial
	return errors.As(err, &d) && (d.status == http.StatusNotFound || d.status == http.StatusBadRequest)
}

// denial is a refusal with its status; reason is the policy's reason
// (JSON "reason"), msg the human-readable error.
type denial struct {
	status     int
	msg        string
	reason     string
	retryAfter time.Duration
}

func (d *denial) Error() string {
	if d.msg != "" {
		return d.msg
	}
	return d.reason
}

// enforce checks revocation, the task and policy, waits for approval when
// policy asks for it, and charges the task's budget.
func (p *Proxy) enforce(ctx context.Context, r *http.Request, x *exchange) error {
	c, svc := x.caller, x.svc
	now := p.c.Now()
	if err := p.checkRevoked(c); err != nil {
		return err
	}
	taskID := c.Task
	if h := r.Header.Get(HeaderTask); h != "" && taskID == "" {
		taskID = h
	} else if h != "" && h != taskID {
		return &denial{status: http.StatusBadRequest, msg: fmt.Sprintf("the %s header names task %s but the access token is for task %s", HeaderTask, h, taskID)}
	}
	var ptask policy.Task
	if taskID != "" {
		t, err := p.openTask(ctx, c, taskID, now)
		if err != nil {
			return err
		}
		x.task = t
		ptask = policy.Task{ID: t.ID, Purpose: t.Purpose, OnBehalfOf: t.OnBehalfOf, Calls: t.Calls}
	}
	req := &x.preq
	*req = policy.Request{
		Kind:     policy.KindHTTP,
		Subject:  policy.Subject{SpiffeID: c.SpiffeID, Labels: c.Labels},
		Instance: c.Instance,
		Task:     ptask,
		HTTP: policy.HTTPRequest{Service: svc.Name, Method: x.method, Path: x.path,
			Headers: policyHeaders(r.Header), Query: firstValues(x.query)},
		TargetLabels: svc.Spec.Labels,
		Source:       policy.Source{IP: hostOf(r.RemoteAddr), Node: p.c.Node},
		Now:          now,
	}
	if x.method == http.MethodConnect {
		req.HTTP.Headers, req.HTTP.Query = nil, nil
	}
	x.dec = p.c.Policy.Decide(ctx, req)
	switch x.dec.Effect {
	case policy.Allow:
	case policy.ApprovalRequired:
		if err := p.awaitApproval(ctx, x); err != nil {
			return err
		}
	default:
		reason := strings.Join(x.dec.Reasons, "; ")
		if x.dec.RetryAfter > 0 {
			return &denial{status: http.StatusTooManyRequests, reason: reason, retryAfter: time.Duration(x.dec.RetryAfter)}
		}
		return &denial{status: http.StatusForbidden, reason: reason}
	}
	if taskID != "" {
		if b := x.dec.Obligations.Budget; b > 0 && x.task.Calls >= int64(b) {
			return &denial{status: http.StatusForbidden, reason: fmt.Sprintf("task %s has made %d calls, the budget of rule %s", taskID, x.task.Calls, x.dec.Rule)}
		}
		t, err := p.c.Tasks.Charge(ctx, taskID)
		if errors.Is(err, store.ErrPrecondition) {
			return &denial{status: http.StatusForbidden, reason: fmt.Sprintf("task %s cannot make more calls (%s, %d of budget %d used)", taskID, t.State, t.Calls, t.Budget)}
		}
		if err != nil {
			return fmt.Errorf("charge task %s: %w", taskID, err)
		}
		x.task = t
	}
	return nil
}

func (p *Proxy) checkRevoked(c *Caller) error {
	rv := p.c.Revocations
	if rv == nil {
		return nil
	}
	for _, k := range [...]struct{ kind, val string }{
		{store.RevokeSpiffeID, c.SpiffeID}, {store.RevokeInstance, c.Instance},
		{store.RevokeToken, c.TokenID}, {store.RevokeTask, c.Task},
	} {
		if k.val != "" && rv.Revoked(k.kind, k.val) {
			return &denial{status: http.StatusForbidden, reason: fmt.Sprintf("%s %s is revoked", strings.ReplaceAll(k.kind, "_", " "), k.val)}
		}
	}
	return nil
}

// openTask returns the task a call claims to belong to, if it is open and
// belongs to the caller.
func (p *Proxy) openTask(ctx context.Context, c *Caller, id string, now time.Time) (store.Task, error) {
	if p.c.Tasks == nil {
		return store.Task{}, &denial{status: http.StatusForbidden, reason: "this proxy has no task service; remove the " + HeaderTask + " header"}
	}
	if p.c.Revocations != nil && p.c.Revocations.Revoked(store.RevokeTask, id) {
		return store.Task{}, &denial{status: http.StatusForbidden, reason: "task " + id + " is revoked"}
	}
	t, err := p.c.Tasks.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Task{}, &denial{status: http.StatusForbidden, reason: fmt.Sprintf("task %s does not exist; open one with `writ task open`", id)}
	}
	if err != nil {
		return store.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	switch {
	case t.SpiffeID != c.SpiffeID || (t.Instance != "" && c.Instance != "" && t.Instance != c.Instance):
		return store.Task{}, &denial{status: http.StatusForbidden, reason: fmt.Sprintf("task %s belongs to another workload instance", id)}
	case t.State != store.TaskOpen:
		return store.Task{}, &denial{status: http.StatusForbidden, reason: fmt.Sprintf("task %s is %s, not open", id, t.State)}
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return store.Task{}, &denial{status: http.StatusForbidden, reason: fmt.Sprintf("task %s expired at %s", id, t.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	return t, nil
}

// awaitApproval asks for a human decision and holds the request until it
// comes or the wait ends.
func (p *Proxy) awaitApproval(ctx context.Context, x *exchange) error {
	ob := x.dec.Obligations.Approval
	reason := strings.Join(x.dec.Reasons, "; ")
	if p.c.Approvals == nil || ob == nil {
		return &denial{status: http.StatusForbidden, reason: "approval required (" + reason + ") but this proxy has no approval service"}
	}
	wait := p.c.ApprovalWait
	if t := time.Duration(ob.Timeout); t > 0 && t < wait {
		wait = t
	}
	c := x.caller
	a, err := p.c.Approvals.Request(ctx, approval.Spec{
		Kind: "http", SpiffeID: c.SpiffeID, Instance: c.Instance, Task: x.task.ID, OnBehalfOf: x.task.OnBehalfOf,
		Target: x.svc.Target() + " " + x.method + " " + x.path, Reason: reason, Policy: ob.Policy, Rule: ob.Rule,
		Approvers: ob.Approvers, Timeout: wait,
	})
	if err != nil {
		return fmt.Errorf("request approval: %w", err)
	}
	x.appr = a.ID
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	res, err := p.c.Approvals.Wait(wctx, a.ID)
	if err == nil && res.State == store.ApprovalApproved {
		return nil
	}
	state := res.State
	if err != nil {
		state = "not decided within " + wait.String()
	}
	return &denial{status: http.StatusForbidden, reason: fmt.Sprintf("approval %s: %s", a.ID, state)}
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

func firstValues(q url.Values) map[string]string {
	if len(q) == 0 {
		return nil
	}
	out := make(map[string]string, len(q))
	for k, v := range q {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// errorBody is the JSON body of every refusal.
type errorBody struct {
	Error     string `json:"error"`
	Reason    string `json:"reason,omitempty"`
	Policy    string `json:"policy,omitempty"`
	Rule      string `json:"rule,omitempty"`
	Approval  string `json:"approval,omitempty"`
	RequestID string `json:"request_id"`
}

// refuse answers a request that will not be forwarded and records it.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, x *exchange, err error) {
	body := errorBody{RequestID: x.id, Policy: x.dec.Policy, Rule: x.dec.Rule, Approval: x.appr}
	status := http.StatusInternalServerError
	var d *denial
	var ie *identifyError
	switch {
	case errors.As(err, &d):
		status = d.status
		body.Reason = d.reason
		body.Error = d.msg
		if body.Error == "" {
			switch status {
			case http.StatusTooManyRequests:
				body.Error = "rate limit exceeded"
			default:
				body.Error = "access denied by policy"
			}
		}
		if d.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.retryAfter.Seconds()))))
		}
	case errors.As(err, &ie):
		status = ie.status
		body.Error = "caller not identified"
		body.Reason = ie.msg
		if status == http.StatusProxyAuthRequired {
			w.Header().Set("Proxy-Authenticate", `Bearer realm="writ"`)
		} else if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
		}
	default:
		p.c.Log.ErrorContext(r.Context(), "proxy request failed", "request_id", x.id, "error", err)
		body.Error = "internal error; see the writ log"
	}
	x.effect, x.reason, x.status = "deny", body.Reason, status
	if x.reason == "" {
		x.reason = body.Error
	}
	writeJSON(w, status, body)
	p.record(r.Context(), x)
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
