package discover

import (
	"slices"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Signals
		kind Kind
		as   string
		conf float64
	}{
		{"claude CLI", Signals{Exe: "/usr/local/bin/claude", Argv: []string{"claude"}}, KindAgent, "claude", 0.9},
		{"codex via node", Signals{Exe: "/usr/bin/node", Argv: []string{"node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"}}, KindAgent, "codex", 0.95},
		{"aider via python", Signals{Exe: "/usr/bin/python3.12", Argv: []string{"/usr/bin/python3", "/home/u/.local/bin/aider", "--model", "x"}}, KindAgent, "aider", 0.9},
		{"npx MCP server", Signals{Exe: "/usr/bin/node", Argv: []string{"npm exec @modelcontextprotocol/server-github@2025.4.8"}}, KindProcess, "", 0},
		{"npx MCP server argv", Signals{Exe: "/usr/bin/node", Argv: []string{"npx", "-y", "@modelcontextprotocol/server-github@2025.4.8"}}, KindMCPServer, "@modelcontextprotocol/server-github", 0.9},
		{"uvx MCP server", Signals{Exe: "/usr/bin/python3", Argv: []string{"uvx", "mcp-server-git", "--repository", "."}}, KindMCPServer, "mcp-server-git", 0.9},
		{"MCP binary", Signals{Exe: "/usr/local/bin/github-mcp-server", Argv: []string{"github-mcp-server", "stdio"}}, KindMCPServer, "github-mcp-server", 0.9},
		{"SDK mapped", Signals{Exe: "/usr/bin/python3", Argv: []string{"python3", "app.py"}, Modules: []string{"/venv/lib/python3.12/site-packages/tiktoken/_tiktoken.so"}}, KindAgent, "tiktoken", 0.7},
		{"key in interpreter", Signals{Exe: "/usr/bin/python3", Argv: []string{"python3", "bot.py"}, EnvNames: []string{"PATH", "ANTHROPIC_API_KEY"}}, KindAgent, "bot.py", 0.5},
		{"key in other", Signals{Exe: "/usr/bin/curl", Argv: []string{"curl"}, EnvNames: []string{"OPENAI_API_KEY"}}, KindAgent, "curl", 0.3},
		{"plain", Signals{Exe: "/usr/bin/bash", Argv: []string{"bash"}, EnvNames: []string{"HOME"}}, KindProcess, "", 0},
		{"python running a file named like a CLI's word", Signals{Exe: "/usr/bin/python3", Argv: []string{"python3", "-m", "http.server"}}, KindProcess, "", 0},
		{"mcp in an unrelated argument of a non-interpreter", Signals{Exe: "/usr/bin/cat", Argv: []string{"cat", "mcp-server-notes.txt"}}, KindProcess, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Classify(tc.s)
			if v.Kind != tc.kind || v.Name != tc.as || v.Confidence != tc.conf {
				t.Errorf("Classify = %s %q %.2f (%q), want %s %q %.2f", v.Kind, v.Name, v.Confidence, v.Evidence, tc.kind, tc.as, tc.conf)
			}
			if v.Kind != KindProcess && len(v.Evidence) == 0 {
				t.Errorf("no evidence for %s", v.Kind)
			}
		})
	}
}

func TestRedactArgs(t *testing.T) {
	d := newDetector(t)
	tok := "ghp_" + alnum(36, mixed)
	for _, tc := range []struct{ in, want []string }{
		{[]string{"tool", "--token", "abc123456789"}, []string{"tool", "--token", Redacted}},
		{[]string{"tool", "--password=hunter2hunter2"}, []string{"tool", "--password=" + Redacted}},
		{[]string{"tool", "--client-secret", "x"}, []string{"tool", "--client-secret", Redacted}},
		{[]string{"env", "API_TOKEN=abcdefgh123"}, []string{"env", "API_TOKEN=" + Redacted}},
		{[]string{"tool", "--verbose", "file.txt"}, []string{"tool", "--verbose", "file.txt"}},
		{[]string{"tool", "--keyboard", "us"}, []string{"tool", "--keyboard", "us"}},
		{[]string{"git", "push", "https://u:" + tok + "@github.com/x"}, nil},
		{[]string{"tool", tok}, nil},
	} {
		got := RedactArgs(d, tc.in)
		if tc.want != nil && !slices.Equal(got, tc.want) {
			t.Errorf("RedactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(strings.Join(got, " "), tok) {
			t.Errorf("RedactArgs(%q) kept the token: %q", tc.in, got)
		}
	}
}

func TestSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"OPENAI_API_KEY": true, "GITHUB_TOKEN": true, "DB_PASSWORD": true, "AWS_SECRET_ACCESS_KEY": true,
		"CLIENT_SECRETS": true, "KEY": true, "PWD": false, "HOME": false, "KEYBOARD": false, "TOKENIZERS_PARALLELISM": false,
		"AUTHOR": false, "PASSAGE": false, "SSH_AUTH_SOCK": true, "MONKEY": false, "api-key": true,
	} {
		if got := secretName(name); got != want {
			t.Errorf("secretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestEnvCredentials(t *testing.T) {
	d := newDetector(t)
	cs := envCredentials(d, []string{"OPENAI_API_KEY=sk-" + alnum(40, mixed), "SSH_AUTH_SOCK=/run/x.sock", "SHORT_TOKEN=abc", "PATH=/usr/bin", "GH=ghp_" + alnum(36, mixed)}, true)
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"OPENAI_API_KEY", "GH"}) {
		t.Errorf("envCredentials found %q, want OPENAI_API_KEY and GH", names)
	}
}
