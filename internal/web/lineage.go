package web

import (
	"cmp"
	"fmt"
	"html"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/graph"
)

// The lineage map is drawn on the server as SVG, layered left to right:
// the humans agents act for, the agents (identities), their instances and
// the processes the sensor found, tasks, services and MCP servers, tools,
// and upstream credentials. It carries no script: every node is a link to
// its detail page, and every node and edge a <title> the browser shows on
// hover and screen readers read.

// layers orders node kinds left to right.
var layers = map[string]int{
	graph.KindUser: 0, graph.KindIdentity: 1, graph.KindInstance: 2, graph.KindProcess: 2, graph.KindTask: 3,
	graph.KindService: 4, graph.KindMCPServer: 4, graph.KindTool: 5, graph.KindCredential: 6,
}

var layerTitles = []string{"On behalf of", "Agents", "Instances and processes", "Tasks", "Services and MCP servers", "Tools", "Credentials"}

// Geometry of the map, in SVG user units.
const (
	mapColW   = 240 // column pitch
	mapNodeW  = 170 // node box width
	mapNodeH  = 22  // node box height
	mapRowH   = 30  // row pitch
	mapTop    = 34  // space for the column titles
	mapMargin = 10
	// mapLabelEdges is the most edges whose counts are written on the
	// map; beyond it they are in each edge's title only.
	mapLabelEdges = 300
)

// mapNode is a node placed on the map.
type mapNode struct {
	*graph.Node
	layer, row int
	x, y       int
	// onPath: the node is a crown jewel or lies on a path into one.
	onPath bool
}

// lineageMap is a laid-out graph.
type lineageMap struct {
	nodes   []*mapNode
	byID    map[string]*mapNode
	edges   []graph.Edge
	cols    []int // the layers present, left to right
	colOf   map[int]int
	width   int
	height  int
	jewels  int
	onPaths map[int]bool // edge index → on a path into a crown jewel
}

// layoutLineage places g's nodes: each kind in its column; within a
// column, nodes are ordered by name, then by the mean row of their
// neighbours to the left (one forward sweep) and to the right (one
// backward sweep), which untangles most edges of a lineage graph.
func layoutLineage(g *graph.Graph) *lineageMap {
	m := &lineageMap{byID: make(map[string]*mapNode, len(g.Nodes)), edges: g.Edges, colOf: map[int]int{}, onPaths: map[int]bool{}}
	byLayer := map[int][]*mapNode{}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		l, ok := layers[n.Kind]
		if !ok {
			l = 2
		}
		mn := &mapNode{Node: n, layer: l}
		m.nodes = append(m.nodes, mn)
		m.byID[n.ID] = mn
		byLayer[l] = append(byLayer[l], mn)
		if n.CrownJewel {
			m.jewels++
		}
	}
	for l := range 7 {
		if len(byLayer[l]) > 0 {
			m.colOf[l] = len(m.cols)
			m.cols = append(m.cols, l)
		}
	}
	// Neighbours by side, through the edges.
	left := map[*mapNode][]*mapNode{}
	right := map[*mapNode][]*mapNode{}
	for _, e := range g.Edges {
		a, b := m.byID[e.From], m.byID[e.To]
		if a == nil || b == nil || a.layer == b.layer {
			continue
		}
		if a.layer > b.layer {
			a, b = b, a
		}
		right[a] = append(right[a], b)
		left[b] = append(left[b], a)
	}
	number := func(ns []*mapNode) {
		for i, n := range ns {
			n.row = i
		}
	}
	for _, l := range m.cols {
		ns := byLayer[l]
		slices.SortStableFunc(ns, func(a, b *mapNode) int { return cmp.Compare(a.Name, b.Name) })
		number(ns)
	}
	sweep := func(l int, nbr map[*mapNode][]*mapNode) {
		ns := byLayer[l]
		key := make(map[*mapNode]float64, len(ns))
		for _, n := range ns {
			if len(nbr[n]) == 0 {
				key[n] = float64(n.row)
				continue
			}
			sum := 0
			for _, o := range nbr[n] {
				sum += o.row
			}
			key[n] = float64(sum) / float64(len(nbr[n]))
		}
		slices.SortStableFunc(ns, func(a, b *mapNode) int { return cmp.Compare(key[a], key[b]) })
		number(ns)
	}
	for _, l := range m.cols[min(1, len(m.cols)):] {
		sweep(l, left)
	}
	for i := len(m.cols) - 2; i >= 0; i-- {
		sweep(m.cols[i], right)
	}
	rows := 0
	for _, l := range m.cols {
		rows = max(rows, len(byLayer[l]))
		for _, n := range byLayer[l] {
			n.x = mapMargin + m.colOf[l]*mapColW
			n.y = mapTop + n.row*mapRowH
		}
	}
	m.width = 2*mapMargin + max(len(m.cols)-1, 0)*mapColW + mapNodeW
	m.height = mapTop + rows*mapRowH + mapMargin

	// Paths into crown jewels: every node from which a jewel is reached
	// along the edges (breadth first over the reversed edges), and every
	// edge into such a node.
	if m.jewels > 0 {
		into := map[string][]string{}
		for _, e := range g.Edges {
			into[e.To] = append(into[e.To], e.From)
		}
		var queue []string
		for _, n := range m.nodes {
			if n.CrownJewel {
				n.onPath = true
				queue = append(queue, n.ID)
			}
		}
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			for _, from := range into[id] {
				if n := m.byID[from]; n != nil && !n.onPath {
					n.onPath = true
					queue = append(queue, from)
				}
			}
		}
		for i, e := range g.Edges {
			if n := m.byID[e.To]; n != nil && n.onPath && m.byID[e.From] != nil {
				m.onPaths[i] = true
			}
		}
	}
	return m
}

