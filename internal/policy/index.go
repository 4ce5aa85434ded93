package policy

import "slices"

// The index has two levels. subjectIndex maps a caller (SPIFFE ID, identity
// labels) or an on-behalf-of user to the policies whose subjects match, via
// a trie of SPIFFE path segments and hash maps. Each policy's targetIndex
// then maps the call's target (kind, service or server, tool) to the
// targets that can match it. A decision therefore touches only rules that
// can match both its subject and its target; the remaining per-target
// checks (methods, path globs, labels) run on that short list.

// subjectIndex finds the policies that apply to a caller or a user.
type subjectIndex struct {
	spiffe  map[string]*trieNode    // by trust domain
	labels  map[labelKV][]labelSubj // by the selector's first pair
	users   map[string][]int32
	anyUser []int32
	groups  map[string][]int32
}

type labelSubj struct {
	policy int32
	sel    subjectPattern
}

// trieNode is one path segment of the SPIFFE ID patterns.
type trieNode struct {
	lit   map[string]*trieNode
	star  *trieNode // "*": any one segment
	dstar []int32   // "**" here: policies matching any non-empty suffix
	end   []int32   // patterns ending here
}

func buildSubjectIndex(policies []*cpolicy) subjectIndex {
	x := subjectIndex{
		spiffe: map[string]*trieNode{},
		labels: map[labelKV][]labelSubj{},
		users:  map[string][]int32{},
		groups: map[string][]int32{},
	}
	for _, p := range policies {
		id := int32(p.ord)
		for _, s := range p.subjects {
			switch s.kind {
			case subjSPIFFE:
				n := x.spiffe[s.td]
				if n == nil {
					n = &trieNode{}
					x.spiffe[s.td] = n
				}
				for _, seg := range s.segs {
					switch seg {
					case "**":
						n.dstar = append(n.dstar, id)
						n = nil
					case "*":
						if n.star == nil {
							n.star = &trieNode{}
						}
						n = n.star
					default:
						if n.lit == nil {
							n.lit = map[string]*trieNode{}
						}
						c := n.lit[seg]
						if c == nil {
							c = &trieNode{}
							n.lit[seg] = c
						}
						n = c
					}
					if n == nil {
						break
					}
				}
				if n != nil {
					n.end = append(n.end, id)
				}
			case subjLabels:
				x.labels[s.labels[0]] = append(x.labels[s.labels[0]], labelSubj{policy: id, sel: s})
			case subjUser:
				if s.name == "*" {
					x.anyUser = append(x.anyUser, id)
				} else {
					x.users[s.name] = append(x.users[s.name], id)
				}
			case subjGroup:
				x.groups[s.name] = append(x.groups[s.name], id)
			}
		}
	}
	return x
}

// agent appends to out the policies whose SPIFFE or label subjects match
// the caller, sorted and without duplicates.
func (x *subjectIndex) agent(td, path string, labels map[string]string, out []int32) []int32 {
	if n := x.spiffe[td]; n != nil {
		out = n.collect(path, 1, out)
	}
	if len(x.labels) > 0 {
		for k, v := range labels {
			for _, ls := range x.labels[labelKV{k, v}] {
				if ls.sel.matchLabels(labels) {
					out = append(out, ls.policy)
				}
			}
		}
	}
	return sortUnique(out)
}

// collect walks path from byte i (the start of a segment).
func (n *trieNode) collect(path string, i int, out []int32) []int32 {
	if i > len(path) {
		return append(out, n.end...)
	}
	out = append(out, n.dstar...)
	seg, next := segmentAt(path, i)
	if c := n.lit[seg]; c != nil {
		out = c.collect(path, next, out)
	}
	if n.star != nil {
		out = n.star.collect(path, next, out)
	}
	return out
}

// user appends the policies whose user or group subjects match.
func (x *subjectIndex) user(name string, groups []string, out []int32) []int32 {
	if name == "" {
		return out
	}
	out = append(out, x.users[name]...)
	out = append(out, x.anyUser...)
	for _, g := range groups {
		out = append(out, x.groups[g]...)
	}
	return sortUnique(out)
}

func sortUnique(s []int32) []int32 {
	if len(s) < 2 {
		return s
	}
	// Insertion sort: the list is short and often sorted already.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return slices.Compact(s)
}

// Target index keys.
const (
	keyHTTP uint8 = iota + 1
	keyTool
	keyResource
	keyPrompt
	keyToken
	keyTask
)

