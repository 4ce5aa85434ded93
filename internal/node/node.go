// Package node composes a writ node (`writ serve --role node`): the SPIFFE
// Workload API on the host, over a local replica of the server's state
// that the server pushes to it, with SVIDs signed by the server and audit
// events spooled durably on the node until the server acknowledges them.
//
// A node joins its server once ([nodeattest]: a single-use join token, an
// x509pop machine certificate, or a plug-in prover such as TPM), receives
// a node SVID (spiffe://TD/writ/node/NAME) and from then on reaches the
// server's node API over mTLS with it (internal/node/nodeapi), renewing it
// at half life. One stream per node carries every change (entries,
// revocations, the trust bundle); the node applies each to its replica (a
// SQLite file in its data directory, so a restarted node serves at once),
// acknowledges its sequence, and resumes from it after a disconnect.
//
// Workload X.509- and JWT-SVIDs are signed by the server, not by the
// node: no CA key ever leaves the server, a stolen node can mint nothing
// the server would not sign for a registered identity, and eviction needs
// no certificate revocation lists. The price is that a workload that
// starts while the server is unreachable gets no new SVID; SVIDs already
// issued stay valid for their lifetime (1h by default).
//
// When the server is unreachable the node keeps serving from its last
// state for Config.Grace, then fails closed: the Workload API refuses
// every identity (and drops them from open streams) until the link is
// back. An evicted node fails closed at once and stops.
package node

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"github.com/writ-dev/writ/internal/workload"
)

// Config configures a node.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	// DataDir holds the replica, the node SVID, the spool and the state.
	DataDir string
	// Server is the server's node API (https://HOST:PORT, its
	// tls_listen address), or several servers' on one store separated
	// by commas: the node uses one and moves to the next when it cannot
	// reach it.
	Server string
	// ServerBundle is the trust bundle file used to trust the server
	// before the node holds one of its own (see config.Node).
	ServerBundle string
	// Name is the node name to ask for; defaults to the host name.
	Name string
	// Prover joins the node when it has no valid node SVID (join token,
	// x509pop, TPM, ...). Optional once joined.
	Prover nodeattest.Prover
	// Grace is how long the node serves without its server; default 5m.
	Grace time.Duration
	// ProxyListen, when set (and not "off"), runs the access proxy on
	// this address, enforcing the policies and services the server
	// pushes.
	ProxyListen string
	// Socket and SocketMode: the Workload API socket.
	Socket     string
	SocketMode os.FileMode
	Log        *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// NoDiscovery turns the runtime sensor off; otherwise the node scans
	// its host every DiscoveryInterval (default 30s) and reports the
	// inventory to the server (discover.go).
	NoDiscovery       bool
	DiscoveryInterval time.Duration
}

// Node is a running node.
type Node struct {
	c       Config
	client  *client
	db      *sqlite.DB
	reg     *registry.Registry
	revoke  *revoke.List
	spool   *Spool
	wl      *workload.Server
	ln      net.Listener
	px      *nodeProxy
	name    string
	attestN string // attestation id, from the node SVID

	bundle     atomic.Pointer[spiffebundle.Bundle]
	bundleW    watchers
	stateW     watchers // revocations, grace and eviction
	resourcesW watchers // stored documents
	pinsW      watchers // MCP tool pins

	seq         atomic.Int64
	contact     atomic.Int64 // unix nanoseconds of the last message from the server
	evicted     atomic.Bool
	stale       atomic.Bool
	ackWake     chan struct{}
	contactWake chan struct{}
}