// edgeClass is an edge's state for its colour: denied wins over held,
// held over shadow, shadow over allowed.
func edgeClass(e graph.Edge) string {
	switch {
	case e.Denied > 0:
		return "denied"
	case e.Held > 0:
		return "held"
	case e.Shadow:
		return "shadow"
	}
	return "allowed"
}

// edgeWeight buckets an edge's count for its stroke width.
func edgeWeight(e graph.Edge) int {
	switch n := e.Allowed + e.Denied + e.Held; {
	case n < 2:
		return 1
	case n < 10:
		return 2
	case n < 100:
		return 3
	}
	return 4
}

// edgeSummary is an edge's counts, last seen and approvers in words.
func edgeSummary(e graph.Edge, from, to string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s → %s (%s)", from, to, strings.ReplaceAll(e.Kind, "_", " "))
	if e.Allowed+e.Denied+e.Held > 0 {
		fmt.Fprintf(&b, ": %d allowed, %d denied, %d held", e.Allowed, e.Denied, e.Held)
	}
	if e.Shadow {
		b.WriteString("; around writ (shadow)")
	}
	if !e.LastSeen.IsZero() {
		b.WriteString("; last seen " + formatTime(e.LastSeen))
	}
	if len(e.ApprovedBy) > 0 {
		b.WriteString("; approved by " + strings.Join(e.ApprovedBy, ", "))
	}
	return b.String()
}

// kindNames are the node kinds in words.
var kindNames = map[string]string{
	graph.KindUser: "user", graph.KindIdentity: "agent", graph.KindInstance: "instance", graph.KindTask: "task",
	graph.KindService: "service", graph.KindMCPServer: "MCP server", graph.KindTool: "tool",
	graph.KindCredential: "credential", graph.KindProcess: "process",
}