type tkey struct {
	kind uint8
	name string // service, server, audience or purpose
	sub  string // MCP tool, resource or prompt; "" for "any or a pattern"
}

type ientry struct {
	t     *ctarget
	exact bool // the key matched the MCP sub-name exactly
}

// targetIndex finds one policy's targets that can match a call.
type targetIndex struct {
	byKey   map[tkey][]ientry
	scan    []*ctarget            // names are patterns: checked one by one
	byLabel map[string][]*ctarget // labels-only targets
}

func buildTargetIndex(p *cpolicy) targetIndex {
	x := targetIndex{byKey: map[tkey][]ientry{}, byLabel: map[string][]*ctarget{}}
	add := func(k tkey, t *ctarget, exact bool) { x.byKey[k] = append(x.byKey[k], ientry{t, exact}) }
	for _, r := range p.rules {
		for _, t := range r.targets {
			switch t.kind {
			case "":
				for _, l := range t.labels {
					x.byLabel[l] = append(x.byLabel[l], t)
				}
			case KindHTTP:
				if t.name.IsLiteral() {
					add(tkey{keyHTTP, t.name.src, ""}, t, false)
				} else {
					x.scan = append(x.scan, t)
				}
			case KindMCP:
				if !t.name.IsLiteral() {
					x.scan = append(x.scan, t)
					continue
				}
				srv := t.name.src
				if t.mcpAll {
					for _, k := range []uint8{keyTool, keyResource, keyPrompt} {
						add(tkey{k, srv, ""}, t, false)
					}
					continue
				}
				for _, l := range []struct {
					k uint8
					g globList
				}{{keyTool, t.tools}, {keyResource, t.resources}, {keyPrompt, t.prompt}} {
					pattern := false
					for _, g := range l.g {
						if g.IsLiteral() {
							add(tkey{l.k, srv, g.src}, t, true)
						} else {
							pattern = true
						}
					}
					if pattern {
						add(tkey{l.k, srv, ""}, t, false)
					}
				}
			case KindToken, KindTask:
				k, names := keyToken, t.audiences
				if t.kind == KindTask {
					k, names = keyTask, t.purposes
				}
				pattern := names == nil
				for _, g := range names {
					if g.IsLiteral() {
						add(tkey{k, g.src, ""}, t, false)
					} else {
						pattern = true
					}
				}
				if pattern {
					x.scan = append(x.scan, t)
				}
			}
		}
	}
	return x
}

// requestKey returns the index keys of r: the exact one and, for MCP, the
// one for targets whose sub-name is a pattern.
func requestKey(r *Request) (exact, pattern tkey, ok bool) {
	switch r.Kind {
	case KindHTTP:
		k := tkey{keyHTTP, r.HTTP.Service, ""}
		return k, tkey{}, true
	case KindMCP:
		var k tkey
		switch {
		case r.MCP.Tool != "":
			k = tkey{keyTool, r.MCP.Server, r.MCP.Tool}
		case r.MCP.Resource != "":
			k = tkey{keyResource, r.MCP.Server, r.MCP.Resource}
		case r.MCP.Prompt != "":
			k = tkey{keyPrompt, r.MCP.Server, r.MCP.Prompt}
		default:
			return tkey{}, tkey{}, false
		}
		return k, tkey{k.kind, k.name, ""}, true
	case KindToken:
		return tkey{keyToken, r.Token.Audience, ""}, tkey{}, true
	case KindTask:
		return tkey{keyTask, r.Task.Purpose, ""}, tkey{}, true
	}
	return tkey{}, tkey{}, false
}

// lookup appends to out the rules of this policy with a target matching r.
func (x *targetIndex) lookup(r *Request, exact, pattern tkey, out []*crule) []*crule {
	for _, e := range x.byKey[exact] {
		if e.t.match(r, e.exact) {
			out = append(out, e.t.rule)
		}
	}
	if pattern.kind != 0 {
		for _, e := range x.byKey[pattern] {
			if e.t.match(r, false) {
				out = append(out, e.t.rule)
			}
		}
	}
	for _, t := range x.scan {
		if t.match(r, false) {
			out = append(out, t.rule)
		}
	}
	if len(x.byLabel) > 0 {
		for _, l := range r.TargetLabels {
			for _, t := range x.byLabel[l] {
				if t.match(r, false) {
					out = append(out, t.rule)
				}
			}
		}
	}
	return out
}