// New opens the node's state, joins the server if the node has no valid
// node SVID, and listens on the Workload API socket.
func New(ctx context.Context, c Config) (_ *Node, err error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Minute
	}
	if c.Name == "" {
		h, _ := os.Hostname()
		c.Name = strings.ToLower(strings.SplitN(h, ".", 2)[0])
	}
	servers, err := ServerURLs(c.Server)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node data directory: %w", err)
	}
	n := &Node{c: c, ackWake: make(chan struct{}, 1), contactWake: make(chan struct{}, 1)}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	n.client = newClient(servers, c.TrustDomain, c.DataDir)
	if err := n.loadState(); err != nil {
		return nil, err
	}
	if b := n.bundle.Load(); b != nil {
		n.client.setBundle(b)
	} else if c.ServerBundle != "" {
		b, err := loadBundleFile(c.TrustDomain, c.ServerBundle)
		if err != nil {
			return nil, err
		}
		n.client.setBundle(b)
	} else {
		return nil, errors.New("node.server_bundle: the node has no trust bundle yet; save the server's bundle (curl $WRIT_ADDR/bundle) and pass it with --server-bundle")
	}
	if err := n.ensureSVID(ctx); err != nil {
		return nil, err
	}
	n.db, err = sqlite.Open(ctx, filepath.Join(c.DataDir, "replica.db"), sqlite.Options{Now: c.Now})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.db.Close() })
	n.reg, err = registry.New(ctx, registry.Config{TrustDomain: c.TrustDomain, Store: n.db, Emitter: audit.Discard, Log: c.Log})
	if err != nil {
		return nil, err
	}
	n.revoke, err = revoke.New(ctx, revoke.Config{Store: n.db, Emitter: audit.Discard, Log: c.Log, Now: c.Now})
	if err != nil {
		return nil, err
	}
	n.spool, err = OpenSpool(filepath.Join(c.DataDir, "spool"), c.Now)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.spool.Close() })
	if n.spool.fault, err = faultFrom(os.Getenv(FaultEnv)); err != nil {
		return nil, err
	}
	att, err := attest.New(attest.Config{Instances: n.db, Log: c.Log.With("component", "attest"), Now: c.Now})
	if err != nil {
		return nil, err
	}
	n.wl, err = workload.New(workload.Config{
		TrustDomain:     c.TrustDomain,
		Attestor:        att,
		Authority:       remoteAuthority{n},
		Registry:        gatedRegistry{Registry: n.reg, attestor: proverName(c.Prover)},
		Emitter:         nodeEmitter{n},
		Log:             c.Log.With("component", "workload"),
		Now:             c.Now,
		Revoked:         n.refused,
		RevocationWatch: n.stateW.watch,
	})
	if err != nil {
		return nil, err
	}
	if err := n.initProxy(ctx, att); err != nil {
		return nil, err
	}
	closers = append(closers, func() {
		if n.px != nil {
			n.px.gw.Close()
			n.px.ln.Close()
			n.px.enforcer.Close()
		}
	})
	n.ln, err = workload.Listen(c.Socket, c.SocketMode)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// ServerURLs splits node.server: one https:// URL or several separated by
// commas (servers on one store).
func ServerURLs(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		u, err := url.Parse(part)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("node.server %q: each server's node API as an https://HOST:PORT URL (its tls_listen address), several separated by commas", part)
		}
		out = append(out, part)
	}
	return out, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// ServerInUse is the node API URL of the server the node uses now.
func (n *Node) ServerInUse() string { b, _ := n.client.base(); return b }

// Seq is the last change sequence the node applied.
func (n *Node) Seq() int64 { return n.seq.Load() }

// ensureSVID loads the stored node SVID, or joins when there is none or
// it expired.
func (n *Node) ensureSVID(ctx context.Context) error {
	s, err := n.client.loadSVID()
	if err != nil {
		return err
	}
	if s != nil && n.c.Now().Before(s.Certificates[0].NotAfter) {
		n.client.mu.Lock()
		n.client.svid = s
		n.client.mu.Unlock()
	} else {
		if n.c.Prover == nil {
			if s != nil {
				return errors.New("the node SVID expired while the node was away; join again: writ node token create on the server, then --join-token")
			}
			return errors.New("the node has not joined: pass --join-token (writ node token create on the server), node.x509pop_cert and node.x509pop_key, or --attest tpm with --tpm-device or --tpm-swtpm")
		}
		if s, err = n.client.join(ctx, n.c.Prover, n.c.Name); err != nil {
			return err
		}
		n.seq.Store(0) // a new attestation starts from a snapshot
		n.c.Log.Info("joined the server", "attestor", n.c.Prover.Name(), "spiffe_id", s.ID.String())
	}
	n.name = s.ID.Path()[strings.LastIndex(s.ID.Path(), "/")+1:]
	n.attestN = s.Certificates[0].Subject.SerialNumber
	if b := n.client.bundle; b != nil {
		n.bundle.Store(b)
	}
	return nil
}

