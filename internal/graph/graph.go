package graph

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// Node kinds.
const (
	KindUser       = "user"       // a human an agent acts on behalf of
	KindIdentity   = "identity"   // a SPIFFE ID
	KindInstance   = "instance"   // an attested running copy of an identity
	KindTask       = "task"       // a task accesses were made in
	KindService    = "service"    // a writ Service
	KindMCPServer  = "mcp_server" // a writ MCPServer
	KindTool       = "tool"       // a tool, resource or prompt of an MCP server
	KindCredential = "credential" // an upstream credential (brokered, or discovered on a host)
	KindProcess    = "process"    // a process the runtime sensor found (agent, MCP server, holder of a credential)
)

// Edge kinds, each from the kind on its left to the kind on its right.
const (
	EdgeOnBehalfOf = "on_behalf_of" // user → identity
	EdgeInstance   = "instance"     // identity → instance
	EdgeTask       = "task"         // instance (or identity) → task
	EdgeReached    = "reached"      // instance (or identity) → service or MCP server, through writ
	EdgeTool       = "tool"         // MCP server → tool
	EdgeInjected   = "injected"     // service or MCP server → brokered credential writ injected
	EdgeRunsAs     = "runs_as"      // identity → process: a discovered process with that identity
	EdgeHolds      = "holds"        // process → credential it holds in its environment or can read in a file
	EdgeDirect     = "direct"       // process → service: a connection to its upstream around writ (shadow)
	EdgeOpens      = "opens"        // credential found by `writ scan --report` → service it authenticates to (its blast radius)
)

// Node is one thing in the graph. ID is "KIND:NAME" and unique.
type Node struct {
	ID    string
	Kind  string
	Name  string
	Label string
	// Shadow marks what runs around writ (a discovered agent without
	// identity, a static credential, ...).
	Shadow     bool
	CrownJewel bool
	// Attrs are facts about the node (a credential's fingerprint, a
	// process's host and pid); never secret values.
	Attrs               map[string]string
	FirstSeen, LastSeen time.Time
}

// Edge is a relation between two nodes with the counts of the accesses
// that went along it (for access edges) and when it was first and last
// seen.
type Edge struct {
	From, To, Kind        string
	Allowed, Denied, Held int64
	// ApprovedBy lists who approved the held accesses along the edge.
	ApprovedBy          []string
	Shadow              bool
	FirstSeen, LastSeen time.Time
}

// Graph is the answer to a [Query].
type Graph struct {
	// Built is how many audit events the stored aggregates hold (the
	// index of the next one to fold).
	Built int64
	Nodes []Node
	Edges []Edge
	// Paths are the paths into the query's To node (or into every crown
	// jewel), each a list of node ids from a source to the target.
	Paths [][]string
	// Truncated says that MaxPaths or MaxFacts cut the answer short.
	Truncated bool
}

type graphBuilder struct {
	nodes map[string]*Node
	edges map[[3]string]*Edge
}

// newGraphBuilder returns a builder sized for facts facts (a path adds
// about half an edge and a quarter of a node in the 1M-event bench), so
// the whole graph's maps are not rehashed as they grow.
func newGraphBuilder(facts int) *graphBuilder {
	return &graphBuilder{nodes: make(map[string]*Node, facts/4), edges: make(map[[3]string]*Edge, facts/2)}
}

// NodeID returns the id of the node of kind and name.
func NodeID(kind, name string) string { return kind + ":" + name }

func (g *graphBuilder) node(kind, name, label string, first, last time.Time) string {
	id := NodeID(kind, name)
	n := g.nodes[id]
	if n == nil {
		if label == "" {
			label = name
		}
		n = &Node{ID: id, Kind: kind, Name: name, Label: label, FirstSeen: first, LastSeen: last}
		g.nodes[id] = n
	}
	if !first.IsZero() && (n.FirstSeen.IsZero() || first.Before(n.FirstSeen)) {
		n.FirstSeen = first
	}
	if last.After(n.LastSeen) {
		n.LastSeen = last
	}
	return id
}

