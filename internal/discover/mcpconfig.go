package discover

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/writ-dev/writ/internal/secrets"
)

// mcpClientConfigs are MCP client configuration files, relative to a home
// directory, and the client each belongs to.
var mcpClientConfigs = []struct{ rel, client string }{
	{".config/Claude/claude_desktop_config.json", "claude-desktop"},
	{"Library/Application Support/Claude/claude_desktop_config.json", "claude-desktop"},
	{".claude.json", "claude-code"},
	{".cursor/mcp.json", "cursor"},
	{".config/Code/User/mcp.json", "vscode"},
	{".config/Code/User/settings.json", "vscode"},
	{"Library/Application Support/Code/User/mcp.json", "vscode"},
	{".codeium/windsurf/mcp_config.json", "windsurf"},
	{".gemini/settings.json", "gemini"},
}

// mcpServerDecl is one server in a client's configuration.
type mcpServerDecl struct {
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	URL       string            `json:"url"`
	ServerURL string            `json:"serverUrl"` // Windsurf
	Env       map[string]string `json:"env"`
	Headers   map[string]string `json:"headers"`
}

// mcpConfigDoc is the union of the clients' layouts: "mcpServers" (Claude
// Desktop, Claude Code, Cursor, Windsurf, Gemini), "servers" (VS Code's
// mcp.json), "mcp.servers" (VS Code's settings.json) and Claude Code's
// per-project "projects.PATH.mcpServers".
type mcpConfigDoc struct {
	MCPServers map[string]mcpServerDecl `json:"mcpServers"`
	Servers    map[string]mcpServerDecl `json:"servers"`
	MCP        struct {
		Servers map[string]mcpServerDecl `json:"servers"`
	} `json:"mcp"`
	Projects map[string]struct {
		MCPServers map[string]mcpServerDecl `json:"mcpServers"`
	} `json:"projects"`
}

// ParseMCPConfig parses an MCP client configuration file and returns the
// servers it declares, with their arguments and URLs redacted, and the
// credentials found in their env blocks, headers, arguments and URLs
// (fingerprints only). Declared servers and credentials carry path and
// client; the caller sets UID and ids.
func ParseMCPConfig(d *secrets.Detector, client, path string, data []byte) ([]MCPDeclared, []Credential, error) {
	var doc mcpConfigDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, nil, fmt.Errorf("parse MCP client config %s: offset %d: %v", path, se.Offset, se)
		}
		return nil, nil, fmt.Errorf("parse MCP client config %s: %v", path, err)
	}
	all := map[string]mcpServerDecl{}
	for name, s := range doc.MCPServers {
		all[name] = s
	}
	for name, s := range doc.Servers {
		all[name] = s
	}
	for name, s := range doc.MCP.Servers {
		all[name] = s
	}
	for proj, p := range doc.Projects {
		for name, s := range p.MCPServers {
			all[proj+":"+name] = s
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var decls []MCPDeclared
	var creds []Credential
	for _, name := range names {
		s := all[name]
		url := s.URL
		if url == "" {
			url = s.ServerURL
		}
		decl := MCPDeclared{Client: client, Path: path, Server: name, Command: redactString(d, s.Command),
			Args: RedactArgs(d, s.Args), URL: redactString(d, url)}
		add := func(kind, key, fingerprint string) {
			c := Credential{Kind: kind, Source: "mcp_config", Name: name + "." + key, Path: path, Fingerprint: fingerprint}
			creds = append(creds, c)
			decl.Credentials = append(decl.Credentials, c.Name)
		}
		envNames := make([]string, 0, len(s.Env))
		for k := range s.Env {
			envNames = append(envNames, k)
		}
		sort.Strings(envNames)
		decl.Env = envNames
		for _, k := range envNames {
			for _, c := range envCredentials(d, []string{k + "=" + s.Env[k]}, true) {
				add(c.Kind, "env."+k, c.Fingerprint)
			}
		}
		hdrs := make([]string, 0, len(s.Headers))
		for k := range s.Headers {
			hdrs = append(hdrs, k)
		}
		sort.Strings(hdrs)
		for _, k := range hdrs {
			v := s.Headers[k]
			if fs := d.Find([]byte(k + ": " + v)); len(fs) > 0 {
				add(fs[0].RuleID, "headers."+k, fs[0].Fingerprint)
			} else if secretName(k) || k == "Authorization" || k == "authorization" {
				add("secret-header", "headers."+k, d.Fingerprint([]byte(v)))
			}
		}
		for i, a := range append(append([]string{}, s.Args...), url) {
			key := fmt.Sprintf("args[%d]", i)
			if i == len(s.Args) {
				key = "url"
			}
			if fs := d.Find([]byte(a)); len(fs) > 0 {
				add(fs[0].RuleID, key, fs[0].Fingerprint)
			} else if i > 0 && i < len(s.Args) && isSecretFlag(s.Args[i-1]) {
				add("secret-argument", key, d.Fingerprint([]byte(a)))
			}
		}
		decls = append(decls, decl)
	}
	return decls, creds, nil
}
