package web

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/graph"
)

// smallGraph is one agent acting for erin, reaching a mail service (a
// crown jewel) with a brokered key and an MCP tool, and a shadow process
// holding a static key that reaches mail around writ.
func smallGraph() *graph.Graph {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	n := func(kind, name string) graph.Node {
		return graph.Node{ID: graph.NodeID(kind, name), Kind: kind, Name: name, Label: name, LastSeen: t0}
	}
	g := &graph.Graph{Nodes: []graph.Node{
		n(graph.KindUser, "erin"), n(graph.KindIdentity, "spiffe://writ.local/agent/mail"), n(graph.KindInstance, "inst_1"),
		n(graph.KindService, "mail"), n(graph.KindMCPServer, "notes"), n(graph.KindTool, "notes/search"),
		n(graph.KindCredential, "mail-key"), n(graph.KindProcess, "aider (pid 42)"), n(graph.KindCredential, "OPENAI_API_KEY"),
	}}
	g.Nodes[3].CrownJewel = true
	g.Nodes[7].Shadow = true
	e := func(from, to, kind string, a, d, h int64) graph.Edge {
		return graph.Edge{From: from, To: to, Kind: kind, Allowed: a, Denied: d, Held: h, LastSeen: t0}
	}
	g.Edges = []graph.Edge{
		e("user:erin", "identity:spiffe://writ.local/agent/mail", graph.EdgeOnBehalfOf, 3, 1, 1),
		e("identity:spiffe://writ.local/agent/mail", "instance:inst_1", graph.EdgeInstance, 3, 1, 1),
		e("instance:inst_1", "service:mail", graph.EdgeReached, 2, 1, 1),
		e("instance:inst_1", "mcp_server:notes", graph.EdgeReached, 1, 0, 0),
		e("mcp_server:notes", "tool:notes/search", graph.EdgeTool, 1, 0, 0),
		e("service:mail", "credential:mail-key", graph.EdgeInjected, 2, 0, 0),
		e("process:aider (pid 42)", "credential:OPENAI_API_KEY", graph.EdgeHolds, 0, 0, 0),
		{From: "process:aider (pid 42)", To: "service:mail", Kind: graph.EdgeDirect, Shadow: true},
	}
	g.Edges[2].ApprovedBy = []string{"user:dana"}
	return g
}

// TestLineageSVG lays out and draws a small graph: columns left to right
// by kind, one link per node to its detail, edges classed by their state,
// paths into the crown jewel marked, and the result well-formed XML.
func TestLineageSVG(t *testing.T) {
	m := layoutLineage(smallGraph())
	x := map[string]int{}
	for _, n := range m.nodes {
		x[n.Kind] = n.x
	}
	order := []string{graph.KindUser, graph.KindIdentity, graph.KindInstance, graph.KindService, graph.KindTool, graph.KindCredential}
	for i := 1; i < len(order); i++ {
		if x[order[i-1]] >= x[order[i]] {
			t.Errorf("%s is drawn at x=%d, not left of %s at x=%d", order[i-1], x[order[i-1]], order[i], x[order[i]])
		}
	}
	svg := string(m.svg(url.Values{"window": {"24h"}}))
	checkXML(t, svg)
	for _, want := range []string{
		`<a href="/ui/lineage/node?id=service%3Amail&amp;window=24h" class="n service crown jewel"`,
		`class="n process shadow jewel"`,
		`class="e denied w2 jewel" data-from="instance:inst_1" data-to="service:mail" data-kind="reached"`,
		`class="e shadow w1 jewel" data-from="process:aider (pid 42)"`,
		`class="e allowed w2" data-from="service:mail" data-to="credential:mail-key"`,
		"2 allowed, 1 denied, 1 held; last seen 2026-05-01 10:00:00Z; approved by user:dana",
		`2✓ 1✗ 1⏸`, "♛ mail",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("the map lacks %q", want)
		}
	}
	if strings.Contains(svg, "<script") || strings.Contains(svg, "style=") || strings.Contains(svg, " on") && strings.Contains(svg, "onclick") {
		t.Error("the map carries script or inline style (the CSP forbids both)")
	}
}

