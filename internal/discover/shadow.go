package discover

import (
	"fmt"
	"path"
)

// shadows lists what in rep runs around writ:
//
//   - every agent and MCP server without a writ identity;
//   - every static credential an agent or MCP server holds in its
//     environment or can read in its owner's files, and every credential
//     a declared MCP server's configuration carries: writ's broker could
//     inject it instead;
//   - every direct connection, by any process, to the upstream of a writ
//     Service.
func shadows(rep *Report) []Shadow {
	var out []Shadow
	byID := map[string]*Credential{}
	for i := range rep.Credentials {
		byID[rep.Credentials[i].ID] = &rep.Credentials[i]
	}
	seenCred := map[string]bool{}
	for i := range rep.Processes {
		p := &rep.Processes[i]
		name := p.Name
		if name == "" {
			name = path.Base(p.Exe)
		}
		if p.Interesting() && p.Identity == "" {
			out = append(out, Shadow{Kind: ShadowUnidentified, PID: p.PID, Process: name,
				Detail: fmt.Sprintf("%s %q (pid %d, uid %d) has no writ identity: register an Identity whose selectors match it", kindText(p.Kind), name, p.PID, p.UID)})
		}
		if p.Interesting() {
			for _, id := range p.Credentials {
				c := byID[id]
				if c == nil || seenCred[id] {
					continue
				}
				seenCred[id] = true
				out = append(out, Shadow{Kind: ShadowStaticCredential, PID: p.PID, Process: name, Credential: id,
					Detail: fmt.Sprintf("%s %q can use the static credential %s (%s): put it in writ's broker and let the proxy inject it", kindText(p.Kind), name, describe(c), c.Kind)})
			}
		}
		for _, c := range p.Connections {
			if c.Route == RouteDirect && c.Service != "" {
				out = append(out, Shadow{Kind: ShadowDirectAccess, PID: p.PID, Process: name, Service: c.Service, Remote: c.Remote.String(),
					Detail: fmt.Sprintf("pid %d (%s) connects to %s, the upstream of Service %q, around writ: send it through the proxy", p.PID, name, c.Remote, c.Service)})
			}
		}
	}
	for _, d := range rep.MCPConfigs {
		for _, id := range d.Credentials {
			c := byID[id]
			if c == nil || seenCred[id] {
				continue
			}
			seenCred[id] = true
			out = append(out, Shadow{Kind: ShadowStaticCredential, Process: d.Server, Credential: id,
				Detail: fmt.Sprintf("MCP server %q declared in %s carries the static credential %s (%s): let writ's gateway inject it", d.Server, d.Path, describe(c), c.Kind)})
		}
	}
	return out
}

func kindText(k Kind) string {
	if k == KindMCPServer {
		return "MCP server"
	}
	return "agent"
}

func describe(c *Credential) string {
	switch c.Source {
	case "env":
		return "in environment variable " + c.Name
	case "file":
		if c.Name != "" {
			return fmt.Sprintf("in %s [%s]", c.Path, c.Name)
		}
		return "in " + c.Path
	}
	return c.Name + " in " + c.Path
}
