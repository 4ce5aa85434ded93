package nodeserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/store"
)

// Entries is the registry as the publisher and the SVID signer see it.
type Entries interface {
	List() []store.Entry
	// BySpiffeID returns the entries naming a SPIFFE ID (shared: not to
	// be changed).
	BySpiffeID(id string) []store.Entry
	Get(name string) (store.Entry, bool)
	// ChangedSince names the entries changed after change gen, and the
	// current change; ok false: compare them all.
	ChangedSince(gen uint64) (names []string, now uint64, ok bool)
	Watch() (<-chan struct{}, func())
}

// Revocations is the kill switch as the publisher sees it.
type Revocations interface {
	All() []store.Revocation
	Watch() (<-chan struct{}, func())
	// Revoked reports whether a revocation of kind and value is in force.
	Revoked(kind, value string) bool
}

// Bundles is the trust bundle and its change notifications.
type Bundles interface {
	Bundle() *spiffebundle.Bundle
	Subscribe() (<-chan struct{}, func())
}

// Publisher turns changes of the server's state into the change feed:
// it watches the registry, the kill switch and the trust bundle, diffs
// each against what it published last, appends one change per difference
// and wakes the hub. At start it appends a resync marker, so that nodes
// resynchronise after a restart (a change committed just before a crash
// may have no feed entry).
type Publisher struct {
	Store       store.Changes
	Hub         *Hub
	Entries     Entries
	Revocations Revocations
	Bundles     Bundles
	// Resources lists the stored documents nodes and the other servers
	// follow (AccessPolicy, Service, MCPServer); optional. Call
	// [Publisher.ResourcesChanged] after they change.
	Resources func(ctx context.Context) ([]store.Resource, error)
	// Pins lists the MCP tool pins (every server's); optional. Call
	// [Publisher.PinsChanged] after one changes.
	Pins func(ctx context.Context) ([]store.Pin, error)
	Log  *slog.Logger

	mu      sync.Mutex
	entries map[string]store.Entry
	// entriesGen is the registry's change entries reflects (ChangedSince).
	entriesGen uint64
	revs       map[string]store.Revocation
	resources  map[string]int64 // kind/name -> version
	pins       map[string]int64 // server/tool -> revision
	bundle     []byte

	// own holds the sequences this publisher appended that Follow has not
	// passed yet; followed is the sequence up to which this server's
	// state holds every change (its own and the others').
	own       map[int64]bool
	following atomic.Bool
	followed  atomic.Int64

	// snapMu guards the last snapshot message, encoded: nodes that
	// (re)connect at the same sequence (every node after a server
	// restart) share one encoding.
	snapMu   sync.Mutex
	snapSeq  int64
	snapLine []byte
}

// BundleDoc is the trust bundle document now (nil if it cannot be
// encoded).
func (p *Publisher) BundleDoc() []byte {
	b, err := p.Bundles.Bundle().Marshal()
	if err != nil {
		return nil
	}
	return b
}

// SnapshotLine returns the snapshot message, encoded as one stream line,
// and its sequence. A snapshot read at sequence S holds every change up
// to S (and maybe later ones, which the node then applies twice,
// harmlessly), so one encoding serves every node that asks while the
// sequence stays S.
func (p *Publisher) SnapshotLine() ([]byte, int64, error) {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	seq := p.snapshotSeq()
	if p.snapLine != nil && p.snapSeq == seq {
		return p.snapLine, seq, nil
	}
	s, at := p.Snapshot()
	line, err := json.Marshal(nodeapi.Message{Type: nodeapi.MsgSnapshot, Seq: at, Snapshot: &s})
	if err != nil {
		return nil, 0, err
	}
	line = append(line, '\n')
	if at == seq {
		p.snapLine, p.snapSeq = line, at
	}
	return line, at, nil
}

// snapshotSeq is the sequence a snapshot taken now is at.
func (p *Publisher) snapshotSeq() int64 {
	seq := p.Hub.Last()
	if p.following.Load() {
		seq = min(seq, p.followed.Load())
	}
	return seq
}

// Start appends the resync marker and records the current state; call it
// before the node API serves.
func (p *Publisher) Start(ctx context.Context) error {
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	p.mu.Lock()
	p.entries, p.revs, p.resources, p.own = map[string]store.Entry{}, map[string]store.Revocation{}, map[string]int64{}, map[int64]bool{}
	p.pins = map[string]int64{}
	p.mu.Unlock()
	p.followed.Store(p.Hub.Last())
	seq, err := p.Store.AppendChange(ctx, store.Change{Kind: "server", Key: "start", Op: store.ChangeResync})
	if err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	p.mu.Lock()
	p.own[seq] = true
	p.mu.Unlock()
	// The first diff fills the maps; its changes are covered by the
	// marker, so they are recorded without being appended.
	p.sync(ctx, false, all)
	return p.Hub.Poke(ctx)
}

// Run publishes changes until ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	ech, stopE := p.Entries.Watch()
	defer stopE()
	rch, stopR := p.Revocations.Watch()
	defer stopR()
	bch, stopB := p.Bundles.Subscribe()
	defer stopB()
	// A change between Start and the watches above.
	p.sync(ctx, true, all)
	for {
		// Only the source that changed is diffed: a revocation does not
		// wait for a diff of every registration entry.
		var what sources
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ech:
			what.entries = true
		case <-rch:
			what.revocations = true
		case <-bch:
			what.bundle = true
		}
		p.sync(ctx, true, what)
	}
}

// sources says which sources a sync diffs.
type sources struct{ entries, revocations, bundle, resources, pins bool }

var all = sources{true, true, true, true, true}

// ResourcesChanged publishes the changes of the stored documents; the
// server calls it after an apply, a delete or a promotion.
func (p *Publisher) ResourcesChanged(ctx context.Context) {
	p.sync(ctx, true, sources{resources: true})
}

// PinsChanged publishes the changes of the MCP tool pins; the server
// calls it after a pin is created, updated (a quarantine, an approval)
// or deleted.
func (p *Publisher) PinsChanged(ctx context.Context) {
	p.sync(ctx, true, sources{pins: true})
}

// Registered reports whether some entry has the SPIFFE ID id (the
// registry's index: no map of every entry rebuilt at each change).
func (p *Publisher) Registered(id string) bool { return len(p.Entries.BySpiffeID(id)) > 0 }

// AllowedOn reports whether an entry for id may be issued on a node whose
// attestation satisfies have (nodeattest.Gates): one entry naming id
// requires no node selector it lacks.
func (p *Publisher) AllowedOn(id string, have []string) bool {
	for _, e := range p.Entries.BySpiffeID(id) {
		if nodeattest.Satisfied(nodeattest.Required(e), have) {
			return true
		}
	}
	return false
}

// sync diffs the state against the last published one and appends the
// differences (when publish is set).
func (p *Publisher) sync(ctx context.Context, publish bool, what sources) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []store.Change
	if what.entries {
		out = p.diffEntries(out)
	}
	if what.revocations {
		out = p.diffRevocations(out)
	}
	if what.bundle {
		if b, err := p.Bundles.Bundle().Marshal(); err == nil && !bytes.Equal(b, p.bundle) {
			p.bundle = b
			out = append(out, store.Change{Kind: nodeapi.KindBundle, Key: "bundle", Op: store.ChangePut, Body: b})
		}
	}
	if what.resources && p.Resources != nil {
		out = p.diffResources(ctx, out)
	}
	if what.pins && p.Pins != nil {
		out = p.diffPins(ctx, out)
	}
	p.appendAll(ctx, publish, out)
}

// ResourceKey is the change key of a stored document.
func ResourceKey(kind, name string) string { return kind + "/" + name }

func (p *Publisher) diffResources(ctx context.Context, out []store.Change) []store.Change {
	rs, err := p.Resources(ctx)
	if err != nil {
		p.Log.Error("list documents for the change feed", "error", err)
		return out
	}
	return diffVersions(p, out, nodeapi.KindResource, p.resources, rs, func(r store.Resource) (string, int64) {
		return ResourceKey(r.Kind, r.Name), r.Version
	})
}

func (p *Publisher) diffPins(ctx context.Context, out []store.Change) []store.Change {
	ps, err := p.Pins(ctx)
	if err != nil {
		p.Log.Error("list MCP tool pins for the change feed", "error", err)
		return out
	}
	return diffVersions(p, out, nodeapi.KindPin, p.pins, ps, func(pin store.Pin) (string, int64) {
		return nodeapi.PinKey(pin.Server, pin.Tool), pin.Revision
	})
}

// diffVersions appends a put of each item whose version differs from the
// one published last (have, by key) and a delete of each key no item
// has, and brings have up to date.
func diffVersions[T any](p *Publisher, out []store.Change, kind string, have map[string]int64, items []T, keyOf func(T) (string, int64)) []store.Change {
	seen := map[string]bool{}
	for _, it := range items {
		k, v := keyOf(it)
		seen[k] = true
		if old, ok := have[k]; ok && old == v {
			continue
		}
		have[k] = v
		out = p.put(out, kind, k, it)
	}
	for k := range have {
		if !seen[k] {
			delete(have, k)
			out = append(out, store.Change{Kind: kind, Key: k, Op: store.ChangeDelete})
		}
	}
	return out
}

// put appends a put of v under kind/key to out.
func (p *Publisher) put(out []store.Change, kind, key string, v any) []store.Change {
	b, err := json.Marshal(v)
	if err != nil {
		p.Log.Error("encode change", "kind", kind, "key", key, "error", err)
		return out
	}
	return append(out, store.Change{Kind: kind, Key: key, Op: store.ChangePut, Body: b})
}

