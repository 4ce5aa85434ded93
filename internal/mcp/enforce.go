package mcp

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/policy"
)

// Enforcement is what the gateway needs of writ's enforcement core
// ([access.Enforcer]): the same identification, decisions, approval holds,
// rate limits, task budgets, journal and audit as the HTTP access proxy.
type Enforcement interface {
	Identify(ctx context.Context, conn *access.Conn, p *access.Presented, t *access.Target) (*access.Caller, error)
	Enforce(ctx context.Context, req *access.Request) (access.Outcome, error)
	Record(ctx context.Context, req *access.Request, out *access.Outcome, res access.Result)
}

// Explainer answers which rules could apply to a request
// ([policy.Engine]); the gateway uses it to decide what a caller may see.
type Explainer interface {
	Explain(ctx context.Context, req *policy.Request) *policy.Explanation
}

// Access is the gateway's [Identifier] and [Authorizer] through writ's
// enforcement core: a caller is identified as at the access proxy (mTLS
// X.509-SVID, a writ access token whose audience is the MCP endpoint's URL
// (RFC 8707), or the local process behind a loopback connection), and every
// tools/call, resources/read and prompts/get is an access enforced,
// journaled and recorded as one audit event with the tool and a digest of
// its arguments.
type Access struct {
	Enforcer Enforcement
	Policy   Explainer
	// Conn returns the client connection's enforcement state (the
	// proxy's, when the gateway is mounted on it); nil builds one per
	// request from its addresses.
	Conn func(ctx context.Context) *access.Conn
	// Server returns the compiled MCPServer of a name (for its
	// log_arguments setting); nil means none is logged.
	Server func(name string) *Server
	// Now defaults to time.Now.
	Now func() time.Time
}

var (
	_ Identifier = (*Access)(nil)
	_ Authorizer = (*Access)(nil)
)

// identity is what Access keeps of a caller between identification and
// authorization.
type identity struct {
	caller *access.Caller
	task   string // the Writ-Task header
	source string
}

// Identify implements [Identifier].
func (a *Access) Identify(r *http.Request, server string) (Caller, error) {
	ctx := r.Context()
	var conn *access.Conn
	if a.Conn != nil {
		conn = a.Conn(ctx)
	}
	if conn == nil || !conn.Remote.IsValid() {
		conn = &access.Conn{}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			conn.Remote = ap
		}
		if la, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil {
				conn.Local = ap
			}
		}
	}
	p := &access.Presented{Identity: r.Header.Get("Writ-Identity")}
	if r.TLS != nil {
		p.PeerCerts = r.TLS.PeerCertificates
	}
	if h := r.Header.Get("Authorization"); h != "" {
		p.Token = &access.TokenProof{Authorization: h, DPoP: r.Header.Get("DPoP"), Method: r.Method, URL: requestURL(r)}
		if len(p.PeerCerts) > 0 {
			p.Token.PeerCert = p.PeerCerts[0]
		}
	}
	c, err := a.Enforcer.Identify(ctx, conn, p, a.target(server, nil, resourceURL(r)))
	if err != nil {
		var rf *access.Refusal
		if errors.As(err, &rf) && (rf.Class == access.Unidentified || rf.Class == access.TokenRefused) {
			return Caller{}, fmt.Errorf("%w: %s", ErrUnauthenticated, rf.Reason)
		}
		if errors.As(err, &rf) {
			return Caller{}, fmt.Errorf("%w: %s", ErrForbidden, rf.Reason)
		}
		return Caller{}, err
	}
	task := c.Task
	if task == "" {
		task = r.Header.Get("Writ-Task")
	}
	return Caller{Key: c.SpiffeID + " " + c.Instance, SpiffeID: c.SpiffeID, Instance: c.Instance, Task: task,
		Identity: identity{caller: c, task: r.Header.Get("Writ-Task"), source: r.RemoteAddr}}, nil
}

func (a *Access) target(server string, labels []string, audience string) *access.Target {
	return &access.Target{Kind: policy.KindMCP, Name: server, Ref: "MCPServer/" + server, Labels: labels, Audience: audience}
}

