package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// PinStore is the part of the store the [Pinner] needs.
type PinStore interface {
	CreatePin(ctx context.Context, p store.Pin) (store.Pin, error)
	UpdatePin(ctx context.Context, p store.Pin) (store.Pin, error)
	GetPin(ctx context.Context, server, tool string) (store.Pin, error)
	ListPins(ctx context.Context, server string) ([]store.Pin, error)
}

var _ PinStore = store.Store(nil)

// Pinner decides which of the tools an upstream announces may be shown and
// called, and records its decisions as pins (see [store.Pin]) and audit
// events.
//
// In pin mode tofu the first sighting of a tool is trusted and pinned; any
// later change of its descriptor quarantines it, and so does a new tool
// whose descriptor is that of a pinned tool that vanished (a rename). In
// mode signed a tool is trusted only if the publisher's verified manifest
// names it with its digest. A quarantined tool stays quarantined, whatever
// the upstream announces next, until [Pinner.Approve]. In mode off every
// tool is trusted and nothing is recorded.
type Pinner struct {
	Store   PinStore
	Emitter audit.Emitter
	// Log receives pin changes; nil discards them.
	Log *slog.Logger
	// ReadManifest reads the signed manifest of a server in mode signed;
	// nil reads the file the spec names.
	ReadManifest func(srv *Server) ([]byte, error)
	// Lint, when set, lints a tool when it is first pinned or its
	// descriptor is trusted anew by a signed manifest; a high finding
	// quarantines it, and the returned text (rule, field, evidence) is
	// the reason.
	Lint func(d Descriptor) (high bool, why string)

	mu sync.Mutex // serialises checks, so one process never races itself
}

// Verdict is what the gateway may do with one announced tool.
type Verdict struct {
	// Usable is true when the tool may be shown and called.
	Usable bool
	// State is the pin's state; empty in pin mode off.
	State string
	// Reason says why a tool is not usable.
	Reason string
	// Digest is the digest of the descriptor as announced.
	Digest string
}