// TestLineageSVGEscapes: names are attacker-chosen (a SPIFFE path, a
// process's command, a tool's name); the map escapes every one.
func TestLineageSVGEscapes(t *testing.T) {
	g := smallGraph()
	evil := `"><script>alert(1)</script><a href="javascript:x`
	g.Nodes[5].Name, g.Nodes[5].Label, g.Nodes[5].ID = evil, evil, "tool:"+evil
	g.Edges[4].To = "tool:" + evil
	svg := string(layoutLineage(g).svg(nil))
	checkXML(t, svg)
	if strings.Contains(svg, "<script") || strings.Contains(svg, `href="javascript`) {
		t.Errorf("a hostile name is not escaped: %s", svg)
	}
}

func checkXML(t testing.TB, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("the map is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && (se.Name.Local == "script" || se.Name.Local == "foreignObject") {
			t.Fatalf("the map holds a <%s> element", se.Name.Local)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if strings.HasPrefix(a.Name.Local, "on") || a.Name.Local == "style" ||
					a.Name.Local == "href" && !strings.HasPrefix(a.Value, "/ui/lineage/node?") {
					t.Fatalf("the map holds attribute %s=%q", a.Name.Local, a.Value)
				}
			}
		}
	}
}

// FuzzLineageMap draws graphs with arbitrary names and filters: the map
// is always well-formed, script-free XML whose links stay in the console.
func FuzzLineageMap(f *testing.F) {
	f.Add("erin", "spiffe://writ.local/agent/a", "mail", "read", "key", "24h", "")
	f.Add(`<b>`, `"'&`, "\x00", "]]>", "--><!--", "all", "on")
	f.Fuzz(func(t *testing.T, user, id, svc, tool, cred, window, jewels string) {
		v := url.Values{"window": {window}, "crown_jewels": {jewels}, "identity": {id}}
		fl, q, err := parseLineageFilter(v, time.Unix(1e9, 0))
		if err == nil && q.Check() != nil {
			t.Fatalf("the filter %v passed but its query does not check", v)
		}
		g := &graph.Graph{}
		for i, nm := range []struct{ kind, name string }{{graph.KindUser, user}, {graph.KindIdentity, id}, {graph.KindService, svc},
			{graph.KindTool, svc + "/" + tool}, {graph.KindCredential, cred}} {
			g.Nodes = append(g.Nodes, graph.Node{ID: graph.NodeID(nm.kind, nm.name), Kind: nm.kind, Name: nm.name, Label: nm.name, CrownJewel: i == 2})
			if i > 0 {
				g.Edges = append(g.Edges, graph.Edge{From: g.Nodes[i-1].ID, To: g.Nodes[i].ID, Kind: "reached", Allowed: int64(i)})
			}
		}
		if !strings.ContainsFunc(user+id+svc+tool+cred, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xfffd }) {
			checkXML(t, string(layoutLineage(g).svg(fl.values())))
		}
	})
}

// TestLineageFilter: the form's fields become the graph query; anything
// not understood is refused naming the field.
func TestLineageFilter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f, q, err := parseLineageFilter(url.Values{"window": {"24h"}, "identity": {"spiffe://writ.local/agent/a"}, "task": {""},
		"credential": {"mail-key"}, "crown_jewels": {"on"}}, now)
	if err != nil || !q.Since.Equal(now.Add(-24*time.Hour)) || q.Identity != "spiffe://writ.local/agent/a" || q.Credential != "mail-key" ||
		!q.CrownJewels || q.Task != "" || f.values().Encode() != "credential=mail-key&crown_jewels=on&identity=spiffe%3A%2F%2Fwrit.local%2Fagent%2Fa&window=24h" {
		t.Fatalf("filter = %+v %+v %v", f, q, err)
	}
	if _, q, err := parseLineageFilter(url.Values{"window": {"all"}}, now); err != nil || !q.Since.IsZero() {
		t.Errorf("all time: %+v %v", q, err)
	}
	for _, bad := range []url.Values{{"window": {"forever"}}, {"window": {"-1h"}}, {"colour": {"red"}}, {"task": {"a", "b"}},
		{"crown_jewels": {"maybe"}}, {"to": {"nowhere"}}, {"identity": {"a\x01b"}}, {"to": {"service:x"}, "crown_jewels": {"on"}},
		{"credential": {strings.Repeat("x", 600)}}} {
		if _, _, err := parseLineageFilter(bad, now); err == nil {
			t.Errorf("filter %v accepted", bad)
		}
	}
}