// Authorize implements [Authorizer].
func (a *Access) Authorize(ctx context.Context, caller Caller, r Request) (Decision, error) {
	id, ok := caller.Identity.(identity)
	if !ok || id.caller == nil {
		return Decision{Reason: "the caller is not identified"}, nil
	}
	mreq := policy.MCPRequest{Server: r.Server}
	switch r.Method {
	case "tools/call", "tools/list":
		mreq.Tool = r.Name
	case "resources/read", "resources/list":
		mreq.Resource = r.Name
	case "prompts/get", "prompts/list":
		mreq.Prompt = r.Name
	case MethodSampling, MethodElicitation, MethodRoots:
		// A request of the server to the agent, made during a call of
		// r.Name: decided as a tool of the method's name (no tool can
		// be named so: tool names have no '/').
		mreq.Tool = r.Method
	default:
		return Decision{Reason: "method " + r.Method + " is not decided by the gateway"}, nil
	}
	if r.Method == "tools/list" || r.Method == "prompts/list" || r.Method == "resources/list" {
		return a.visible(ctx, id, r, mreq), nil
	}
	var args map[string]any
	canon := []byte("{}")
	if len(r.Arguments) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(r.Arguments)))
		dec.UseNumber()
		if err := dec.Decode(&args); err != nil {
			return Decision{Reason: "the arguments are not a JSON object"}, nil
		}
		c, err := Canonical(r.Arguments)
		if err != nil {
			return Decision{Reason: "the arguments are not valid JSON: " + err.Error()}, nil
		}
		canon = c
	}
	mreq.Args = plainJSON(args)
	details := map[string]string{"mcp_server": r.Server, "args_digest": Digest(canon)}
	if mreq.Tool == r.Method {
		details["mcp_during"] = r.Name
	}
	if r.Session != "" {
		details["mcp_session"] = r.Session
	}
	if a.Server != nil {
		if s := a.Server(r.Server); s != nil && s.Spec.LogArguments {
			details["args"] = string(canon)
		}
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	req := &access.Request{ID: newRequestID(), Start: now(), Target: a.target(r.Server, r.Labels, ""), Caller: id.caller,
		Method: r.Method, Tool: mreq.Tool, Resource: mreq.Resource, Prompt: mreq.Prompt, Args: mreq.Args,
		Task: id.task, Source: id.source, Details: details, ArgsDigest: details["args_digest"], Approval: r.Approval, Session: r.Session}
	out, err := a.Enforcer.Enforce(ctx, req)
	if err != nil {
		// Enforce's outcome is Internal; record it like any refusal.
		out.Reason = "the decision could not be made"
	}
	if out.Effect != access.Allow || out.Class != access.OK {
		a.Enforcer.Record(context.WithoutCancel(ctx), req, &out, access.Result{Status: statusOf(out.Class)})
		reason := out.Reason
		if reason == "" {
			reason = out.Message
		} else if out.Class == access.RateLimited {
			reason += fmt.Sprintf(" (rate limited; retry after %s)", out.RetryAfter)
		}
		return Decision{Reason: reason, Rule: out.Rule, Policy: out.Policy, Approval: out.Approval,
			Unavailable: out.Class == access.Unavailable || out.Class == access.NoCredential}, nil
	}
	return Decision{Allow: true, Rule: out.Rule, Policy: out.Policy, Approval: out.Approval, Finish: func(res Result) {
		status := 200
		switch {
		case res.Err != nil:
			status = 502
		case res.ToolError:
			status = 422
		}
		if len(res.Redactions) > 0 {
			req.Details["redactions"] = strings.Join(res.Redactions, ",")
		}
		rr := access.Result{Status: status, Out: res.Bytes, In: int64(len(canon))}
		if res.Err != nil {
			rr.Reason = "upstream error: " + res.Err.Error()
		}
		a.Enforcer.Record(context.WithoutCancel(ctx), req, &out, rr)
	}}, nil
}

// visible decides whether the caller may see a tool or prompt: when
// policy allows it (or holds it for approval) without arguments, or when
// a rule that would allow it depends on the arguments; never when a deny
// rule matches it outright.
func (a *Access) visible(ctx context.Context, id identity, r Request, mreq policy.MCPRequest) Decision {
	if a.Policy == nil {
		return Decision{Reason: "no policy"}
	}
	q := &policy.Request{Kind: policy.KindMCP, Subject: policy.Subject{SpiffeID: id.caller.SpiffeID, Labels: id.caller.Labels},
		Instance: id.caller.Instance, MCP: mreq, TargetLabels: r.Labels}
	if a.Now != nil {
		q.Now = a.Now()
	}
	ex := a.Policy.Explain(ctx, q)
	if ex == nil {
		return Decision{Reason: "no policy"}
	}
	if ex.Decision.Effect == policy.Allow || ex.Decision.Effect == policy.ApprovalRequired {
		return Decision{Allow: true}
	}
	maybe := false
	for _, p := range ex.Policies {
		for _, rt := range p.Rules {
			switch {
			case rt.Effect == string(policy.Deny) && rt.Outcome == policy.OutcomeMatch:
				return Decision{Reason: "denied by rule " + rt.Rule}
			case rt.Effect != string(policy.Deny) && (rt.Outcome == policy.OutcomeConditionFalse || rt.Outcome == policy.OutcomeConditionError):
				maybe = true
			}
		}
	}
	return Decision{Allow: maybe}
}

// plainJSON turns json.Number values back into float64 or int64, the
// types policy conditions see for numbers.
func plainJSON(m map[string]any) map[string]any {
	var conv func(v any) any
	conv = func(v any) any {
		switch x := v.(type) {
		case json.Number:
			if i, err := x.Int64(); err == nil {
				return i
			}
			f, _ := x.Float64()
			return f
		case map[string]any:
			for k, e := range x {
				x[k] = conv(e)
			}
			return x
		case []any:
			for i, e := range x {
				x[i] = conv(e)
			}
			return x
		}
		return v
	}
	if m == nil {
		return map[string]any{}
	}
	return conv(m).(map[string]any)
}

// statusOf is the HTTP-like status an access event records for a refusal.
func statusOf(c access.Class) int {
	switch c {
	case access.Unidentified, access.TokenRefused:
		return 401
	case access.Forbidden:
		return 403
	case access.RateLimited:
		return 429
	case access.Invalid:
		return 400
	case access.NoRoute:
		return 404
	case access.NoCredential:
		return 502
	case access.Unavailable:
		return 503
	}
	return 500
}

func newRequestID() string {
	var b [10]byte
	rand.Read(b[:])
	return "req_" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// requestURL is the URL the client addressed, as a DPoP proof names it.
func requestURL(r *http.Request) string {
	if r.URL.IsAbs() {
		return r.URL.String()
	}
	return scheme(r) + "://" + r.Host + r.URL.RequestURI()
}

// resourceURL is the MCP endpoint's URL: the audience (RFC 8707 resource)
// of the access tokens it accepts, and the resource of its protected-resource
// metadata.
func resourceURL(r *http.Request) string {
	return scheme(r) + "://" + r.Host + strings.TrimSuffix(r.URL.Path, "/")
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
