package apitypes

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Graph is the lineage graph: GET /v1/graph (`writ lineage`). Nodes and
// edges are sorted by id and by (from, to, kind); every edge's from and to
// are ids of nodes in the answer. It holds no secret value: credentials
// are names and keyed fingerprints. See docs/lineage.md for the kinds and
// the query parameters.
type Graph struct {
	// Query echoes the selection the answer is for.
	Query GraphQuery `json:"query"`
	// Built is how many audit events the graph holds (the index of the
	// next one to fold in).
	Built int64       `json:"built"`
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
	// Paths, when the query asks for paths into a node (to) or into the
	// crown jewels, are lists of node ids from a source to the target.
	Paths [][]string `json:"paths,omitempty"`
	// Truncated says that a limit cut the answer short.
	Truncated bool `json:"truncated,omitempty"`
}

// GraphQuery is the selection of a graph: the query parameters of GET
// /v1/graph. Times are RFC 3339; a window is widened to whole hours.
type GraphQuery struct {
	Since       *time.Time `json:"since,omitempty"`
	Until       *time.Time `json:"until,omitempty"`
	Identity    string     `json:"identity,omitempty"`
	Instance    string     `json:"instance,omitempty"`
	Task        string     `json:"task,omitempty"`
	User        string     `json:"user,omitempty"`
	Service     string     `json:"service,omitempty"`
	Credential  string     `json:"credential,omitempty"`
	To          string     `json:"to,omitempty"`
	CrownJewels bool       `json:"crown_jewels,omitempty"`
	NoInventory bool       `json:"no_inventory,omitempty"`
}

// GraphNode is one node. ID is "KIND:NAME"; Kind is one of user,
// identity, instance, task, service, mcp_server, tool, credential,
// process. Label is what to print.
type GraphNode struct {
	ID         string            `json:"id"`
	Kind       string            `json:"kind"`
	Name       string            `json:"name"`
	Label      string            `json:"label"`
	Shadow     bool              `json:"shadow,omitempty"`
	CrownJewel bool              `json:"crown_jewel,omitempty"`
	Attrs      map[string]string `json:"attrs,omitempty"`
	FirstSeen  *time.Time        `json:"first_seen,omitempty"`
	LastSeen   *time.Time        `json:"last_seen,omitempty"`
}

// GraphEdge is one edge. Kind is one of on_behalf_of, instance, task,
// reached, tool, injected (access edges, with counts) or runs_as, holds,
// direct, opens (from the inventory, without counts; opens is from a
// credential `writ scan --report` found to a service it authenticates to). Held counts accesses that
// waited for an approval; ApprovedBy names who approved them.
type GraphEdge struct {
	From       string     `json:"from"`
	To         string     `json:"to"`
	Kind       string     `json:"kind"`
	Allowed    int64      `json:"allowed"`
	Denied     int64      `json:"denied"`
	Held       int64      `json:"held"`
	ApprovedBy []string   `json:"approved_by,omitempty"`
	Shadow     bool       `json:"shadow,omitempty"`
	FirstSeen  *time.Time `json:"first_seen,omitempty"`
	LastSeen   *time.Time `json:"last_seen,omitempty"`
}

// Values encodes q as URL query parameters (the inverse of
// [ParseGraphQuery]).
func (q GraphQuery) Values() url.Values {
	v := url.Values{}
	for _, f := range []struct{ k, s string }{{"identity", q.Identity}, {"instance", q.Instance}, {"task", q.Task},
		{"user", q.User}, {"service", q.Service}, {"credential", q.Credential}, {"to", q.To}} {
		if f.s != "" {
			v.Set(f.k, f.s)
		}
	}
	if q.Since != nil {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Until != nil {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.CrownJewels {
		v.Set("crown_jewels", "true")
	}
	if q.NoInventory {
		v.Set("inventory", "false")
	}
	return v
}

// ParseGraphQuery decodes the query parameters of GET /v1/graph. Unknown
// or repeated parameters are errors, so that a misspelt filter is not
// silently ignored.
func ParseGraphQuery(v url.Values) (GraphQuery, error) {
	var q GraphQuery
	for k, vals := range v {
		if len(vals) != 1 {
			return q, fmt.Errorf("query parameter %s is given %d times; give it once", k, len(vals))
		}
		s := vals[0]
		switch k {
		case "identity":
			q.Identity = s
		case "instance":
			q.Instance = s
		case "task":
			q.Task = s
		case "user":
			q.User = s
		case "service":
			q.Service = s
		case "credential":
			q.Credential = s
		case "to":
			q.To = s
		case "since", "until":
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, fmt.Errorf("query parameter %s %q: want an RFC 3339 time such as 2026-05-01T12:00:00Z", k, s)
			}
			if k == "since" {
				q.Since = &t
			} else {
				q.Until = &t
			}
		case "crown_jewels", "inventory":
			b, err := strconv.ParseBool(s)
			if err != nil {
				return q, fmt.Errorf("query parameter %s %q: want true or false", k, s)
			}
			if k == "crown_jewels" {
				q.CrownJewels = b
			} else {
				q.NoInventory = !b
			}
		default:
			return q, fmt.Errorf("unknown query parameter %q; use one of since, until, identity, instance, task, user, service, credential, to, crown_jewels, inventory", k)
		}
	}
	return q, nil
}
