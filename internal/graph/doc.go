// Package graph is writ's lineage graph: which human an agent acted for,
// as which identity and instance, in which task, reached which service or
// MCP server (and tool) with which injected credential, approved by whom,
// when and how often — joined with what the runtime sensor saw (agents and
// MCP servers, the credentials they hold, services reached around writ).
//
// A [Builder] folds the audit log into aggregates kept in the store
// (store.Lineage): one row per hour and access path with allowed, denied
// and held counts and first and last seen. It reads incrementally from a
// stored cursor, so each event is folded once, whatever the number of
// queries; a query first folds what was appended since the last one.
// [Lineage.Query] sums the rows a [Query] selects (time window, identity,
// instance, task, user, service, credential), turns each path into nodes
// and edges, joins the inventory, and optionally keeps only the paths
// into one node or into the crown jewels ([PathsInto]).
//
// The graph's edges, from left to right: user → identity (on_behalf_of),
// identity → instance, instance → task, instance → service or MCP server
// (reached), MCP server → tool, service → credential (injected), and from
// the inventory identity → process (runs_as), process → credential
// (holds), process → service (direct: shadow access around writ). Node
// ids are "KIND:NAME". docs/lineage.md describes the wire form served at
// /v1/graph.
package graph
