package policy

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Variables is the declared CEL environment of `when` conditions: every
// name a condition may use and its CEL type. It mirrors the request's JSON
// names.
var Variables = []struct{ Name, Type, Doc string }{
	{"kind", "string", "http, mcp, token or task"},
	{"subject.spiffe_id", "string", "the caller's SPIFFE ID"},
	{"subject.trust_domain", "string", "its trust domain"},
	{"subject.path", "string", "its path, e.g. /agent/email-drafter"},
	{"subject.labels", "map(string, string)", "labels of the caller's Identity entry"},
	{"instance", "string", "the agent instance id"},
	{"task.id", "string", "task id, empty without a task"},
	{"task.purpose", "string", "task purpose"},
	{"task.on_behalf_of", "string", "the user the task acts for"},
	{"task.groups", "list(string)", "that user's groups"},
	{"task.labels_seen", "list(string)", "flow labels the task has touched"},
	{"task.calls", "int", "calls the task made before this one"},
	{"request.service", "string", "HTTP service name"},
	{"request.method", "string", "HTTP method"},
	{"request.path", "string", "HTTP path"},
	{"request.headers", "map(string, string)", "HTTP headers, lower-case names"},
	{"request.query", "map(string, string)", "URL query parameters"},
	{"mcp.server", "string", "MCP server name"},
	{"mcp.tool", "string", "tool name (tools/call)"},
	{"mcp.resource", "string", "resource URI (resources/read)"},
	{"mcp.prompt", "string", "prompt name (prompts/get)"},
	{"mcp.args", "map(string, dyn)", "tool or prompt arguments"},
	{"token.audience", "string", "audience of a token request"},
	{"token.scopes", "list(string)", "scopes of a token request"},
	{"target_labels", "list(string)", "flow labels of the target"},
	{"source.ip", "string", "caller address"},
	{"source.node", "string", "node the call came through"},
	{"now", "timestamp", "time of the call"},
}

// varIndex is each variable's slot in an activation's cache.
var varIndex = func() map[string]int {
	m := make(map[string]int, len(Variables))
	for i, v := range Variables {
		m[v.Name] = i
	}
	return m
}()

var (
	envOnce sync.Once
	envVal  *cel.Env
	envErr  error
)

// celEnv returns the shared, immutable CEL environment.
func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		opts := []cel.EnvOption{
			ext.Strings(), ext.Lists(), ext.Sets(), ext.Network(),
			cel.CrossTypeNumericComparisons(true),
			cel.DefaultUTCTimeZone(true),
			cel.ExpressionNodeLimit(2000),
			cel.ParserExpressionSizeLimit(8 << 10),
		}
		for _, v := range Variables {
			opts = append(opts, cel.Variable(v.Name, celType(v.Type)))
		}
		envVal, envErr = cel.NewEnv(opts...)
	})
	return envVal, envErr
}

func celType(t string) *cel.Type {
	switch t {
	case "string":
		return cel.StringType
	case "int":
		return cel.IntType
	case "timestamp":
		return cel.TimestampType
	case "list(string)":
		return cel.ListType(cel.StringType)
	case "map(string, string)":
		return cel.MapType(cel.StringType, cel.StringType)
	case "map(string, dyn)":
		return cel.MapType(cel.StringType, cel.DynType)
	}
	panic("policy: unknown CEL type " + t) // a programming error in Variables
}

// condition is a compiled `when`.
type condition struct {
	src string
	prg cel.Program
	lit *bool // the expression is a constant
}

// compileCondition parses and type-checks src; the error text is CEL's,
// which names the position within the expression.
func compileCondition(src string) (*condition, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		ce := &condError{msg: iss.Err().Error(), line: 1, all: iss.Err().Error()}
		if errs := iss.Errors(); len(errs) > 0 {
			ce.msg = errs[0].Message
			if loc := errs[0].Location; loc != nil && loc.Line() > 0 {
				ce.line, ce.col = loc.Line(), loc.Column()
			}
		}
		return nil, ce
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("the condition is a %s; it must be a bool (true or false)", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	c := &condition{src: src, prg: prg}
	switch strings.TrimSpace(src) {
	case "true":
		c.lit = new(true)
	case "false":
		c.lit = new(false)
	}
	return c, nil
}

// condError is a CEL compile error: the first message and its 1-based line
// and 0-based column within the expression.
type condError struct {
	msg       string
	line, col int
	all       string
}

func (e *condError) Error() string { return e.all }

// eval runs the condition. A runtime error (a missing map key, a bad IP
// string) is returned, and the caller decides which way to fail.
func (c *condition) eval(a *activation) (bool, error) {
	v, _, err := c.prg.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the condition returned %v, not a bool", v)
	}
	return bool(b), nil
}

// activation resolves condition variables from a request, converting each
// at most once per decision.
type activation struct {
	req   *Request
	now   time.Time
	td    string
	path  string
	cache [32]ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveName(name string) (any, bool) {
	i, ok := varIndex[name]
	if !ok {
		return nil, false
	}
	if v := a.cache[i]; v != nil {
		return v, true
	}
	v := a.value(name)
	a.cache[i] = v
	return v, true
}

func (a *activation) value(name string) ref.Val {
	r := a.req
	ad := types.DefaultTypeAdapter
	switch name {
	case "kind":
		return types.String(r.Kind)
	case "subject.spiffe_id":
		return types.String(r.Subject.SpiffeID)
	case "subject.trust_domain":
		return types.String(a.td)
	case "subject.path":
		return types.String(a.path)
	case "subject.labels":
		return types.NewStringStringMap(ad, orEmpty(r.Subject.Labels))
	case "instance":
		return types.String(r.Instance)
	case "task.id":
		return types.String(r.Task.ID)
	case "task.purpose":
		return types.String(r.Task.Purpose)
	case "task.on_behalf_of":
		return types.String(r.Task.OnBehalfOf)
	case "task.groups":
		return types.NewStringList(ad, r.Task.Groups)
	case "task.labels_seen":
		return types.NewStringList(ad, r.Task.LabelsSeen)
	case "task.calls":
		return types.Int(r.Task.Calls)
	case "request.service":
		return types.String(r.HTTP.Service)
	case "request.method":
		return types.String(r.HTTP.Method)
	case "request.path":
		return types.String(r.HTTP.Path)
	case "request.headers":
		return types.NewStringStringMap(ad, orEmpty(r.HTTP.Headers))
	case "request.query":
		return types.NewStringStringMap(ad, orEmpty(r.HTTP.Query))
	case "mcp.server":
		return types.String(r.MCP.Server)
	case "mcp.tool":
		return types.String(r.MCP.Tool)
	case "mcp.resource":
		return types.String(r.MCP.Resource)
	case "mcp.prompt":
		return types.String(r.MCP.Prompt)
	case "mcp.args":
		if r.MCP.Args == nil {
			return types.NewStringInterfaceMap(ad, map[string]any{})
		}
		return types.NewStringInterfaceMap(ad, r.MCP.Args)
	case "token.audience":
		return types.String(r.Token.Audience)
	case "token.scopes":
		return types.NewStringList(ad, r.Token.Scopes)
	case "target_labels":
		return types.NewStringList(ad, r.TargetLabels)
	case "source.ip":
		return types.String(r.Source.IP)
	case "source.node":
		return types.String(r.Source.Node)
	case "now":
		return types.Timestamp{Time: a.now}
	}
	return types.NewErr("unknown variable %s", name)
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