// state is what the node keeps between runs besides the replica.
type state struct {
	Seq     int64           `json:"seq"`
	Contact time.Time       `json:"contact"`
	Bundle  json.RawMessage `json:"bundle,omitempty"`
}

func (n *Node) stateFile() string { return filepath.Join(n.c.DataDir, "node-state.json") }

func (n *Node) loadState() error {
	b, err := os.ReadFile(n.stateFile())
	if errors.Is(err, os.ErrNotExist) {
		n.contact.Store(n.c.Now().UnixNano())
		return nil
	}
	if err != nil {
		return err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("node state %s: %w (remove it to resynchronise)", n.stateFile(), err)
	}
	n.seq.Store(s.Seq)
	n.contact.Store(s.Contact.UnixNano())
	if len(s.Bundle) > 0 {
		if bd, err := spiffebundle.Parse(n.c.TrustDomain, s.Bundle); err == nil {
			n.bundle.Store(bd)
		}
	}
	return nil
}

func (n *Node) saveState() error {
	s := state{Seq: n.seq.Load(), Contact: time.Unix(0, n.contact.Load()).UTC()}
	if b := n.bundle.Load(); b != nil {
		s.Bundle, _ = b.Marshal()
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := n.stateFile() + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, n.stateFile())
}

// refused is the Workload API's revocation check: a revoked instance or
// identity, and everything while the node fails closed.
func (n *Node) refused(instance, spiffeID string) bool {
	return n.failClosed() || n.revoke.InstanceRevoked(instance, spiffeID)
}

// failClosed reports whether the node refuses everything: evicted, or
// away from its server longer than the grace period.
func (n *Node) failClosed() bool {
	if n.evicted.Load() {
		return true
	}
	return n.c.Now().Sub(time.Unix(0, n.contact.Load())) > n.c.Grace
}

// FailingClosed reports whether the node refuses everything now.
func (n *Node) FailingClosed() bool { return n.failClosed() }

// touch records a message from the server.
func (n *Node) touch() {
	n.contact.Store(n.c.Now().UnixNano())
	select {
	case n.contactWake <- struct{}{}:
	default:
	}
}

// Close releases what New acquired, for a node that will not Run.
func (n *Node) Close() error {
	n.ln.Close()
	if n.px != nil {
		n.px.gw.Close()
		n.px.ln.Close()
		n.px.enforcer.Close()
	}
	n.spool.Close()
	os.Remove(n.c.Socket)
	return n.db.Close()
}

// ErrEvicted is returned by Run when the server evicted the node.
var ErrEvicted = errors.New("this node was evicted by its server; join again with a new join token (writ node token create)")

// Run serves until ctx ends or the node is evicted.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	run(func() {
		if err := n.wl.Serve(n.ln); err != nil {
			errc <- fmt.Errorf("workload API: %w", err)
		}
	})
	run(func() {
		if err := n.follow(ctx); err != nil {
			errc <- err
		}
	})
	run(func() { n.renewLoop(ctx) })
	run(func() { n.ackLoop(ctx) })
	run(func() { n.graceLoop(ctx) })
	run(func() { n.forwardRevocations(ctx) })
	run(func() { n.spool.Send(ctx, n.c.Log.With("component", "spool"), n.deliver) })
	run(func() { n.runProxy(ctx, errc) })
	run(func() { n.discoverLoop(ctx) })
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	n.wl.Stop(stopCtx)
	n.stopProxy(stopCtx)
	wg.Wait()
	os.Remove(n.c.Socket)
	return errors.Join(err, n.saveState(), n.spool.Close(), n.db.Close())
}

