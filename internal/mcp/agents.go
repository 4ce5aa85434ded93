//lint:file-ignore SA1019 relaying the pre-2026 sampling and roots requests to the agents that still use them is this file's purpose

package mcp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// A server whose spec says sessions: per_agent may ask an agent for
// sampling, elicitation and roots the pre-2026 way: as a request of its own
// on its session while a call is under way. Such a request can only reach
// the right agent if the session is that agent's alone, so each agent
// session (of a revision before 2026-07-28; later agents are stateless and
// are asked within the answer, see input.go) gets an upstream session of
// its own, which declares exactly what the agent declared. The server's
// requests on it are decided by policy, like input requests, and relayed
// to that agent's session. Tools are still listed and pinned over the
// shared session: a per-agent session only carries the agent's calls.

// maxAgentSessions bounds the per-agent upstream sessions of one server
// (for a stdio server, processes). A variable for tests.
var maxAgentSessions = 256

// agentUpstream is the upstream session of one agent session.
type agentUpstream struct {
	ready chan struct{} // closed once cs or err is set
	cs    *sdk.ClientSession
	err   error

	mu     sync.Mutex
	during map[string]int // names of the calls under way, for the audit
}

// via names the calls under way on the agent's session (the ones a
// request of the server can have come from).
func (a *agentUpstream) via() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(slices.Sorted(maps.Keys(a.during)), ",")
}

func (a *agentUpstream) begin(name string) func() {
	a.mu.Lock()
	if a.during == nil {
		a.during = map[string]int{}
	}
	a.during[name]++
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		if a.during[name]--; a.during[name] <= 0 {
			delete(a.during, name)
		}
		a.mu.Unlock()
	}
}

// upstreamFor returns the upstream session a request of the agent on ss
// goes over, and the function to call when the request is done: the
// agent's own with sessions: per_agent (opening it on first use), else
// the shared one.
func (g *Gateway) upstreamFor(ctx context.Context, b *backend, ss *sdk.ServerSession, caller Caller, name string) (*sdk.ClientSession, func(), error) {
	if b.srv.Spec.Sessions != SessionsPerAgent || ss == nil || supportsInputRequired(ss) {
		cs, err := b.up.session(ctx)
		return cs, func() {}, err
	}
	b.mu.Lock()
	if b.agents == nil {
		b.agents = map[*sdk.ServerSession]*agentUpstream{}
	}
	a, ok := b.agents[ss]
	if !ok {
		if len(b.agents) >= maxAgentSessions {
			b.mu.Unlock()
			return nil, nil, fmt.Errorf("%s: %w: it has %d agent sessions, the most with sessions: per_agent", b.srv.Target(), ErrUnavailable, maxAgentSessions)
		}
		a = &agentUpstream{ready: make(chan struct{})}
		b.agents[ss] = a
	}
	b.mu.Unlock()
	if !ok {
		a.cs, a.err = g.dialAgent(b, ss, caller, a)
		close(a.ready)
		if a.err != nil {
			b.dropAgent(ss, a)
		} else {
			go func() {
				// The agent's session or the upstream's ended: the
				// other goes too, and the next call dials afresh.
				ch := make(chan struct{}, 2)
				go func() { ss.Wait(); ch <- struct{}{} }()
				go func() { a.cs.Wait(); ch <- struct{}{} }()
				<-ch
				a.cs.Close()
				b.dropAgent(ss, a)
			}()
		}
	}
	select {
	case <-a.ready:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("%s: %w: %v", b.srv.Target(), ErrUnavailable, ctx.Err())
	}
	if a.err != nil {
		return nil, nil, a.err
	}
	return a.cs, a.begin(name), nil
}

func (b *backend) dropAgent(ss *sdk.ServerSession, a *agentUpstream) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.agents[ss] == a {
		delete(b.agents, ss)
	}
}

// closeAgents ends every per-agent upstream session of b.
func (b *backend) closeAgents() {
	b.mu.Lock()
	as := slices.Collect(maps.Values(b.agents))
	b.agents = nil
	b.mu.Unlock()
	for _, a := range as {
		<-a.ready
		if a.cs != nil {
			a.cs.Close()
		}
	}
}

// dialAgent opens the upstream session of the agent on ss: a client that
// declares what the agent declared and relays the server's requests to
// the agent once policy allows them.
func (g *Gateway) dialAgent(b *backend, ss *sdk.ServerSession, caller Caller, a *agentUpstream) (*sdk.ClientSession, error) {
	var caps *sdk.ClientCapabilities
	if ip := ss.InitializeParams(); ip != nil {
		caps = ip.Capabilities
	}
	if caps == nil {
		caps = &sdk.ClientCapabilities{}
	}
	ctx := context.Background()
	decide := func(ctx context.Context, ir sdk.InputRequest) error {
		return g.decideInputs(ctx, caller, ss.ID(), b, a.via(), sdk.InputRequestMap{"request": ir})
	}
	opts := &sdk.ClientOptions{Capabilities: &sdk.ClientCapabilities{Sampling: caps.Sampling, Elicitation: caps.Elicitation, RootsV2: caps.RootsV2}}
	if caps.Sampling != nil {
		opts.CreateMessageWithToolsHandler = func(ctx context.Context, req *sdk.CreateMessageWithToolsRequest) (*sdk.CreateMessageWithToolsResult, error) {
			if err := decide(ctx, req.Params); err != nil {
				return nil, err
			}
			return ss.CreateMessageWithTools(ctx, req.Params)
		}
	}
	if caps.Elicitation != nil {
		opts.ElicitationHandler = func(ctx context.Context, req *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			if err := decide(ctx, req.Params); err != nil {
				return nil, err
			}
			return ss.Elicit(ctx, req.Params)
		}
	}
	roots := func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			if method != MethodRoots {
				return next(ctx, method, req)
			}
			p, _ := req.GetParams().(*sdk.ListRootsParams)
			if p == nil {
				p = &sdk.ListRootsParams{}
			}
			if caps.RootsV2 == nil {
				return nil, errors.New("the agent declared no roots")
			}
			if err := decide(ctx, p); err != nil {
				return nil, err
			}
			return ss.ListRoots(ctx, p)
		}
	}
	cs, _, err := b.up.dial(ctx, opts, roots)
	if err != nil {
		return nil, fmt.Errorf("open the upstream session of agent session %s: %w", ss.ID(), err)
	}
	g.cfg.Log.InfoContext(ctx, "MCP upstream session opened for an agent session", "server", b.srv.Name, "mcp_session", ss.ID(), "caller", caller.Key)
	return cs, nil
}
