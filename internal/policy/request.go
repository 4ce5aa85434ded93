package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Kind is the kind of call a [Request] asks about.
type Kind string

// Request kinds.
const (
	KindHTTP  Kind = "http"  // a call to an HTTP service through the access proxy
	KindMCP   Kind = "mcp"   // a tools/call, resources/read or prompts/get through the MCP gateway
	KindToken Kind = "token" // minting an access token (token exchange)
	KindTask  Kind = "task"  // opening a task
)

// Request is one question to the engine: may this subject make this call
// now? Its JSON form is the stable input of `writ policy eval` and is
// documented in docs/policy.md; CEL conditions see the same names.
type Request struct {
	Kind    Kind    `yaml:"kind" json:"kind"`
	Subject Subject `yaml:"subject" json:"subject"`
	// Instance is the agent instance id (inst_...).
	Instance string `yaml:"instance,omitempty" json:"instance,omitempty"`
	Task     Task   `yaml:"task,omitempty" json:"task,omitzero"`
	// HTTP is the call for KindHTTP; its JSON and CEL name is "request".
	HTTP  HTTPRequest  `yaml:"request,omitempty" json:"request,omitzero"`
	MCP   MCPRequest   `yaml:"mcp,omitempty" json:"mcp,omitzero"`
	Token TokenRequest `yaml:"token,omitempty" json:"token,omitzero"`
	// TargetLabels are the flow labels the target carries (from the
	// Service, MCPServer or ToolLabels configuration).
	TargetLabels []string `yaml:"target_labels,omitempty" json:"target_labels,omitempty"`
	Source       Source   `yaml:"source,omitempty" json:"source,omitzero"`
	// Now is the time of the call; zero means the engine's clock.
	Now time.Time `yaml:"now,omitempty" json:"now,omitzero"`
}