// TestLineDiff: a policy change shows exactly the changed lines.
func TestLineDiff(t *testing.T) {
	d := lineDiff("a\nb\nc\nd", "a\nc\nd\ne")
	var got []string
	for _, l := range d {
		got = append(got, l.Op+l.Text)
	}
	if strings.Join(got, ",") != " a,-b, c, d,+e" {
		t.Errorf("diff = %v", got)
	}
	if lineDiff(strings.Repeat("x\n", maxDiffLines+1), "x") != nil {
		t.Error("a diff beyond the line bound was computed")
	}
	if fmt.Sprint(lineDiff("", "")) != "[{  }]" {
		t.Errorf("diff of empty specs = %v", lineDiff("", ""))
	}
}

// bigGraph is a lineage graph of realistic shape and size: 20 users, 60
// agents with 150 instances, 120 services and MCP servers, 100 tools and
// 50 credentials (500 nodes), and 5,000 edges among them.
func bigGraph() *graph.Graph {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	g := &graph.Graph{}
	var byKind = map[string][]string{}
	add := func(kind string, n int) {
		for i := range n {
			name := fmt.Sprintf("%s-%03d", kind, i)
			if kind == graph.KindIdentity {
				name = fmt.Sprintf("spiffe://writ.local/team%d/agent-%03d", i%7, i)
			}
			id := graph.NodeID(kind, name)
			g.Nodes = append(g.Nodes, graph.Node{ID: id, Kind: kind, Name: name, Label: name, LastSeen: t0, CrownJewel: kind == graph.KindService && i%25 == 0})
			byKind[kind] = append(byKind[kind], id)
		}
	}
	add(graph.KindUser, 20)
	add(graph.KindIdentity, 60)
	add(graph.KindInstance, 150)
	add(graph.KindService, 90)
	add(graph.KindMCPServer, 30)
	add(graph.KindTool, 100)
	add(graph.KindCredential, 50)
	// n edges from → to, each pair once: the i'th goes from from[i%len]
	// to to[(7*(i/len)+i%len)%len(to)].
	edges := func(from, to []string, kind string, n int) {
		for i := range n {
			r, q := i%len(from), i/len(from)
			g.Edges = append(g.Edges, graph.Edge{From: from[r], To: to[(7*q+r)%len(to)], Kind: kind,
				Allowed: int64(i % 300), Denied: int64(i % 7 / 6), Held: int64(i % 11 / 10), LastSeen: t0})
		}
	}
	targets := append(append([]string{}, byKind[graph.KindService]...), byKind[graph.KindMCPServer]...)
	edges(byKind[graph.KindInstance], targets, graph.EdgeReached, 3600)
	edges(byKind[graph.KindUser], byKind[graph.KindIdentity], graph.EdgeOnBehalfOf, 600)
	for i, in := range byKind[graph.KindInstance] {
		g.Edges = append(g.Edges, graph.Edge{From: byKind[graph.KindIdentity][i%60], To: in, Kind: graph.EdgeInstance, Allowed: 1, LastSeen: t0})
	}
	edges(byKind[graph.KindMCPServer], byKind[graph.KindTool], graph.EdgeTool, 300)
	edges(byKind[graph.KindService], byKind[graph.KindCredential], graph.EdgeInjected, 350)
	return g
}

// BenchmarkLineageSVG lays out and draws the lineage map of 500 nodes and
// 5,000 edges (the bound: 200 ms).
func BenchmarkLineageSVG(b *testing.B) {
	g := bigGraph()
	if len(g.Nodes) != 500 || len(g.Edges) != 5000 {
		b.Fatalf("graph of %d nodes and %d edges", len(g.Nodes), len(g.Edges))
	}
	var size int
	for b.Loop() {
		size = len(layoutLineage(g).svg(url.Values{"window": {"168h"}}))
	}
	b.ReportMetric(float64(size), "svg-bytes")
}