// svg renders the map. Every text and attribute value is escaped; hrefs
// are built from url.Values. filters is the map's query string, kept on
// the node links.
func (m *lineageMap) svg(filters url.Values) template.HTML {
	var b strings.Builder
	b.Grow(256 * (len(m.nodes) + len(m.edges)))
	fmt.Fprintf(&b, `<svg id="lineage-map" class="lineage" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="map-title">`,
		m.width, m.height, m.width, m.height)
	fmt.Fprintf(&b, `<title id="map-title">Lineage map: %d nodes, %d edges</title>`, len(m.nodes), len(m.edges))
	for i, l := range m.cols {
		fmt.Fprintf(&b, `<text class="col" x="%d" y="16">%s</text>`, mapMargin+i*mapColW, html.EscapeString(layerTitles[l]))
	}
	b.WriteString(`<g class="edges">`)
	label := len(m.edges) <= mapLabelEdges
	for i, e := range m.edges {
		a, c := m.byID[e.From], m.byID[e.To]
		if a == nil || c == nil {
			continue
		}
		x1, y1, x2, y2 := a.x+mapNodeW, a.y+mapNodeH/2, c.x, c.y+mapNodeH/2
		if a.layer > c.layer {
			x1, x2 = a.x, c.x+mapNodeW
		}
		dx := (x2 - x1) / 2
		if a.layer == c.layer {
			x1, x2, dx = a.x+mapNodeW, c.x+mapNodeW, 40
		}
		cls := "e " + edgeClass(e) + " w" + strconv.Itoa(edgeWeight(e))
		if m.onPaths[i] {
			cls += " jewel"
		}
		fmt.Fprintf(&b, `<g class="%s" data-from="%s" data-to="%s" data-kind="%s"><title>%s</title><path d="M%d %d C%d %d %d %d %d %d"/>`,
			cls, html.EscapeString(e.From), html.EscapeString(e.To), html.EscapeString(e.Kind),
			html.EscapeString(edgeSummary(e, a.Label, c.Label)), x1, y1, x1+dx, y1, x2-dx, y2, x2, y2)
		if label && e.Allowed+e.Denied+e.Held > 0 {
			fmt.Fprintf(&b, `<text class="count" x="%d" y="%d">%s</text>`, (x1+x2)/2, (y1+y2)/2-3, countLabel(e))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</g><g class="nodes">`)
	for _, n := range m.nodes {
		v := url.Values{}
		for k, vals := range filters {
			v[k] = vals
		}
		v.Set("id", n.ID)
		cls := "n " + strings.ReplaceAll(n.Kind, "_", "-")
		if n.Shadow {
			cls += " shadow"
		}
		if n.CrownJewel {
			cls += " crown"
		}
		if n.onPath {
			cls += " jewel"
		}
		title := kindNames[n.Kind] + " " + n.Name
		if n.Shadow {
			title += " (shadow: not governed by writ)"
		}
		if n.CrownJewel {
			title += " (crown jewel)"
		}
		if !n.LastSeen.IsZero() {
			title += "; last seen " + formatTime(n.LastSeen)
		}
		text := shorten(24, n.Label)
		if n.CrownJewel {
			text = "♛ " + shorten(22, n.Label)
		}
		fmt.Fprintf(&b, `<a href="/ui/lineage/node?%s" class="%s" data-id="%s"><title>%s</title><rect x="%d" y="%d" width="%d" height="%d" rx="4"/><text x="%d" y="%d">%s</text></a>`,
			html.EscapeString(v.Encode()), cls, html.EscapeString(n.ID), html.EscapeString(title),
			n.x, n.y, mapNodeW, mapNodeH, n.x+6, n.y+15, html.EscapeString(text))
	}
	b.WriteString(`</g></svg>`)
	return template.HTML(b.String())
}

func countLabel(e graph.Edge) string {
	var parts []string
	if e.Allowed > 0 {
		parts = append(parts, strconv.FormatInt(e.Allowed, 10)+"✓")
	}
	if e.Denied > 0 {
		parts = append(parts, strconv.FormatInt(e.Denied, 10)+"✗")
	}
	if e.Held > 0 {
		parts = append(parts, strconv.FormatInt(e.Held, 10)+"⏸")
	}
	return strings.Join(parts, " ")
}

// lineageWindows are the time windows of the map's filter.
var lineageWindows = []struct{ Value, Title string }{
	{"1h", "last hour"}, {"24h", "last 24 hours"}, {"168h", "last 7 days"}, {"720h", "last 30 days"}, {"all", "all time"},
}

// lineageFilter is the map's filter form, parsed.
type lineageFilter struct {
	Window     string
	Identity   string
	Task       string
	Credential string
	To         string
	Jewels     bool
}

// parseLineageFilter reads the filter form. Empty fields filter nothing;
// anything else that is not understood is an error naming the field.
func parseLineageFilter(v url.Values, now time.Time) (lineageFilter, graph.Query, error) {
	f := lineageFilter{Window: "168h"}
	var q graph.Query
	for k, vals := range v {
		if len(vals) != 1 {
			return f, q, fmt.Errorf("the filter %s is given %d times; give it once", k, len(vals))
		}
		s := strings.TrimSpace(vals[0])
		if len(s) > 512 {
			return f, q, fmt.Errorf("the filter %s is longer than 512 characters", k)
		}
		switch k {
		case "window":
			if s != "" {
				f.Window = s
			}
		case "identity":
			f.Identity = s
		case "task":
			f.Task = s
		case "credential":
			f.Credential = s
		case "to":
			f.To = s
		case "crown_jewels":
			f.Jewels = s == "1" || s == "on" || s == "true"
			if !f.Jewels && s != "" && s != "0" && s != "off" && s != "false" {
				return f, q, fmt.Errorf("crown_jewels %q: want on or off", s)
			}
		case "id":
			// The node of a detail page.
		default:
			return f, q, fmt.Errorf("unknown filter %q; use window, identity, task, credential, to or crown_jewels", k)
		}
	}
	if f.Window != "all" {
		d, err := time.ParseDuration(f.Window)
		if err != nil || d <= 0 || d > 24*400*time.Hour {
			return f, q, fmt.Errorf("window %q: choose one of the offered windows (1h, 24h, 168h, 720h, all)", f.Window)
		}
		q.Since = now.Add(-d)
	}
	q.Identity, q.Task, q.Credential, q.To, q.CrownJewels = f.Identity, f.Task, f.Credential, f.To, f.Jewels
	if err := q.Check(); err != nil {
		return f, q, err
	}
	return f, q, nil
}

// values is the filter as a query string (empty fields left out).
func (f lineageFilter) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("window", f.Window)
	set("identity", f.Identity)
	set("task", f.Task)
	set("credential", f.Credential)
	set("to", f.To)
	if f.Jewels {
		v.Set("crown_jewels", "on")
	}
	return v
}