func (g *graphBuilder) edge(from, to, kind string, f *store.LineageFact) *Edge {
	k := [3]string{from, to, kind}
	e := g.edges[k]
	if e == nil {
		e = &Edge{From: from, To: to, Kind: kind}
		g.edges[k] = e
	}
	if f != nil {
		e.Allowed += f.Allowed
		e.Denied += f.Denied
		e.Held += f.Held
		if f.ApprovedBy != "" && !slices.Contains(e.ApprovedBy, f.ApprovedBy) {
			e.ApprovedBy = append(e.ApprovedBy, f.ApprovedBy)
		}
		e.seen(f.FirstSeen, f.LastSeen)
	}
	return e
}

func (e *Edge) seen(first, last time.Time) {
	if !first.IsZero() && (e.FirstSeen.IsZero() || first.Before(e.FirstSeen)) {
		e.FirstSeen = first
	}
	if last.After(e.LastSeen) {
		e.LastSeen = last
	}
}

// addFact adds one path of accesses.
func (g *graphBuilder) addFact(f *store.LineageFact) {
	id := g.node(KindIdentity, f.Identity, "", f.FirstSeen, f.LastSeen)
	if f.User != "" {
		g.edge(g.node(KindUser, f.User, "", f.FirstSeen, f.LastSeen), id, EdgeOnBehalfOf, f)
	}
	caller := id
	if f.Instance != "" {
		caller = g.node(KindInstance, f.Instance, "", f.FirstSeen, f.LastSeen)
		g.edge(id, caller, EdgeInstance, f)
	}
	if f.Task != "" {
		g.edge(caller, g.node(KindTask, f.Task, "", f.FirstSeen, f.LastSeen), EdgeTask, f)
	}
	kind := KindService
	if f.TargetKind == store.TargetMCPServer {
		kind = KindMCPServer
	}
	target := g.node(kind, f.Target, "", f.FirstSeen, f.LastSeen)
	g.edge(caller, target, EdgeReached, f)
	if f.Tool != "" {
		g.edge(target, g.node(KindTool, f.Target+"/"+f.Tool, f.Tool, f.FirstSeen, f.LastSeen), EdgeTool, f)
	}
	if f.Credential != "" {
		g.edge(target, g.node(KindCredential, f.Credential, "", f.FirstSeen, f.LastSeen), EdgeInjected, f)
	}
}

// inventoryProcess is the part of the sensor's process record
// (discover.Process) the graph reads.
type inventoryProcess struct {
	PID         int      `json:"pid"`
	Exe         string   `json:"exe"`
	SHA256      string   `json:"sha256"`
	Credentials []string `json:"credentials"`
	Connections []struct {
		Remote  string `json:"remote"`
		Route   string `json:"route"`
		Service string `json:"service"`
	} `json:"connections"`
}

// inventoryCredential is the part of the sensor's credential record
// (discover.Credential) the graph reads.
type inventoryCredential struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Source      string `json:"source"`
	Path        string `json:"path"`
	Fingerprint string `json:"fingerprint"`
	// Opens are, for a finding of `writ scan --report` (source scan), the
	// services its blast radius found it opens.
	Opens []string `json:"opens"`
	Blast *struct {
		Score int `json:"score"`
	} `json:"blast_radius"`
}

// DiscoveredCredentialName is the node name of a credential the sensor
// found on host with id.
func DiscoveredCredentialName(host, id string) string { return host + "/" + id }

// inventoryFilter selects the part of the inventory a query joins.
type inventoryFilter struct {
	identity   string // processes of this SPIFFE ID (or under it)
	service    string // processes reaching this service around writ
	credential string // credentials with this name or id, and their holders
}

func (f inventoryFilter) any() bool { return f.identity != "" || f.service != "" || f.credential != "" }

