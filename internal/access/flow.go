package access

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// Flows keeps the flow labels each task has touched (store.TaskFlows), so
// that flow rules hold across a restart.
type Flows interface {
	TouchTask(ctx context.Context, task string, labels []string, via string, at time.Time) error
	TaskFlows(ctx context.Context, task string) ([]store.FlowLabel, error)
}

// maxFlowScopes bounds the sessions and instances whose touched labels
// are kept in memory; past it the oldest scope is forgotten.
const maxFlowScopes = 1 << 16

// sessionFlows are the labels touched outside a task, per MCP session and
// per caller instance, in memory: a session or a process lives no longer
// than writ's own run.
type sessionFlows struct {
	mu    sync.Mutex
	seen  map[string][]store.FlowLabel
	order []string // scopes oldest first, for eviction
}

func (s *sessionFlows) get(keys []string) []store.FlowLabel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.FlowLabel
	for _, k := range keys {
		for _, f := range s.seen[k] {
			if !slices.ContainsFunc(out, func(g store.FlowLabel) bool { return g.Label == f.Label }) {
				out = append(out, f)
			}
		}
	}
	return out
}

func (s *sessionFlows) touch(keys, labels []string, via string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string][]store.FlowLabel{}
	}
	for _, k := range keys {
		cur, known := s.seen[k]
		if !known {
			if len(s.order) >= maxFlowScopes {
				delete(s.seen, s.order[0])
				s.order = s.order[1:]
			}
			s.order = append(s.order, k)
		}
		for _, l := range labels {
			if !slices.ContainsFunc(cur, func(f store.FlowLabel) bool { return f.Label == l }) {
				cur = append(cur, store.FlowLabel{Label: l, Via: via, At: at})
			}
		}
		s.seen[k] = cur
	}
}

// flowScope names where req's touched labels are kept: its task (durable),
// or else its MCP session and its caller's instance (in memory), so that
// an agent's MCP and HTTP accesses without a task count together.
func flowScope(req *Request, task string) (durable string, keys []string) {
	if task != "" {
		return task, nil
	}
	if req.Session != "" {
		keys = append(keys, "session:"+req.Session)
	}
	if c := req.Caller; c != nil && c.Instance != "" {
		keys = append(keys, "instance:"+c.SpiffeID+" "+c.Instance)
	}
	return "", keys
}

// touched returns the labels req's scope has touched so far.
func (e *Enforcer) touched(ctx context.Context, req *Request, task string) ([]store.FlowLabel, error) {
	durable, keys := flowScope(req, task)
	if durable != "" {
		if e.c.Flows == nil {
			return nil, nil
		}
		fs, err := e.c.Flows.TaskFlows(ctx, durable)
		if err != nil {
			return nil, fmt.Errorf("read flow labels of task %s: %w", durable, err)
		}
		return fs, nil
	}
	return e.flows.get(keys), nil
}

// touch records that req, allowed, touched its target's labels.
func (e *Enforcer) touch(ctx context.Context, req *Request, task string, now time.Time) error {
	labels := req.Target.Labels
	if len(labels) == 0 {
		return nil
	}
	via := req.Target.Ref + " " + req.Method + " " + req.object()
	durable, keys := flowScope(req, task)
	if durable != "" {
		if e.c.Flows == nil {
			return nil
		}
		if err := e.c.Flows.TouchTask(ctx, durable, labels, via, now); err != nil {
			return fmt.Errorf("record flow labels of task %s: %w", durable, err)
		}
		return nil
	}
	e.flows.touch(keys, labels, via, now)
	return nil
}

// flowChain says, for a decision a flow rule made, which accesses brought
// the labels in: "task T touched private_data (MCPServer/fs tools/call
// read_text_file) and untrusted_content (Service/web GET /page)".
func flowChain(req *Request, task string, seen []store.FlowLabel, flow []string) string {
	var parts []string
	for _, l := range flow {
		for _, f := range seen {
			if f.Label == l {
				parts = append(parts, fmt.Sprintf("%s (%s)", l, f.Via))
				break
			}
		}
	}
	who := "this session"
	if task != "" {
		who = "task " + task
	}
	return fmt.Sprintf("%s touched %s, so %s %s %s (%s) is refused",
		who, strings.Join(parts, " and "), req.Target.Ref, req.Method, req.object(), strings.Join(req.Target.Labels, ", "))
}