// Subject is the calling workload.
type Subject struct {
	SpiffeID string `yaml:"spiffe_id" json:"spiffe_id"`
	// Labels are the labels of the matched Identity entry (team, owner,
	// env, ...), used by label: subject selectors.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Task is the task the call belongs to; a zero Task means none.
type Task struct {
	ID      string `yaml:"id,omitempty" json:"id,omitempty"`
	Purpose string `yaml:"purpose,omitempty" json:"purpose,omitempty"`
	// OnBehalfOf is the user the task acts for; when set, the user must be
	// allowed too (intersection).
	OnBehalfOf string `yaml:"on_behalf_of,omitempty" json:"on_behalf_of,omitempty"`
	// Groups are the groups of the OnBehalfOf user, for group: subjects.
	Groups []string `yaml:"groups,omitempty" json:"groups,omitempty"`
	// LabelsSeen are the flow labels of every target the task has touched.
	LabelsSeen []string `yaml:"labels_seen,omitempty" json:"labels_seen,omitempty"`
	// Calls is the number of calls the task has made before this one.
	Calls int64 `yaml:"calls,omitempty" json:"calls,omitempty"`
}

// HTTPRequest is an HTTP call. Path is the decoded URL path; header names
// are lower case and repeated values are joined with ", "; repeated query
// parameters keep their first value. The engine matches Method and Path in
// canonical form ([CanonicalMethod], [CanonicalPath]).
type HTTPRequest struct {
	Service string            `yaml:"service,omitempty" json:"service,omitempty"`
	Method  string            `yaml:"method,omitempty" json:"method,omitempty"`
	Path    string            `yaml:"path,omitempty" json:"path,omitempty"`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Query   map[string]string `yaml:"query,omitempty" json:"query,omitempty"`
}

// MCPRequest is an MCP call: exactly one of Tool, Resource and Prompt.
// The engine matches Resource in canonical form ([CanonicalURI]).
type MCPRequest struct {
	Server   string         `yaml:"server,omitempty" json:"server,omitempty"`
	Tool     string         `yaml:"tool,omitempty" json:"tool,omitempty"`
	Resource string         `yaml:"resource,omitempty" json:"resource,omitempty"`
	Prompt   string         `yaml:"prompt,omitempty" json:"prompt,omitempty"`
	Args     map[string]any `yaml:"args,omitempty" json:"args,omitempty"`
}

// TokenRequest is a token exchange: the audience and scopes asked for.
type TokenRequest struct {
	Audience string   `yaml:"audience,omitempty" json:"audience,omitempty"`
	Scopes   []string `yaml:"scopes,omitempty" json:"scopes,omitempty"`
}

// Source is where the call comes from.
type Source struct {
	IP   string `yaml:"ip,omitempty" json:"ip,omitempty"`
	Node string `yaml:"node,omitempty" json:"node,omitempty"`
}

// Validate reports the first thing that makes r unanswerable. Decide does
// not require it (an invalid request is simply denied), but callers that
// take requests from users should show its message.
func (r *Request) Validate() error {
	if r.Subject.SpiffeID == "" {
		return errors.New("subject.spiffe_id: missing; every request names the calling workload")
	}
	if _, _, ok := splitID(r.Subject.SpiffeID); !ok {
		return fmt.Errorf("subject.spiffe_id: %q is not a SPIFFE ID such as spiffe://writ.local/agent/name", r.Subject.SpiffeID)
	}
	switch r.Kind {
	case KindHTTP:
		if r.HTTP.Service == "" || r.HTTP.Method == "" || r.HTTP.Path == "" {
			return errors.New("request: an http request needs service, method and path")
		}
		if !strings.HasPrefix(r.HTTP.Path, "/") {
			return fmt.Errorf("request.path: %q must start with /", r.HTTP.Path)
		}
		if _, ok := CanonicalMethod(r.HTTP.Method); !ok {
			return fmt.Errorf("request.method: %q is not an HTTP method token (such as GET or DELETE)", r.HTTP.Method)
		}
	case KindMCP:
		n := 0
		for _, s := range []string{r.MCP.Tool, r.MCP.Resource, r.MCP.Prompt} {
			if s != "" {
				n++
			}
		}
		if r.MCP.Server == "" || n != 1 {
			return errors.New("mcp: an mcp request needs server and exactly one of tool, resource and prompt")
		}
	case KindToken:
		if r.Token.Audience == "" {
			return errors.New("token.audience: missing; a token request names the audience")
		}
	case KindTask:
		if r.Task.Purpose == "" {
			return errors.New("task.purpose: missing; opening a task needs a purpose")
		}
	case "":
		return errors.New("kind: missing; one of http, mcp, token, task")
	default:
		return fmt.Errorf("kind: %q is not one of http, mcp, token, task", r.Kind)
	}
	if r.Task.Calls < 0 {
		return errors.New("task.calls: must not be negative")
	}
	return nil
}

// MaxRequestSize bounds a request document read by [ParseRequest].
const MaxRequestSize = 1 << 20

// ParseRequest decodes a request from JSON strictly (unknown fields are
// errors) and validates it. Errors name the line and column.
func ParseRequest(name string, data []byte) (*Request, error) {
	if len(data) > MaxRequestSize {
		return nil, fmt.Errorf("read request %s: %d bytes is more than the %d allowed", name, len(data), MaxRequestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Request
	if err := dec.Decode(&r); err != nil {
		return nil, jsonError(name, data, dec, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read request %s: more than one JSON value; a request file holds one object", name)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &r, nil
}

func jsonError(name string, data []byte, dec *json.Decoder, err error) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = max(se.Offset-1, 0) // Offset counts the offending byte
	case errors.As(err, &te):
		off = te.Offset
		if te.Field != "" {
			err = fmt.Errorf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
	case errors.Is(err, io.EOF):
		return fmt.Errorf("read request %s: empty; want a JSON object", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(data))
	}
	line, col := 1, 1
	for _, c := range data[:min(int(off), len(data))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return fmt.Errorf("%s:%d:%d: %s", name, line, col, msg)
}

// Effect is the outcome of a decision.
type Effect string

// Effects.
const (
	Allow            Effect = "allow"
	Deny             Effect = "deny"
	ApprovalRequired Effect = "approval_required"
)

// Decision is the engine's answer. Slices in a Decision may be shared with
// the snapshot: treat them as read-only.
type Decision struct {
	Effect Effect `json:"effect"`
	// Policy is "name@version" of the deciding policy (empty for a
	// default deny); Rule the deciding rule's name.
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// Principal says whose rules decided: "agent", or "user" when the
	// on-behalf-of user's rules did.
	Principal   string      `json:"principal,omitempty"`
	Reasons     []string    `json:"reasons"`
	Obligations Obligations `json:"obligations,omitzero"`
	// RetryAfter is set when a rate limit refused the call.
	RetryAfter Duration `json:"retry_after,omitempty"`
	// Observed is set when policies in observe mode would have decided
	// differently (see [Observation]); it never changes Effect.
	Observed *Observation `json:"observed,omitempty"`
	// Flow lists the touched labels that made the deciding rule's flow
	// condition hold, when it has one (a toxic flow denied or escalated).
	Flow []string `json:"flow,omitempty"`
}

// Obligations are what the enforcement point must do with an allowed (or
// approval-pending) call.
type Obligations struct {
	// Rate lists the rate limits of every allow rule that matched; an
	// [Engine] with a limiter has already charged them.
	Rate []RateObligation `json:"rate,omitempty"`
	// Approval is set when the effect is approval_required.
	Approval *ApprovalObligation `json:"approval,omitempty"`
	// MaxTTL caps the lifetime of a credential minted for the call (the
	// smallest cap of the matching rules); zero means no cap.
	MaxTTL Duration `json:"max_ttl,omitempty"`
	// Budget is the smallest per-task call budget of the matching rules;
	// zero means none.
	Budget int `json:"budget,omitempty"`
}

// RateObligation is one rate limit: at most Limit calls per Window for Key.
type RateObligation struct {
	Key    string   `json:"key"`
	Limit  int      `json:"limit"`
	Window Duration `json:"window"`
	Per    string   `json:"per"`
	Rule   string   `json:"rule"` // policy@version/rule
}

// ApprovalObligation says who must approve and how long to wait.
type ApprovalObligation struct {
	Policy    string   `json:"policy"`
	Rule      string   `json:"rule"`
	Approvers []string `json:"approvers,omitempty"`
	Timeout   Duration `json:"timeout"`
}

// Duration is a time.Duration that encodes as a string such as "15m0s".
type Duration time.Duration

// MarshalJSON encodes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON decodes a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"15m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like 90s, 15m or 1h", s)
	}
	*d = Duration(v)
	return nil
}

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }
