package graph

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// Query selects part of the graph. The zero value is the whole graph.
type Query struct {
	// Since and Until bound when accesses happened (widened to whole
	// hours); the inventory is joined as it is now.
	Since, Until time.Time
	// Identity selects accesses of this SPIFFE ID or IDs under it as a
	// path, and the discovered processes running as it.
	Identity string
	Instance string
	Task     string
	// User selects accesses on behalf of this user.
	User string
	// Service selects accesses of this service or MCP server, and
	// processes reaching it around writ.
	Service string
	// Credential selects accesses with this brokered credential injected,
	// and discovered credentials with this name or id and their holders.
	Credential string
	// To, a node id such as "service:payments", keeps only the paths into
	// that node. CrownJewels keeps only the paths into the services and
	// MCP servers marked as crown jewels.
	To          string
	CrownJewels bool
	// NoInventory leaves the runtime sensor's inventory out. It is always
	// left out when Instance, Task or User is set (the sensor knows none
	// of them).
	NoInventory bool
	// MaxFacts bounds the aggregates read (default 200,000); MaxPaths the
	// paths returned (default 200).
	MaxFacts, MaxPaths int
}

// Limits of a query.
const (
	DefaultMaxFacts = 200000
	DefaultMaxPaths = 200
	maxPathLength   = 10
)

// Check returns an error naming the first field of q that is not usable.
func (q *Query) Check() error {
	switch {
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since):
		return fmt.Errorf("until %s is not after since %s", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	case q.MaxFacts < 0 || q.MaxPaths < 0:
		return errors.New("limits must not be negative")
	case q.To != "" && q.CrownJewels:
		return errors.New("to and crown_jewels are exclusive: ask for the paths into one node or into every crown jewel")
	}
	if q.To != "" {
		kind, name, ok := strings.Cut(q.To, ":")
		if !ok || name == "" || !slices.Contains(kinds, kind) {
			return fmt.Errorf("to %q: want KIND:NAME with KIND one of %s", q.To, strings.Join(kinds, ", "))
		}
	}
	for _, f := range []struct{ name, v string }{{"identity", q.Identity}, {"instance", q.Instance}, {"task", q.Task},
		{"user", q.User}, {"service", q.Service}, {"credential", q.Credential}, {"to", q.To}} {
		if len(f.v) > 1024 {
			return fmt.Errorf("%s is %d bytes long; at most 1024", f.name, len(f.v))
		}
		if strings.ContainsFunc(f.v, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) {
			return fmt.Errorf("%s %q holds control characters or invalid UTF-8", f.name, f.v)
		}
	}
	return nil
}

var kinds = []string{KindUser, KindIdentity, KindInstance, KindTask, KindService, KindMCPServer, KindTool, KindCredential, KindProcess}

// Inventory lists what the runtime sensor recorded (store.Inventory).
type Inventory interface {
	ListInventory(ctx context.Context, f store.InventoryFilter) ([]store.InventoryItem, error)
}

// Lineage answers queries over the graph.
type Lineage struct {
	Builder *Builder
	// Inventory is joined into answers; optional.
	Inventory Inventory
	// CrownJewels returns the names of the services and MCP servers
	// marked as crown jewels; optional.
	CrownJewels func(ctx context.Context) ([]string, error)
	// HourlyOnly sums hourly facts for every window, neither the daily
	// nor the all-time rollup (the reference they are tested against).
	HourlyOnly bool
}

