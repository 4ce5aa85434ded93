package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/mcp"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/secrets"
	"github.com/writ-dev/writ/internal/store"
)

// The MCP gateway on a node serves /mcp and /mcp/NAME on the node's proxy
// listener for the MCPServer documents the server pushes, deciding every
// request with the same enforcement core as the node's HTTP proxy (so its
// decisions are journaled and spooled alike). What must be the same
// everywhere is the server's:
//   - pins: the tools an upstream announces are checked by the server
//     against the deployment's pins (PathMCPCheck), so that a rug pull
//     seen on this node quarantines the tool on every node and the
//     server; pins are streamed back (KindPin) and the gateway re-decides
//     its tools from them (a quarantine or an approval made elsewhere);
//     while the server is unreachable (within the grace period) tools are
//     decided from the streamed pins, and a tool the server has not
//     trusted for exactly the descriptor announced is held;
//   - upstream credentials: fetched from the server's broker over mTLS
//     when an upstream is (re)connected, never written to disk;
//   - approvals of held calls: filed on the server, decided there (console
//     or API), waited for and spent through the node API.

// initMCP builds the node's MCP gateway over the proxy's enforcer.
func (n *Node) initMCP(p *nodeProxy) error {
	acc := &mcp.Access{Enforcer: p.enforcer, Policy: p.policy, Conn: proxy.ConnFrom, Now: n.c.Now}
	det, err := secrets.New(secrets.Config{FingerprintKey: []byte(rand.Text())})
	if err != nil {
		return fmt.Errorf("node MCP gateway: build the secret detector: %w", err)
	}
	p.gw = mcp.New(mcp.Config{
		Redactor:    det,
		Pins:        n.db,
		Checker:     remoteChecker{n},
		Emitter:     nodeEmitter{n},
		Credentials: remoteCredentials{n},
		Identifier:  acc,
		Authorizer:  acc,
		Log:         n.c.Log.With("component", "mcp"),
		Now:         n.c.Now,
	})
	acc.Server = p.gw.Server
	return nil
}

// reloadMCP makes the gateway serve the MCPServer documents of the
// replica; one that does not compile is left out and logged.
func (n *Node) reloadMCP(ctx context.Context) error {
	rs, err := n.Resources(ctx, resource.KindMCPServer)
	if err != nil {
		return err
	}
	var servers []*mcp.Server
	for _, r := range rs {
		srv, err := mcp.CompileRemote(r)
		if err != nil {
			n.c.Log.Error("MCP server left out of the node's gateway", "server", r.Name, "error", err)
			continue
		}
		servers = append(servers, srv)
	}
	n.px.gw.SetServers(servers)
	return nil
}

// MCPGateway is the node's MCP gateway (nil without a proxy).
func (n *Node) MCPGateway() *mcp.Gateway {
	if n.px == nil {
		return nil
	}
	return n.px.gw
}

// remoteChecker checks a node's MCP tools on the server.
type remoteChecker struct{ n *Node }

func (c remoteChecker) Check(ctx context.Context, srv *mcp.Server, tools []mcp.Descriptor) (map[string]mcp.Verdict, error) {
	req := nodeapi.MCPCheckRequest{Server: srv.Name, Tools: make([]json.RawMessage, 0, len(tools))}
	for _, t := range tools {
		b, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("encode tool %q of %s: %w", t.Name, srv.Target(), err)
		}
		req.Tools = append(req.Tools, b)
	}
	var ans nodeapi.MCPCheckAnswer
	err := c.n.client.call(ctx, http.MethodPost, nodeapi.PathMCPCheck, req, &ans)
	if err == nil {
		out := make(map[string]mcp.Verdict, len(ans.Verdicts))
		for name, v := range ans.Verdicts {
			out[name] = mcp.Verdict{Usable: v.Usable, State: v.State, Reason: v.Reason, Digest: v.Digest}
		}
		return out, nil
	}
	var se *serverError
	if errors.As(err, &se) && se.code < 500 {
		return nil, fmt.Errorf("check the tools of %s on the server: %w", srv.Target(), err)
	}
	if c.n.failClosed() {
		return nil, fmt.Errorf("check the tools of %s: the node is failing closed: %w", srv.Target(), err)
	}
	// The server is unreachable: decide from the pins it streamed last.
	pins, perr := c.n.db.ListPins(ctx, srv.Name)
	if perr != nil {
		return nil, errors.Join(err, perr)
	}
	c.n.c.Log.Warn("the server cannot check MCP tools now; deciding from its last pins (new or changed tools are held)",
		"server", srv.Name, "error", err)
	return mcp.FromPins(srv, tools, pins), nil
}

// remoteCredentials fetches an MCP upstream's credential from the
// server's broker.
type remoteCredentials struct{ n *Node }