// addInventory adds what the runtime sensor recorded: discovered agents,
// MCP servers and credential holders, the credentials they hold and the
// services they reach around writ.
func (g *graphBuilder) addInventory(items []store.InventoryItem, f inventoryFilter) {
	type cred struct {
		it *store.InventoryItem
		c  inventoryCredential
	}
	creds := map[string]*cred{} // host/credential id
	for i := range items {
		it := &items[i]
		if it.Kind != store.InventoryCredential {
			continue
		}
		c := &cred{it: it}
		if json.Unmarshal(it.Data, &c.c) != nil || c.c.ID == "" {
			continue
		}
		creds[it.Host+"/"+c.c.ID] = c
	}
	credMatch := func(c *cred) bool { return c.it.Name == f.credential || c.c.ID == f.credential }
	addCred := func(c *cred) string {
		id := g.node(KindCredential, DiscoveredCredentialName(c.it.Host, c.c.ID), c.it.Name, c.it.FirstSeen, c.it.LastSeen)
		n := g.nodes[id]
		n.Shadow = n.Shadow || c.it.Shadow
		n.Attrs = map[string]string{"host": c.it.Host, "source": c.c.Source, "kind": c.c.Kind, "fingerprint": c.c.Fingerprint, "discovered": "true"}
		if c.c.Path != "" {
			n.Attrs["path"] = c.c.Path
		}
		if c.c.Blast != nil {
			n.Attrs["blast_radius"] = strconv.Itoa(c.c.Blast.Score)
		}
		for _, svc := range c.c.Opens {
			e := g.edge(id, g.node(KindService, svc, "", time.Time{}, time.Time{}), EdgeOpens, nil)
			e.Shadow = true
			e.seen(c.it.FirstSeen, c.it.LastSeen)
		}
		return id
	}
	for i := range items {
		it := &items[i]
		switch it.Kind {
		case store.InventoryAgent, store.InventoryMCPServer, store.InventoryProcess:
		default:
			continue
		}
		var p inventoryProcess
		json.Unmarshal(it.Data, &p)
		keep := !f.any()
		if f.identity != "" && it.Identity != "" && underID(it.Identity, f.identity) {
			keep = true
		}
		for _, c := range p.Connections {
			keep = keep || f.service != "" && c.Service == f.service && c.Route != "writ"
		}
		for _, c := range p.Credentials {
			if cr := creds[it.Host+"/"+c]; cr != nil && f.credential != "" && credMatch(cr) {
				keep = true
			}
		}
		if !keep {
			continue
		}
		id := g.node(KindProcess, it.Key, it.Name, it.FirstSeen, it.LastSeen)
		n := g.nodes[id]
		n.Shadow = n.Shadow || it.Shadow || it.Identity == "" && it.Kind != store.InventoryProcess
		n.Attrs = map[string]string{"host": it.Host, "kind": it.Kind, "pid": strconv.Itoa(p.PID), "exe": p.Exe}
		if p.SHA256 != "" {
			n.Attrs["sha256"] = p.SHA256
		}
		if it.Identity != "" {
			e := g.edge(g.node(KindIdentity, it.Identity, "", time.Time{}, time.Time{}), id, EdgeRunsAs, nil)
			e.seen(it.FirstSeen, it.LastSeen)
		}
		for _, c := range p.Credentials {
			if cr := creds[it.Host+"/"+c]; cr != nil {
				cid := addCred(cr)
				e := g.edge(id, cid, EdgeHolds, nil)
				e.Shadow = g.nodes[cid].Shadow
				e.seen(it.FirstSeen, it.LastSeen)
			}
		}
		for _, c := range p.Connections {
			if c.Service == "" || c.Route == "writ" {
				continue
			}
			e := g.edge(id, g.node(KindService, c.Service, "", time.Time{}, time.Time{}), EdgeDirect, nil)
			e.Shadow = true
			e.seen(it.FirstSeen, it.LastSeen)
		}
	}
	// Credentials no process holds (kept in files) stand alone.
	if f.identity == "" && f.service == "" {
		for _, c := range creds {
			if f.credential == "" || credMatch(c) {
				addCred(c)
			}
		}
	}
}

// underID reports whether id is prefix or lies under it as a path.
func underID(id, prefix string) bool {
	return id == prefix || strings.HasPrefix(id, strings.TrimSuffix(prefix, "/")+"/")
}

// graph returns the nodes and edges in a stable order.
func (g *graphBuilder) graph() *Graph {
	out := &Graph{Nodes: make([]Node, 0, len(g.nodes)), Edges: make([]Edge, 0, len(g.edges))}
	for _, n := range g.nodes {
		out.Nodes = append(out.Nodes, *n)
	}
	for _, e := range g.edges {
		slices.Sort(e.ApprovedBy)
		out.Edges = append(out.Edges, *e)
	}
	slices.SortFunc(out.Nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(out.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}
