package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/learn"
)

func newLineageCmd(g *globals) *cobra.Command {
	var (
		q            apitypes.GraphQuery
		since, until string
		inventory    bool
		out          string
	)
	cmd := &cobra.Command{
		Use:   "lineage",
		Short: "Show who reached what, with which credential, when, and who approved it",
		Long: `Print the lineage graph: on whose behalf which identity and instance, in which
task, reached which service or MCP server and tool, with which credential
injected, how often it was allowed, denied or held for approval and who
approved it — joined with what the runtime sensor found (agents, the
credentials they hold, services reached around writ).

The graph is built incrementally from the audit log by the server. Time
windows are widened to whole hours. --to KIND:NAME (or --crown-jewels, the
Services and MCPServers labelled crown_jewel) keeps only the paths into that
node. --output text (a tree), json (the /v1/graph answer) or dot (Graphviz).
See docs/lineage.md.`,
		Example: `  writ lineage --since 24h
  writ lineage --identity spiffe://writ.local/agent/mail --output json
  writ lineage --task task_01J...
  writ lineage --crown-jewels
  writ lineage --to service:payments --output dot | dot -Tsvg > payments.svg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch out {
			case "text", "table", "json", "dot":
			default:
				return fmt.Errorf("--output %q: use text, json or dot", out)
			}
			now := time.Now()
			for _, f := range []struct {
				flag, s string
				dst     **time.Time
			}{{"since", since, &q.Since}, {"until", until, &q.Until}} {
				if f.s == "" {
					continue
				}
				t, err := learn.ParseSince(f.s, now)
				if err != nil {
					return fmt.Errorf("--%s %q: want a number of days back such as 7d, a duration back such as 12h or an RFC 3339 time", f.flag, f.s)
				}
				*f.dst = &t
			}
			q.NoInventory = !inventory
			c, err := g.client()
			if err != nil {
				return err
			}
			gr, err := c.Graph(cmd.Context(), q)
			if err != nil {
				return err
			}
			switch out {
			case "json":
				return printJSON(g.stdout, gr)
			case "dot":
				return WriteDOT(g.stdout, gr)
			}
			return WriteLineageText(g.stdout, gr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "accesses from this time on: 7d, 12h or an RFC 3339 time")
	fl.StringVar(&until, "until", "", "accesses before this time: 7d, 12h (back from now) or an RFC 3339 time")
	fl.StringVar(&q.Identity, "identity", "", "this SPIFFE ID or the IDs under it as a path")
	fl.StringVar(&q.Instance, "instance", "", "this instance id")
	fl.StringVar(&q.Task, "task", "", "this task id")
	fl.StringVar(&q.User, "user", "", "accesses on behalf of this user")
	fl.StringVar(&q.Service, "service", "", "this Service or MCPServer")
	fl.StringVar(&q.Credential, "credential", "", "this brokered credential, or a discovered one by name or id")
	fl.StringVar(&q.To, "to", "", "only the paths into this node (KIND:NAME, e.g. service:payments)")
	fl.BoolVar(&q.CrownJewels, "crown-jewels", false, "only the paths into the crown jewels (Services and MCPServers labelled crown_jewel)")
	fl.BoolVar(&inventory, "inventory", true, "join what the runtime sensor found")
	fl.StringVarP(&out, "output", "o", "text", "output format: text, json or dot")
	return cmd
}

// edgeCounts formats an access edge's counts.
func edgeCounts(e apitypes.GraphEdge) string {
	var parts []string
	if e.Allowed+e.Denied+e.Held > 0 {
		parts = append(parts, fmt.Sprintf("%d allowed, %d denied", e.Allowed, e.Denied))
		if e.Held > 0 {
			parts = append(parts, fmt.Sprintf("%d held", e.Held))
		}
	}
	if len(e.ApprovedBy) > 0 {
		parts = append(parts, "approved by "+strings.Join(e.ApprovedBy, ", "))
	}
	if e.Shadow {
		parts = append(parts, "SHADOW")
	}
	if e.FirstSeen != nil && e.LastSeen != nil {
		parts = append(parts, e.FirstSeen.Format("2006-01-02 15:04")+" – "+e.LastSeen.Format("2006-01-02 15:04"))
	}
	return strings.Join(parts, "; ")
}

// WriteLineageText prints the graph as a tree from its sources (nodes no
// edge leads into), and then its paths.
func WriteLineageText(w io.Writer, gr apitypes.Graph) error {
	nodes := map[string]apitypes.GraphNode{}
	for _, n := range gr.Nodes {
		nodes[n.ID] = n
	}
	outs := map[string][]apitypes.GraphEdge{}
	hasIn := map[string]bool{}
	for _, e := range gr.Edges {
		outs[e.From] = append(outs[e.From], e)
		hasIn[e.To] = true
	}
	fmt.Fprintf(w, "lineage of %d audit events: %d nodes, %d edges\n", gr.Built, len(gr.Nodes), len(gr.Edges))
	label := func(id string) string {
		n := nodes[id]
		s := n.Kind + " " + n.Label
		if n.Label != n.Name && n.Kind != "process" {
			s += " (" + n.Name + ")"
		}
		if n.Kind == "process" {
			s += " [" + n.Attrs["host"] + " pid " + n.Attrs["pid"] + "]"
		}
		if n.CrownJewel {
			s += " [crown jewel]"
		}
		if n.Shadow {
			s += " [shadow]"
		}
		return s
	}
	printed := map[string]bool{}
	var walk func(id, prefix string, depth int)
	walk = func(id, prefix string, depth int) {
		es := outs[id]
		for i, e := range es {
			branch, next := "├─ ", "│  "
			if i == len(es)-1 {
				branch, next = "└─ ", "   "
			}
			line := prefix + branch + label(e.To)
			if c := edgeCounts(e); c != "" {
				line += "  " + e.Kind + ": " + c
			}
			if printed[e.To] && len(outs[e.To]) > 0 {
				fmt.Fprintln(w, line+"  (see above)")
				continue
			}
			fmt.Fprintln(w, line)
			printed[e.To] = true
			if depth < 12 {
				walk(e.To, prefix+next, depth+1)
			}
		}
	}
	for _, n := range gr.Nodes {
		if hasIn[n.ID] {
			continue
		}
		fmt.Fprintln(w, label(n.ID))
		printed[n.ID] = true
		walk(n.ID, "", 0)
	}
	if len(gr.Paths) > 0 {
		fmt.Fprintf(w, "\n%d paths into the target:\n", len(gr.Paths))
		for _, p := range gr.Paths {
			fmt.Fprintln(w, "  "+strings.Join(p, " → "))
		}
	}
	if gr.Truncated {
		fmt.Fprintln(w, "\n(truncated: narrow the query with --since, --identity, --task or --service)")
	}
	return nil
}

// dotShapes are the Graphviz shapes of node kinds.
var dotShapes = map[string]string{"user": "house", "identity": "box", "instance": "box", "task": "note", "service": "cylinder",
	"mcp_server": "component", "tool": "ellipse", "credential": "hexagon", "process": "box"}

// WriteDOT prints the graph in Graphviz DOT: shadow nodes and edges red
// and dashed, crown jewels double-bordered, access edges labelled with
// their counts.
func WriteDOT(w io.Writer, gr apitypes.Graph) error {
	q := strconv.Quote
	fmt.Fprintln(w, "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"sans-serif\" fontsize=10];\n  edge [fontname=\"sans-serif\" fontsize=9];")
	for _, n := range gr.Nodes {
		attrs := []string{"label=" + q(n.Kind+"\n"+n.Label), "shape=" + cmpOr(dotShapes[n.Kind], "box")}
		if n.Shadow {
			attrs = append(attrs, `color="red"`, `style="dashed"`)
		}
		if n.CrownJewel {
			attrs = append(attrs, "peripheries=2")
		}
		fmt.Fprintf(w, "  %s [%s];\n", q(n.ID), strings.Join(attrs, " "))
	}
	for _, e := range gr.Edges {
		attrs := []string{}
		if e.Allowed+e.Denied+e.Held > 0 {
			l := fmt.Sprintf("%d ok / %d denied", e.Allowed, e.Denied)
			if e.Held > 0 {
				l += fmt.Sprintf(" / %d held", e.Held)
			}
			attrs = append(attrs, "label="+q(l))
		} else {
			attrs = append(attrs, "label="+q(e.Kind))
		}
		if e.Shadow || e.Kind == "direct" {
			attrs = append(attrs, `color="red"`, `style="dashed"`)
		}
		fmt.Fprintf(w, "  %s -> %s [%s];\n", q(e.From), q(e.To), strings.Join(attrs, " "))
	}
	_, err := fmt.Fprintln(w, "}")
	return err
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