func (c remoteCredentials) Get(ctx context.Context, name string) (broker.Info, broker.Secret, error) {
	if c.n.failClosed() {
		return broker.Info{}, broker.Secret{}, errors.New("the node is failing closed (server unreachable past the grace period, or evicted)")
	}
	var ans nodeapi.MCPCredentialAnswer
	if err := c.n.client.call(ctx, http.MethodPost, nodeapi.PathMCPCredential, nodeapi.MCPCredentialRequest{Name: name}, &ans); err != nil {
		return broker.Info{}, broker.Secret{}, err
	}
	return broker.Info{Name: ans.Name, Type: broker.Type(ans.Type), Version: ans.Version}, broker.NewSecret([]byte(ans.Value)), nil
}

// remoteApprovals files, waits for and spends approvals on the server
// (access.Approvals): a held call on the node is decided by a human on
// the server.
type remoteApprovals struct{ n *Node }

func (a remoteApprovals) Request(ctx context.Context, sp approval.Spec) (store.Approval, error) {
	var out store.Approval
	err := a.n.client.call(ctx, http.MethodPost, nodeapi.PathApprovalCreate, nodeapi.ApprovalRequest{Kind: sp.Kind, SpiffeID: sp.SpiffeID,
		Instance: sp.Instance, Task: sp.Task, OnBehalfOf: sp.OnBehalfOf, Target: sp.Target, Reason: sp.Reason, Policy: sp.Policy,
		Rule: sp.Rule, Approvers: sp.Approvers, Timeout: sp.Timeout, Binding: sp.Binding}, &out)
	return out, err
}

// Wait asks the server until the approval is decided or expired, or ctx
// ends; a failed call is retried after a second.
func (a remoteApprovals) Wait(ctx context.Context, id string) (store.Approval, error) {
	for {
		var out store.Approval
		err := a.n.client.call(ctx, http.MethodPost, nodeapi.PathApprovalWait, nodeapi.ApprovalWaitRequest{ID: id}, &out)
		if err == nil && out.State != store.ApprovalPending {
			return out, nil
		}
		if refused(err) || isStatus(err, http.StatusNotFound) {
			return out, err
		}
		wait := time.Duration(0)
		if err != nil {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return store.Approval{}, fmt.Errorf("wait for approval %s: %w", id, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (a remoteApprovals) Use(ctx context.Context, id, binding, caller string) (store.Approval, error) {
	var out store.Approval
	err := a.n.client.call(ctx, http.MethodPost, nodeapi.PathApprovalUse, nodeapi.ApprovalUseRequest{ID: id, Binding: binding, Caller: caller}, &out)
	if isStatus(err, http.StatusConflict) {
		var se *serverError
		errors.As(err, &se)
		return out, fmt.Errorf("%w: %s", approval.ErrNotUsable, strings.TrimPrefix(se.msg, approval.ErrNotUsable.Error()+": "))
	}
	return out, err
}

func isStatus(err error, code int) bool {
	var se *serverError
	return errors.As(err, &se) && se.code == code
}

// putPin stores a pin the server published in the replica.
func (n *Node) putPin(ctx context.Context, p store.Pin) error {
	if p.Server == "" || p.Tool == "" {
		return errors.New("apply pin: no server or tool")
	}
	cur, err := n.db.GetPin(ctx, p.Server, p.Tool)
	if errors.Is(err, store.ErrNotFound) {
		_, err = n.db.CreatePin(ctx, p)
		return err
	}
	if err != nil {
		return err
	}
	p.Revision = cur.Revision
	_, err = n.db.UpdatePin(ctx, p)
	return err
}

// syncPins makes the replica's pins those of a snapshot.
func (n *Node) syncPins(ctx context.Context, ps []store.Pin) error {
	keep := map[string]bool{}
	for _, p := range ps {
		keep[nodeapi.PinKey(p.Server, p.Tool)] = true
		if err := n.putPin(ctx, p); err != nil {
			return fmt.Errorf("apply pin %s/%s: %w", p.Server, p.Tool, err)
		}
	}
	have, err := n.db.ListPins(ctx, "")
	if err != nil {
		return err
	}
	for _, p := range have {
		if !keep[nodeapi.PinKey(p.Server, p.Tool)] {
			if err := n.db.DeletePin(ctx, p.Server, p.Tool); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	n.pinsW.notify()
	return nil
}

// applyPin applies one pin change of the stream.
func (n *Node) applyPin(ctx context.Context, c *store.Change) error {
	defer n.pinsW.notify()
	if c.Op == store.ChangeDelete {
		server, tool, _ := strings.Cut(c.Key, "/")
		if err := n.db.DeletePin(ctx, server, tool); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}
	var p store.Pin
	if err := json.Unmarshal(c.Body, &p); err != nil {
		return fmt.Errorf("change %d: pin: %w", c.Seq, err)
	}
	return n.putPin(ctx, p)
}