func (p *Publisher) diffEntries(out []store.Change) []store.Change {
	names, gen, ok := p.Entries.ChangedSince(p.entriesGen)
	p.entriesGen = gen
	if ok {
		// Only the entries changed since the last diff: a create costs
		// the same with 10 or 10,000 entries.
		for _, name := range names {
			out = p.diffEntry(out, name)
		}
		return out
	}
	list := p.Entries.List()
	for _, e := range list {
		if old, ok := p.entries[e.Name]; ok && old.Revision == e.Revision && old.UpdatedAt.Equal(e.UpdatedAt) {
			continue
		}
		p.entries[e.Name] = e
		out = p.put(out, nodeapi.KindEntry, e.Name, e)
	}
	// Every listed name is published now: more published than listed
	// means some were deleted.
	if len(p.entries) > len(list) {
		seen := make(map[string]bool, len(list))
		for _, e := range list {
			seen[e.Name] = true
		}
		for name := range p.entries {
			if !seen[name] {
				delete(p.entries, name)
				out = append(out, store.Change{Kind: nodeapi.KindEntry, Key: name, Op: store.ChangeDelete})
			}
		}
	}
	return out
}

// diffEntry publishes the entry name as the registry has it now, or its
// deletion, unless it is what was published last.
func (p *Publisher) diffEntry(out []store.Change, name string) []store.Change {
	e, ok := p.Entries.Get(name)
	old, had := p.entries[name]
	switch {
	case !ok && had:
		delete(p.entries, name)
		return append(out, store.Change{Kind: nodeapi.KindEntry, Key: name, Op: store.ChangeDelete})
	case !ok || had && old.Revision == e.Revision && old.UpdatedAt.Equal(e.UpdatedAt):
		return out
	}
	p.entries[name] = e
	return p.put(out, nodeapi.KindEntry, name, e)
}

func (p *Publisher) diffRevocations(out []store.Change) []store.Change {
	seen := map[string]bool{}
	for _, r := range p.Revocations.All() {
		k := nodeapi.RevocationKey(r.Kind, r.Value)
		seen[k] = true
		if _, ok := p.revs[k]; ok {
			continue
		}
		p.revs[k] = r
		out = p.put(out, nodeapi.KindRevocation, k, RevocationToWire(r))
	}
	for k := range p.revs {
		if !seen[k] {
			delete(p.revs, k)
			out = append(out, store.Change{Kind: nodeapi.KindRevocation, Key: k, Op: store.ChangeDelete})
		}
	}
	return out
}

// appendAll appends the changes (revocations first) and wakes the hub.
func (p *Publisher) appendAll(ctx context.Context, publish bool, out []store.Change) {
	if !publish || len(out) == 0 {
		return
	}
	slices.SortStableFunc(out, func(a, b store.Change) int {
		// Revocations first: they must not wait behind a large batch.
		return boolInt(a.Kind != nodeapi.KindRevocation) - boolInt(b.Kind != nodeapi.KindRevocation)
	})
	for _, c := range out {
		seq, err := p.Store.AppendChange(ctx, c)
		if err != nil {
			// The nodes miss this change until their next resync; the
			// server's restart marker or an operator's restart brings it.
			p.Log.Error("append to the change feed; nodes resync at the next server start", "kind", c.Kind, "key", c.Key, "error", err)
			continue
		}
		if p.following.Load() {
			p.own[seq] = true
		}
	}
	if err := p.Hub.Poke(ctx); err != nil {
		p.Log.Error("read the change feed", "error", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RevocationToWire maps a revocation to its wire form.
func RevocationToWire(r store.Revocation) nodeapi.Revocation {
	return nodeapi.Revocation{Kind: r.Kind, Value: r.Value, Reason: r.Reason, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
}

// Snapshot returns the full state and the sequence it is at least as new
// as.
func (p *Publisher) Snapshot() (nodeapi.Snapshot, int64) {
	// First: the state read below is at least this new. Changes of other
	// servers this server has not taken in yet are sent after the
	// snapshot (applying one twice is harmless).
	seq := p.snapshotSeq()
	var s nodeapi.Snapshot
	s.Entries = p.Entries.List()
	for _, r := range p.Revocations.All() {
		s.Revocations = append(s.Revocations, RevocationToWire(r))
	}
	if b, err := p.Bundles.Bundle().Marshal(); err == nil {
		s.Bundle = b
	}
	if p.Resources != nil {
		rs, err := p.Resources(context.Background())
		if err != nil {
			p.Log.Error("list documents for a node's snapshot", "error", err)
		}
		s.Resources = rs
	}
	if p.Pins != nil {
		ps, err := p.Pins(context.Background())
		if err != nil {
			p.Log.Error("list MCP tool pins for a node's snapshot", "error", err)
		}
		s.Pins = ps
	}
	return s, seq
}

// pruneEvery and keepChanges bound the change feed in the store.
const (
	pruneEvery  = 10 * time.Minute
	keepChanges = 100_000
)

// Prune removes all but the newest keepChanges changes, every pruneEvery,
// until ctx ends.
func (p *Publisher) Prune(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if last := p.Hub.Last(); last > keepChanges {
			if _, err := p.Store.PruneChanges(ctx, last-keepChanges); err != nil {
				p.Log.Warn("prune the change feed", "error", err)
			}
		}
	}
}