// Check pins the tools srv announced and returns a verdict for each, by
// name. An error means nothing could be decided (the store or the audit
// log failed); the caller must then treat every tool as unusable.
func (p *Pinner) Check(ctx context.Context, srv *Server, tools []Descriptor) (map[string]Verdict, error) {
	out := make(map[string]Verdict, len(tools))
	type seen struct {
		d             Descriptor
		digest, shape string
	}
	var list []seen
	for _, t := range tools {
		digest, shape, err := t.Digests()
		if err != nil {
			out[t.Name] = Verdict{Reason: fmt.Sprintf("its descriptor cannot be pinned: %v", err)}
			continue
		}
		list = append(list, seen{t, digest, shape})
	}
	if srv.Pin == PinOff {
		for _, s := range list {
			out[s.d.Name] = Verdict{Usable: true, Digest: s.digest}
		}
		return out, nil
	}
	var (
		manifest    *Manifest
		manifestErr error
	)
	if srv.Pin == PinSigned {
		manifest, manifestErr = p.manifest(srv)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	pins, err := p.Store.ListPins(ctx, srv.Name)
	if err != nil {
		return nil, fmt.Errorf("check tools of %s: %w", srv.Target(), err)
	}
	byName := make(map[string]store.Pin, len(pins))
	for _, pin := range pins {
		byName[pin.Tool] = pin
	}
	announced := make(map[string]bool, len(list))
	for _, s := range list {
		announced[s.d.Name] = true
	}
	for _, s := range list {
		v, err := p.checkOne(ctx, srv, s.d, s.digest, s.shape, byName, announced, manifest, manifestErr)
		if err != nil {
			return nil, err
		}
		out[s.d.Name] = v
	}
	return out, nil
}

func (p *Pinner) manifest(srv *Server) (*Manifest, error) {
	read := p.ReadManifest
	if read == nil {
		read = func(srv *Server) ([]byte, error) { return os.ReadFile(srv.Spec.Manifest) }
	}
	raw, err := read(srv)
	if err != nil {
		return nil, fmt.Errorf("read the manifest: %w", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	if err := m.Verify(srv.PublisherKey); err != nil {
		return nil, err
	}
	return m, nil
}

func (p *Pinner) checkOne(ctx context.Context, srv *Server, d Descriptor, digest, shape string, pins map[string]store.Pin,
	announced map[string]bool, manifest *Manifest, manifestErr error) (Verdict, error) {
	tool := d.Name
	pin, known := pins[tool]
	if known {
		switch {
		case pin.State == store.PinQuarantined:
			if pin.Observed != digest {
				pin.Observed = digest
				if _, err := p.update(ctx, srv, pin, "changed again while quarantined"); err != nil {
					return Verdict{}, err
				}
			}
			return Verdict{State: pin.State, Reason: pin.Reason, Digest: digest}, nil
		case pin.Digest == digest:
			return Verdict{Usable: true, State: pin.State, Digest: digest}, nil
		}
		// A trusted tool changed.
		reason := "its descriptor changed since it was pinned"
		if srv.Pin == PinSigned {
			ok, why := matchesManifest(manifest, manifestErr, tool, digest)
			if ok {
				// The publisher signed the new descriptor.
				pin.Digest, pin.Observed, pin.Shape, pin.State, pin.Reason, pin.Actor = digest, digest, shape, store.PinPinned, "", ""
				if _, err := p.update(ctx, srv, pin, ""); err != nil {
					return Verdict{}, err
				}
				return Verdict{Usable: true, State: store.PinPinned, Digest: digest}, p.emit(ctx, audit.MCPToolPinned, srv, tool, digest, "the signed manifest names its new descriptor", nil)
			}
			reason = why
		}
		prev := pin.Digest
		pin.Observed, pin.State, pin.Reason = digest, store.PinQuarantined, reason
		if _, err := p.update(ctx, srv, pin, ""); err != nil {
			return Verdict{}, err
		}
		return Verdict{State: store.PinQuarantined, Reason: reason, Digest: digest},
			p.emit(ctx, audit.MCPToolQuarantined, srv, tool, digest, reason, map[string]string{"change": "changed", "previous_digest": prev})
	}

	fresh := store.Pin{Server: srv.Name, Tool: tool, Digest: digest, Observed: digest, Shape: shape, State: store.PinPinned}
	details := map[string]string{}
	if srv.Pin == PinSigned {
		if ok, why := matchesManifest(manifest, manifestErr, tool, digest); !ok {
			fresh.Digest, fresh.State, fresh.Reason = "", store.PinQuarantined, why
			details["change"] = "unsigned"
		}
	} else if from, ok := renamedFrom(pins, announced, shape); ok {
		fresh.Digest, fresh.State, fresh.Reason = "", store.PinQuarantined, fmt.Sprintf("it looks like the pinned tool %q renamed", from)
		details["change"] = "renamed"
		details["renamed_from"] = from
	}
	if fresh.State == store.PinPinned && p.Lint != nil {
		if high, why := p.Lint(d); high {
			fresh.Digest, fresh.State, fresh.Reason = "", store.PinQuarantined, "the poisoning lint found: "+why
			details["change"] = "lint"
		}
	}
	created, err := p.Store.CreatePin(ctx, fresh)
	if errors.Is(err, store.ErrExists) {
		// Another writer pinned it first: decide against its pin.
		cur, err := p.Store.GetPin(ctx, srv.Name, tool)
		if err != nil {
			return Verdict{}, fmt.Errorf("check tool %s of %s: %w", tool, srv.Target(), err)
		}
		pins[tool] = cur
		return p.checkOne(ctx, srv, d, digest, shape, pins, announced, manifest, manifestErr)
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("pin tool %s of %s: %w", tool, srv.Target(), err)
	}
	pins[tool] = created
	if created.State == store.PinQuarantined {
		p.logf(ctx, "tool quarantined", srv, tool, created.Reason)
		return Verdict{State: created.State, Reason: created.Reason, Digest: digest},
			p.emit(ctx, audit.MCPToolQuarantined, srv, tool, digest, created.Reason, details)
	}
	how := "first sighting (trust on first use)"
	if srv.Pin == PinSigned {
		how = "named by the signed manifest"
	}
	return Verdict{Usable: true, State: created.State, Digest: digest}, p.emit(ctx, audit.MCPToolPinned, srv, tool, digest, how, nil)
}

// matchesManifest reports whether the verified manifest names tool with
// digest, and if not, why.
func matchesManifest(m *Manifest, mErr error, tool, digest string) (bool, string) {
	if mErr != nil {
		return false, fmt.Sprintf("the signed manifest cannot be used: %v", mErr)
	}
	want, ok := m.Lookup(tool)
	switch {
	case !ok:
		return false, "the signed manifest does not name it"
	case want != digest:
		return false, "its descriptor does not match the signed manifest"
	}
	return true, ""
}

// renamedFrom returns the name of a trusted pin with the same shape that
// the upstream no longer announces.
func renamedFrom(pins map[string]store.Pin, announced map[string]bool, shape string) (string, bool) {
	for name, pin := range pins {
		if pin.Shape == shape && !announced[name] && pin.State != store.PinQuarantined {
			return name, true
		}
	}
	return "", false
}

func (p *Pinner) update(ctx context.Context, srv *Server, pin store.Pin, why string) (store.Pin, error) {
	out, err := p.Store.UpdatePin(ctx, pin)
	if err != nil {
		return store.Pin{}, fmt.Errorf("update pin of tool %s of %s: %w", pin.Tool, srv.Target(), err)
	}
	if why != "" {
		p.logf(ctx, "tool "+why, srv, pin.Tool, pin.Reason)
	}
	return out, nil
}

// Approve trusts the descriptor a quarantined tool announced last. actor
// (the approving human) is recorded in the pin and the audit event.
func (p *Pinner) Approve(ctx context.Context, srv, tool, actor string) (store.Pin, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pin, err := p.Store.GetPin(ctx, srv, tool)
	if err != nil {
		return store.Pin{}, fmt.Errorf("approve tool %s of MCPServer/%s: %w", tool, srv, err)
	}
	if pin.State != store.PinQuarantined {
		return pin, fmt.Errorf("approve tool %s of MCPServer/%s: it is %s, not quarantined: %w", tool, srv, pin.State, store.ErrPrecondition)
	}
	prev := pin.Digest
	pin.Digest, pin.State, pin.Reason, pin.Actor = pin.Observed, store.PinApproved, "", actor
	out, err := p.Store.UpdatePin(ctx, pin)
	if err != nil {
		return store.Pin{}, fmt.Errorf("approve tool %s of MCPServer/%s: %w", tool, srv, err)
	}
	e := audit.Event{Type: audit.MCPToolApproved, Actor: actor, Target: "MCPServer/" + srv, Action: "approve",
		Details: map[string]string{"tool": tool, "digest": out.Digest}}
	if prev != "" {
		e.Details["previous_digest"] = prev
	}
	if err := p.Emitter.Emit(ctx, e); err != nil {
		return out, fmt.Errorf("record approval of tool %s of MCPServer/%s: %w", tool, srv, err)
	}
	return out, nil
}

func (p *Pinner) emit(ctx context.Context, typ audit.Type, srv *Server, tool, digest, reason string, extra map[string]string) error {
	d := map[string]string{"tool": tool, "digest": digest, "pin_mode": srv.Pin}
	for k, v := range extra {
		d[k] = v
	}
	if err := p.Emitter.Emit(ctx, audit.Event{Type: typ, Target: srv.Target(), Reason: reason, Details: d, Node: nodeOf(ctx)}); err != nil {
		return fmt.Errorf("record pin of tool %s of %s: %w", tool, srv.Target(), err)
	}
	return nil
}

func (p *Pinner) logf(ctx context.Context, msg string, srv *Server, tool, reason string) {
	if p.Log != nil {
		p.Log.WarnContext(ctx, msg, "server", srv.Name, "tool", tool, "reason", reason)
	}
}

// Checker decides which of the tools an upstream announces may be shown
// and called, recording what it learns (pins, quarantines). The gateway's
// own [Pinner] is one; a node's gateway asks its server's (the pins,
// quarantines and approvals are the deployment's, not the node's).
type Checker interface {
	Check(ctx context.Context, srv *Server, tools []Descriptor) (map[string]Verdict, error)
}

var _ Checker = (*Pinner)(nil)

// FromPins decides the tools srv announced from stored pins alone,
// writing nothing: a tool is usable when its pin is trusted (pinned or
// approved) for exactly the descriptor announced. A tool without a pin,
// or whose descriptor differs from its pin's, is not usable: whoever
// checks with the pin store (the server) has not trusted it. In pin mode
// off every tool is usable.
func FromPins(srv *Server, tools []Descriptor, pins []store.Pin) map[string]Verdict {
	out := make(map[string]Verdict, len(tools))
	byName := make(map[string]store.Pin, len(pins))
	for _, p := range pins {
		if p.Server == srv.Name {
			byName[p.Tool] = p
		}
	}
	for _, t := range tools {
		digest, _, err := t.Digests()
		if err != nil {
			out[t.Name] = Verdict{Reason: fmt.Sprintf("its descriptor cannot be pinned: %v", err)}
			continue
		}
		if srv.Pin == PinOff {
			out[t.Name] = Verdict{Usable: true, Digest: digest}
			continue
		}
		pin, ok := byName[t.Name]
		switch {
		case !ok:
			out[t.Name] = Verdict{Digest: digest, Reason: "it has not been checked against the deployment's pins yet (the writ server was not reachable); it is held until it is"}
		case pin.State == store.PinQuarantined:
			out[t.Name] = Verdict{State: pin.State, Digest: digest, Reason: pin.Reason}
		case pin.Digest != digest:
			out[t.Name] = Verdict{State: pin.State, Digest: digest, Reason: "its descriptor differs from its pin and the writ server has not checked it yet; it is held until it has"}
		default:
			out[t.Name] = Verdict{Usable: true, State: pin.State, Digest: digest}
		}
	}
	return out
}

type nodeKey struct{}

// WithNode marks ctx as a check made for the writ node named node: the
// pin events it causes carry the node's name.
func WithNode(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, nodeKey{}, node)
}

func nodeOf(ctx context.Context) string {
	n, _ := ctx.Value(nodeKey{}).(string)
	return n
}
