package mcp

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

func parseOne(t *testing.T, src string) resource.Document {
	t.Helper()
	docs, err := resource.Parse("s.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	return docs[0]
}

const head = "apiVersion: writ.dev/v1\nkind: MCPServer\nmetadata: {name: files}\nspec:\n"

func TestStoredSpecCompiles(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	manifest := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(manifest, []byte("{}"), 0o600)
	for _, tc := range []struct {
		name, spec string
		check      func(t *testing.T, s *Server)
	}{
		{"stdio", `  command: npx
  args: ["-y", "@modelcontextprotocol/server-filesystem", "/data"]
  env: {NODE_ENV: production}
  credential: {name: fs-token, env: FS_TOKEN}
  labels: [private_data]
  tools:
    read_file: {labels: [untrusted_content, private_data]}
  restart: {initial: 100ms, max: 10s}
`, func(t *testing.T, s *Server) {
			if !s.Stdio() || s.Pin != PinTOFU || s.RestartInitial.String() != "100ms" || s.RestartMax.String() != "10s" {
				t.Errorf("compiled %+v", s)
			}
			if got := strings.Join(s.ToolLabels("read_file"), ","); got != "private_data,untrusted_content" {
				t.Errorf("ToolLabels(read_file) = %s", got)
			}
			if got := strings.Join(s.ToolLabels("other"), ","); got != "private_data" {
				t.Errorf("ToolLabels(other) = %s", got)
			}
			if s.Target() != "MCPServer/files" {
				t.Errorf("Target = %s", s.Target())
			}
		}},
		{"http with credential", `  url: https://mcp.example.com/mcp
  credential: {name: gh}
  timeouts: {connect: 5s, call: 30s}
`, func(t *testing.T, s *Server) {
			if s.Stdio() || s.Header != "Authorization" || s.Template != "Bearer {value}" || s.Call.String() != "30s" {
				t.Errorf("compiled %+v", s)
			}
		}},
		{"http other header", `  url: http://127.0.0.1:9000/mcp
  credential: {name: gh, header: X-Api-Key}
  pin: off
`, func(t *testing.T, s *Server) {
			if s.Header != "X-Api-Key" || s.Template != "{value}" || s.Pin != PinOff {
				t.Errorf("compiled %+v", s)
			}
		}},
		{"signed", "  url: https://mcp.example.com/mcp\n  pin: signed\n  publisher_key: " + FormatPublicKey(pub) + "\n  manifest: " + manifest + "\n",
			func(t *testing.T, s *Server) {
				if s.Pin != PinSigned || !s.PublisherKey.Equal(pub) {
					t.Errorf("compiled %+v", s)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := parseOne(t, head+tc.spec)
			b, err := StoredSpec(d)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Compile(store.Resource{Kind: resource.KindMCPServer, Name: "files", Version: 3, Spec: b})
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != "files" || s.Version != 3 {
				t.Errorf("name/version = %s/%d", s.Name, s.Version)
			}
			tc.check(t, s)
		})
	}
}

func TestStoredSpecErrors(t *testing.T) {
	for _, tc := range []struct{ name, spec, want string }{
		{"neither", "  pin: tofu\n", "s.yaml:5:3: spec.url: missing; set url"},
		{"both", "  url: https://x/mcp\n  command: npx\n", "s.yaml:6:12: spec.command: set url or command, not both"},
		{"bad scheme", "  url: ftp://x/mcp\n", "s.yaml:5:8: spec.url: \"ftp://x/mcp\": the scheme must be http or https"},
		{"userinfo", "  url: https://u:p@x/mcp\n", "spec.url: the URL holds user information"},
		{"args with url", "  url: https://x/mcp\n  args: [a]\n", "s.yaml:6:9: spec.args: only a stdio server"},
		{"bad pin", "  command: x\n  pin: maybe\n", "s.yaml:6:8: spec.pin: \"maybe\" is not a pin mode"},
		{"signed without key", "  command: x\n  pin: signed\n", "spec.publisher_key: missing"},
		{"bad key", "  command: x\n  pin: signed\n  publisher_key: ed25519:AAAA\n", "s.yaml:7:18: spec.publisher_key: \"ed25519:AAAA\" is not a 32-byte"},
		{"key without signed", "  command: x\n  publisher_key: ed25519:AAAA\n", "spec.publisher_key: only pin: signed"},
		{"stdio credential without env", "  command: x\n  credential: {name: gh}\n", "spec.credential.env: missing"},
		{"stdio credential header", "  command: x\n  credential: {name: gh, env: T, header: X}\n", "spec.credential.header: a stdio server"},
		{"http credential env", "  url: https://x/mcp\n  credential: {name: gh, env: T}\n", "spec.credential.env: a URL upstream"},
		{"bad credential name", "  url: https://x/mcp\n  credential: {name: \"A B\"}\n", "spec.credential.name: \"A B\" is not a credential name"},
		{"bad header", "  url: https://x/mcp\n  credential: {name: gh, header: \"a b\"}\n", "spec.credential.header"},
		{"template without value", "  url: https://x/mcp\n  credential: {name: gh, template: \"Bearer\"}\n", "does not contain {value}"},
		{"secret in env", "  command: x\n  env: {GITHUB_TOKEN: ghp_x}\n", "s.yaml:6:23: spec.env.GITHUB_TOKEN: looks like a secret"},
		{"bad env name", "  command: x\n  env: {\"A-B\": x}\n", "spec.env.A-B: \"A-B\" is not an environment variable name"},
		{"credential env dup", "  command: x\n  env: {FS: a}\n  credential: {name: gh, env: FS}\n", "spec.credential.env: FS is also set under env"},
		{"bad label", "  command: x\n  labels: [\"Private Data\"]\n", "s.yaml:6:12: spec.labels.0: \"Private Data\" is not a label"},
		{"bad tool label", "  command: x\n  tools: {read: {labels: [\"\"]}}\n", "spec.tools.read.labels.0"},
		{"bad tool name", "  command: x\n  tools: {\"a b\": {}}\n", "spec.tools.a b: \"a b\" is not a tool name"},
		{"bad timeout", "  command: x\n  timeouts: {call: -1s}\n", "s.yaml:6:20: spec.timeouts.call: \"-1s\": write a positive duration"},
		{"restart for url", "  url: https://x/mcp\n  restart: {initial: 1s}\n", "spec.restart: only a stdio server"},
		{"restart max below initial", "  command: x\n  restart: {initial: 10s, max: 1s}\n", "spec.restart.max: 1s is shorter"},
		{"relative dir", "  command: x\n  dir: work\n", "spec.dir: \"work\" must be an absolute path"},
		{"bad sessions", "  command: x\n  sessions: each\n", "s.yaml:6:13: spec.sessions: \"each\": write shared (the default) or per_agent"},
		{"unknown field", "  command: x\n  upstream: y\n", "s.yaml:6:3: spec.upstream: unknown field"},
		{"missing manifest file", "  command: x\n  pin: signed\n  publisher_key: ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n  manifest: /nonexistent/m.json\n", "spec.manifest: read /nonexistent/m.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := StoredSpec(parseOne(t, head+tc.spec))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	_, err := StoredSpec(parseOne(t, strings.Replace(head, "files", "a__b", 1)+"  command: x\n"))
	if err == nil || !strings.Contains(err.Error(), "s.yaml:3:18: metadata.name: the name \"a__b\" contains \"__\"") {
		t.Fatalf("err = %v", err)
	}
}

func TestCompileStoredErrors(t *testing.T) {
	if _, err := Compile(store.Resource{Name: "x", Version: 2, Spec: []byte("{")}); err == nil || !strings.Contains(err.Error(), "load MCPServer/x: stored spec is not valid") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Compile(store.Resource{Name: "x", Version: 2, Spec: []byte(`{"pin":"x","command":"a"}`)}); err == nil || err.Error() != `load MCPServer/x@2: spec.pin: "x" is not a pin mode; use tofu, signed or off` {
		t.Fatalf("err = %v", err)
	}
}

func FuzzStoredSpec(f *testing.F) {
	f.Add(head + "  command: npx\n  args: [a]\n  credential: {name: x, env: X}\n")
	f.Add(head + "  url: https://x/mcp\n  pin: signed\n  publisher_key: ed25519:AAAA\n")
	f.Add(head + "  tools: {a: {labels: [x]}}\n")
	f.Fuzz(func(t *testing.T, src string) {
		docs, err := resource.Parse("f.yaml", []byte(src))
		if err != nil {
			return
		}
		for _, d := range docs {
			if d.Kind != resource.KindMCPServer {
				continue
			}
			b, err := StoredSpec(d)
			if err != nil {
				if err.Error() == "" {
					t.Fatal("empty error")
				}
				continue
			}
			if _, err := Compile(store.Resource{Kind: d.Kind, Name: d.Name, Version: 1, Spec: b}); err != nil {
				t.Fatalf("stored spec does not compile back: %v\n%s", err, b)
			}
		}
	})
}
