package policy

import (
	"slices"
	"strings"
)

// ctarget is a compiled TargetSpec.
type ctarget struct {
	rule  *crule
	field string // "spec.rules[1].targets[0]", for messages
	kind  Kind   // "" for a labels-only target (any kind)

	name    Glob     // HTTP service or MCP server
	methods []string // nil: any
	paths   globList // nil: any

	mcpAll                   bool // no tools, resources or prompts listed: all of them
	tools, resources, prompt globList

	audiences globList // nil: any
	scopes    []string // nil: any

	purposes globList // nil: any

	labels []string // nil: no label requirement
}

// httpMethods are the methods a rule may name.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// match reports whether t covers the call in r, which is in canonical
// form. exactSub is true when the index already matched the MCP tool,
// resource or prompt name exactly.
func (t *ctarget) match(r *Request, exactSub bool) bool {
	ok, _ := t.check(r, exactSub, false)
	return ok
}

// no returns a failed check, with its reason only when explaining (the
// decision path must not pay for formatting).
func no(explain bool, why func() string) (bool, string) {
	if !explain {
		return false, ""
	}
	return false, why()
}

// check is match that, when explain is set, says why t does not match.
func (t *ctarget) check(r *Request, exactSub, explain bool) (bool, string) {
	if t.kind != "" && t.kind != r.Kind {
		return no(explain, func() string { return "it covers " + string(t.kind) + " calls" })
	}
	if t.labels != nil && !anyIn(t.labels, r.TargetLabels) {
		return no(explain, func() string { return "the target carries none of the labels " + strings.Join(t.labels, ", ") })
	}
	switch t.kind {
	case KindHTTP:
		if !t.name.Match(r.HTTP.Service) {
			return no(explain, func() string { return "service " + r.HTTP.Service + " is not " + t.name.src })
		}
		if t.methods != nil && !slices.Contains(t.methods, r.HTTP.Method) && !slices.Contains(t.methods, "*") {
			return no(explain, func() string { return "method " + r.HTTP.Method + " is not in [" + strings.Join(t.methods, ", ") + "]" })
		}
		if t.paths != nil && !t.paths.match(r.HTTP.Path) {
			return no(explain, func() string { return "path " + r.HTTP.Path + " matches none of " + t.paths.String() })
		}
	case KindMCP:
		if !t.name.Match(r.MCP.Server) {
			return no(explain, func() string { return "server " + r.MCP.Server + " is not " + t.name.src })
		}
		if t.mcpAll || exactSub {
			return true, ""
		}
		switch {
		case r.MCP.Tool != "":
			if !t.tools.match(r.MCP.Tool) {
				return no(explain, func() string { return "tool " + r.MCP.Tool + " matches none of " + t.tools.String() })
			}
		case r.MCP.Resource != "":
			if !t.resources.match(r.MCP.Resource) {
				return no(explain, func() string { return "resource " + r.MCP.Resource + " matches none of " + t.resources.String() })
			}
		case r.MCP.Prompt != "":
			if !t.prompt.match(r.MCP.Prompt) {
				return no(explain, func() string { return "prompt " + r.MCP.Prompt + " matches none of " + t.prompt.String() })
			}
		default:
			return no(explain, func() string { return "the request names no tool, resource or prompt" })
		}
	case KindToken:
		if t.audiences != nil && !t.audiences.match(r.Token.Audience) {
			return no(explain, func() string { return "audience " + r.Token.Audience + " matches none of " + t.audiences.String() })
		}
		if t.scopes != nil {
			if t.rule.effect == effectAllow {
				for _, s := range r.Token.Scopes {
					if !slices.Contains(t.scopes, s) {
						return no(explain, func() string { return "scope " + s + " is not in [" + strings.Join(t.scopes, ", ") + "]" })
					}
				}
			} else if !anyIn(t.scopes, r.Token.Scopes) {
				return no(explain, func() string { return "no requested scope is in [" + strings.Join(t.scopes, ", ") + "]" })
			}
		}
	case KindTask:
		if t.purposes != nil && !t.purposes.match(r.Task.Purpose) {
			return no(explain, func() string { return "purpose " + r.Task.Purpose + " matches none of " + t.purposes.String() })
		}
	}
	return true, ""
}

// covers reports, conservatively, whether every call u matches t also
// matches (ignoring conditions). Used to find rules a deny shadows.
func (t *ctarget) covers(u *ctarget) bool {
	if t.labels != nil && (u.labels == nil || !subset(u.labels, t.labels)) {
		return false
	}
	if t.kind == "" {
		return t.labels != nil // labels-only: covered above
	}
	if t.kind != u.kind || !t.name.covers(u.name) {
		return false
	}
	switch t.kind {
	case KindHTTP:
		if t.methods != nil && !slices.Contains(t.methods, "*") && (u.methods == nil || !subset(u.methods, t.methods)) {
			return false
		}
		return t.paths == nil || (u.paths != nil && t.paths.coversAll(u.paths))
	case KindMCP:
		if t.mcpAll {
			return true
		}
		if u.mcpAll {
			return false
		}
		return (u.tools == nil || t.tools.coversAll(u.tools)) &&
			(u.resources == nil || t.resources.coversAll(u.resources)) &&
			(u.prompt == nil || t.prompt.coversAll(u.prompt))
	case KindToken:
		return (t.audiences == nil || (u.audiences != nil && t.audiences.coversAll(u.audiences))) && t.scopes == nil
	case KindTask:
		return t.purposes == nil || (u.purposes != nil && t.purposes.coversAll(u.purposes))
	}
	return false
}

func anyIn(want, have []string) bool {
	for _, h := range have {
		if slices.Contains(want, h) {
			return true
		}
	}
	return false
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