// Query folds in the events appended since the last query, then answers
// q from the stored aggregates joined with the inventory.
func (l *Lineage) Query(ctx context.Context, q Query) (*Graph, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	built, err := l.Builder.Sync(ctx)
	if err != nil {
		return nil, err
	}
	maxFacts := cmpOr(q.MaxFacts, DefaultMaxFacts)
	// Without a window, the all-time rollup: one row per path. So too
	// for a window from before the first fact on: it holds every fact.
	// (Facts folded meanwhile are later than since, inside the window.)
	allTime := q.Since.IsZero() && q.Until.IsZero() && !l.HourlyOnly
	if !q.Since.IsZero() && q.Until.IsZero() && !l.HourlyOnly {
		start, ok, err := l.Builder.Facts.LineageStart(ctx)
		if err != nil {
			return nil, fmt.Errorf("lineage: %w", err)
		}
		allTime = !ok || !start.Before(q.Since.Truncate(time.Hour))
	}
	target := q.Service
	if kind, name, _ := strings.Cut(q.To, ":"); target == "" && (kind == KindService || kind == KindMCPServer) {
		// Every path into a service or MCP server is an access of it:
		// read only those.
		target = name
	}
	var jewels []string
	if l.CrownJewels != nil {
		if jewels, err = l.CrownJewels(ctx); err != nil {
			return nil, fmt.Errorf("lineage: crown jewels: %w", err)
		}
	}
	reads := []string{target}
	if q.CrownJewels && target == "" {
		// Every path into a crown jewel is an access of one.
		reads = jewels
	}
	var facts []store.LineageFact
	for _, t := range reads {
		f := store.LineageFilter{Since: q.Since, Until: q.Until, Identity: q.Identity,
			Instance: q.Instance, Task: q.Task, User: q.User, Target: t, Credential: q.Credential, Limit: maxFacts + 1 - len(facts), AllTime: allTime,
			HourlyOnly: l.HourlyOnly}
		if allTime {
			// The rollup holds the window's every fact; the stores read
			// it whole (SQLite through its covering index) only so.
			f.Since, f.Until = time.Time{}, time.Time{}
		}
		more, err := l.Builder.Facts.ListLineage(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("lineage: %w", err)
		}
		if facts == nil {
			facts = more // the one read of most queries, not copied
		} else {
			facts = append(facts, more...)
		}
		if len(facts) > maxFacts {
			break
		}
	}
	truncated := len(facts) > maxFacts
	if truncated {
		facts = facts[:maxFacts]
	}
	gb := newGraphBuilder(len(facts))
	for i := range facts {
		gb.addFact(&facts[i])
	}
	if l.Inventory != nil && !q.NoInventory && q.Instance == "" && q.Task == "" && q.User == "" {
		items, err := l.Inventory.ListInventory(ctx, store.InventoryFilter{})
		if err != nil {
			return nil, fmt.Errorf("lineage: %w", err)
		}
		gb.addInventory(items, inventoryFilter{identity: q.Identity, service: q.Service, credential: q.Credential})
	}
	if l.CrownJewels != nil {
		for _, name := range jewels {
			for _, kind := range []string{KindService, KindMCPServer} {
				if n := gb.nodes[NodeID(kind, name)]; n != nil {
					n.CrownJewel = true
				}
			}
		}
	}
	g := gb.graph()
	g.Built, g.Truncated = built, truncated
	var targets []string
	switch {
	case q.To != "":
		targets = []string{q.To}
	case q.CrownJewels:
		for _, n := range g.Nodes {
			if n.CrownJewel {
				targets = append(targets, n.ID)
			}
		}
	default:
		return g, nil
	}
	paths, cut := PathsInto(g, targets, cmpOr(q.MaxPaths, DefaultMaxPaths))
	g.Paths, g.Truncated = paths, g.Truncated || cut
	g.keepPaths()
	return g, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// PathsInto returns the simple paths of g from a node with no incoming
// edge into any of targets, each at most maxPathLength nodes long, at
// most max of them, and whether that bound cut the answer short.
func PathsInto(g *Graph, targets []string, max int) (paths [][]string, truncated bool) {
	in := map[string][]string{}
	for _, e := range g.Edges {
		in[e.To] = append(in[e.To], e.From)
	}
	var walk func(path []string) bool
	walk = func(path []string) bool {
		head := path[len(path)-1]
		froms := in[head]
		if len(froms) == 0 && len(path) > 1 {
			p := slices.Clone(path)
			slices.Reverse(p)
			paths = append(paths, p)
			return len(paths) < max
		}
		if len(path) >= maxPathLength {
			return true
		}
		for _, f := range froms {
			if slices.Contains(path, f) {
				continue
			}
			if !walk(append(path, f)) {
				truncated = true
				return false
			}
		}
		return true
	}
	for _, t := range targets {
		if !walk([]string{t}) {
			break
		}
	}
	return paths, truncated
}

// keepPaths reduces g to the nodes and edges on its paths.
func (g *Graph) keepPaths() {
	onNode := map[string]bool{}
	onEdge := map[[2]string]bool{}
	for _, p := range g.Paths {
		for i, id := range p {
			onNode[id] = true
			if i > 0 {
				onEdge[[2]string{p[i-1], id}] = true
			}
		}
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(n Node) bool { return !onNode[n.ID] })
	g.Edges = slices.DeleteFunc(g.Edges, func(e Edge) bool { return !onEdge[[2]string{e.From, e.To}] })
}