// follow keeps the change stream open, reconnecting with backoff.
func (n *Node) follow(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		got, err := n.streamOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if refused(err) {
			n.evicted.Store(true)
			n.stateW.notify()
			return fmt.Errorf("%w (%v)", ErrEvicted, err)
		}
		if got {
			backoff = 100 * time.Millisecond
		}
		n.c.Log.Warn("change stream ended; reconnecting", "error", err, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

// streamOnce follows the stream until it breaks; got reports whether any
// message arrived.
func (n *Node) streamOnce(ctx context.Context) (got bool, err error) {
	base, at := n.client.base()
	defer func() {
		// The stream broke, or never started, for want of this server:
		// the next attempt goes to the next server.
		if err != nil && !refused(err) && ctx.Err() == nil && n.client.failover(at) {
			next, _ := n.client.base()
			n.c.Log.Warn("moving to another server", "from", base, "to", next, "error", err)
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s?after=%d", base, nodeapi.PathStream, n.seq.Load()), nil)
	if err != nil {
		return false, err
	}
	resp, err := n.client.stream.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg := make([]byte, 512)
		k, _ := resp.Body.Read(msg)
		return false, &serverError{code: resp.StatusCode, msg: strings.TrimSpace(string(msg[:k])), path: nodeapi.PathStream}
	}
	rd := nodeapi.NewReader(resp.Body)
	for {
		m, err := rd.Next()
		if err != nil {
			return got, err
		}
		got = true
		if err := n.apply(ctx, m); err != nil {
			return got, err
		}
		if m.Type != nodeapi.MsgHeartbeat || m.Seq > n.seq.Load() {
			n.seq.Store(max(m.Seq, n.seq.Load()))
		}
		n.touch()
		if err := n.saveState(); err != nil {
			n.c.Log.Warn("save node state", "error", err)
		}
		select {
		case n.ackWake <- struct{}{}:
		default:
		}
	}
}

// apply applies one stream message to the replica.
func (n *Node) apply(ctx context.Context, m nodeapi.Message) error {
	switch m.Type {
	case nodeapi.MsgSnapshot:
		return n.applySnapshot(ctx, m.Snapshot)
	case nodeapi.MsgChange:
		return n.applyChange(ctx, m.Change)
	}
	return nil
}

func (n *Node) applySnapshot(ctx context.Context, s *nodeapi.Snapshot) error {
	keep := map[string]bool{}
	for _, e := range s.Entries {
		keep[e.Name] = true
		if err := n.putEntry(ctx, e); err != nil {
			return err
		}
	}
	for _, e := range n.reg.List() {
		if !keep[e.Name] {
			if err := n.reg.Delete(ctx, "server", e.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	keep = map[string]bool{}
	for _, r := range s.Revocations {
		keep[nodeapi.RevocationKey(r.Kind, r.Value)] = true
		if err := n.putRevocation(ctx, r); err != nil {
			return err
		}
	}
	for _, r := range n.revoke.All() {
		if !keep[nodeapi.RevocationKey(r.Kind, r.Value)] {
			if _, err := n.revoke.Lift(ctx, r.Kind, r.Value, "server", "lifted on the server"); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	if err := n.syncResources(ctx, s.Resources); err != nil {
		return err
	}
	if err := n.syncPins(ctx, s.Pins); err != nil {
		return err
	}
	if len(s.Bundle) > 0 {
		return n.setBundle(s.Bundle)
	}
	return nil
}

// syncResources makes the replica's stored documents of the followed
// kinds those of a snapshot.
func (n *Node) syncResources(ctx context.Context, rs []store.Resource) error {
	keep := map[string]bool{}
	for _, r := range rs {
		keep[r.Kind+"/"+r.Name] = true
		if err := n.putResource(ctx, r); err != nil {
			return err
		}
	}
	for _, k := range followedKinds {
		have, err := n.db.ListResources(ctx, k)
		if err != nil {
			return err
		}
		for _, r := range have {
			if !keep[r.Kind+"/"+r.Name] {
				if err := n.db.DeleteResource(ctx, r.Kind, r.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		}
	}
	n.resourcesW.notify()
	return nil
}

// followedKinds are the document kinds a server publishes to nodes.
var followedKinds = []string{"AccessPolicy", "Service", "MCPServer"}

func (n *Node) putResource(ctx context.Context, r store.Resource) error {
	if r.Kind == "" || r.Name == "" {
		return fmt.Errorf("apply document: no kind or name")
	}
	// The replica keeps the server's record whole (its version, actor
	// and time are the server's, not the replica's) as the spec.
	whole, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, _, err := n.db.PutResource(ctx, store.Resource{Kind: r.Kind, Name: r.Name, Spec: whole, Actor: "server"}); err != nil {
		return fmt.Errorf("apply document %s/%s: %w", r.Kind, r.Name, err)
	}
	return nil
}

// Resources returns the replica's stored documents of kind (AccessPolicy,
// Service, MCPServer) as the server published them.
func (n *Node) Resources(ctx context.Context, kind string) ([]store.Resource, error) {
	rs, err := n.db.ListResources(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make([]store.Resource, 0, len(rs))
	for _, r := range rs {
		var whole store.Resource
		if err := json.Unmarshal(r.Spec, &whole); err != nil {
			return nil, fmt.Errorf("replica document %s/%s: %w (remove the node's data directory to resynchronise)", r.Kind, r.Name, err)
		}
		out = append(out, whole)
	}
	return out, nil
}

// WatchResources fires after the replica's documents changed.
func (n *Node) WatchResources() (<-chan struct{}, func()) { return n.resourcesW.watch() }

func (n *Node) putEntry(ctx context.Context, e store.Entry) error {
	e.Revision, e.CreatedAt, e.UpdatedAt = 0, time.Time{}, time.Time{}
	if _, _, _, err := n.reg.Upsert(ctx, "server", e); err != nil {
		return fmt.Errorf("apply entry %s: %w", e.Name, err)
	}
	return nil
}

func (n *Node) putRevocation(ctx context.Context, r nodeapi.Revocation) error {
	if !revoke.ValidKind(r.Kind) {
		return fmt.Errorf("apply revocation: kind %q", r.Kind)
	}
	_, _, err := n.revoke.Revoke(ctx, store.Revocation{Kind: r.Kind, Value: r.Value, Reason: r.Reason, Actor: "server",
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt})
	if err != nil {
		return fmt.Errorf("apply revocation %s %s: %w", r.Kind, r.Value, err)
	}
	return nil
}

func (n *Node) applyChange(ctx context.Context, c *store.Change) error {
	switch c.Kind {
	case nodeapi.KindEntry:
		if c.Op == store.ChangeDelete {
			if err := n.reg.Delete(ctx, "server", c.Key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}
		var e store.Entry
		if err := json.Unmarshal(c.Body, &e); err != nil {
			return fmt.Errorf("change %d: entry: %w", c.Seq, err)
		}
		return n.putEntry(ctx, e)
	case nodeapi.KindRevocation:
		if c.Op == store.ChangeDelete {
			kind, value, _ := strings.Cut(c.Key, "/")
			if _, err := n.revoke.Lift(ctx, kind, value, "server", "lifted on the server"); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}
		var r nodeapi.Revocation
		if err := json.Unmarshal(c.Body, &r); err != nil {
			return fmt.Errorf("change %d: revocation: %w", c.Seq, err)
		}
		return n.putRevocation(ctx, r)
	case nodeapi.KindBundle:
		return n.setBundle(c.Body)
	case nodeapi.KindResource:
		defer n.resourcesW.notify()
		if c.Op == store.ChangeDelete {
			kind, name, _ := strings.Cut(c.Key, "/")
			if err := n.db.DeleteResource(ctx, kind, name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}
		var r store.Resource
		if err := json.Unmarshal(c.Body, &r); err != nil {
			return fmt.Errorf("change %d: document: %w", c.Seq, err)
		}
		return n.putResource(ctx, r)
	case nodeapi.KindPin:
		return n.applyPin(ctx, c)
	case nodeapi.KindNode:
		if c.Key == n.attestN {
			n.evicted.Store(true)
			n.stateW.notify()
		}
	}
	// Kinds this node does not serve (yet) are skipped.
	return nil
}

func (n *Node) setBundle(doc []byte) error {
	b, err := spiffebundle.Parse(n.c.TrustDomain, doc)
	if err != nil {
		return fmt.Errorf("bundle from the server: %w", err)
	}
	n.bundle.Store(b)
	n.client.setBundle(b)
	n.bundleW.notify()
	return nil
}

// ackLoop acknowledges the applied sequence, coalesced.
func (n *Node) ackLoop(ctx context.Context) {
	var acked int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.ackWake:
		}
		seq := n.seq.Load()
		if seq == acked {
			continue
		}
		if err := n.client.call(ctx, http.MethodPost, nodeapi.PathAck, nodeapi.AckRequest{Seq: seq}, nil); err != nil {
			if ctx.Err() == nil {
				n.c.Log.Debug("acknowledge changes", "error", err)
			}
			continue
		}
		acked = seq
	}
}

// renewLoop renews the node SVID at half its life.
func (n *Node) renewLoop(ctx context.Context) {
	for {
		s := n.client.currentSVID()
		leaf := s.Certificates[0]
		at := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		wait := at.Sub(n.c.Now())
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if _, err := n.client.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			n.c.Log.Warn("renew the node SVID; retrying", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// graceLoop tells the Workload API's streams when the node starts and
// stops failing closed for want of its server.
func (n *Node) graceLoop(ctx context.Context) {
	for {
		was := n.stale.Load()
		deadline := time.Unix(0, n.contact.Load()).Add(n.c.Grace)
		wait := deadline.Sub(n.c.Now())
		if now := n.failClosed(); now != was {
			n.stale.Store(now)
			if now {
				n.c.Log.Error("the server has been unreachable longer than the grace period; refusing every identity", "grace", n.c.Grace)
			} else {
				n.c.Log.Info("the server is reachable again; serving")
			}
			n.stateW.notify()
		}
		// Checked at least every second: the clock may be another's
		// (tests inject one), and a second is well inside any grace.
		if wait <= 0 || wait > time.Second {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-n.contactWake:
		case <-time.After(wait + time.Millisecond):
		}
	}
}

func (n *Node) forwardRevocations(ctx context.Context) {
	ch, stop := n.revoke.Watch()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			n.stateW.notify()
		}
	}
}

// deliver sends spooled events to the server.
func (n *Node) deliver(ctx context.Context, es []audit.Event) error {
	return n.client.call(ctx, http.MethodPost, nodeapi.PathAudit, es, nil)
}

// nodeEmitter spools the node's events, marked with its name.
type nodeEmitter struct{ n *Node }

func (e nodeEmitter) Emit(ctx context.Context, ev audit.Event) error {
	ev.Node = e.n.name
	return e.n.spool.Emit(ctx, ev)
}

// remoteAuthority signs through the server and serves the bundle the
// server pushed.
type remoteAuthority struct{ n *Node }

func (a remoteAuthority) SignX509SVID(ctx context.Context, p ca.X509SVIDParams) ([]*x509.Certificate, error) {
	if a.n.failClosed() {
		return nil, errors.New("the node is failing closed (server unreachable past the grace period, or evicted)")
	}
	pub, err := x509.MarshalPKIXPublicKey(p.PublicKey)
	if err != nil {
		return nil, err
	}
	var ans nodeapi.SVIDAnswer
	if err := a.n.client.call(ctx, http.MethodPost, nodeapi.PathX509SVID, nodeapi.X509SVIDRequest{SpiffeID: p.ID.String(),
		PublicKey: pub, TTL: p.TTL, Instance: p.Instance}, &ans); err != nil {
		return nil, err
	}
	return parseChain(ans.Chain)
}

func (a remoteAuthority) SignJWTSVID(ctx context.Context, p ca.JWTSVIDParams) (string, time.Time, error) {
	if a.n.failClosed() {
		return "", time.Time{}, errors.New("the node is failing closed (server unreachable past the grace period, or evicted)")
	}
	var ans nodeapi.JWTSVIDAnswer
	if err := a.n.client.call(ctx, http.MethodPost, nodeapi.PathJWTSVID, nodeapi.JWTSVIDRequest{SpiffeID: p.ID.String(),
		Audience: p.Audience, TTL: p.TTL, Instance: p.Instance}, &ans); err != nil {
		return "", time.Time{}, err
	}
	return ans.Token, ans.Expires, nil
}

func (a remoteAuthority) Bundle() *spiffebundle.Bundle {
	if b := a.n.bundle.Load(); b != nil {
		return b.Clone()
	}
	return spiffebundle.New(a.n.c.TrustDomain)
}

func (a remoteAuthority) Subscribe() (<-chan struct{}, func()) { return a.n.bundleW.watch() }

// watchers is a set of coalescing notification channels.
type watchers struct {
	mu sync.Mutex
	m  map[chan struct{}]struct{}
}

func (w *watchers) watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = map[chan struct{}]struct{}{}
	}
	w.m[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.m, ch)
		w.mu.Unlock()
	}
}

func (w *watchers) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.m {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// proverName is the attestor a node joins with, "" without a prover.
func proverName(p nodeattest.Prover) string {
	if p == nil {
		return ""
	}
	return p.Name()
}
