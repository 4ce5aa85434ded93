package discover

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/secrets"
	"github.com/writ-dev/writ/internal/store"
)

// helperEnv makes the test binary act as a discovered process: it
// connects to $DISCOVER_CONNECT if set, says "ready" and waits for its
// stdin to close.
const helperEnv = "WRIT_DISCOVER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if addr := os.Getenv("DISCOVER_CONNECT"); addr != "" {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				os.Exit(3)
			}
			defer c.Close()
		}
		os.Stdout.WriteString("ready\n")
		io.Copy(io.Discard, os.Stdin)
		return
	}
	os.Exit(m.Run())
}

func newDetector(t testing.TB) *secrets.Detector {
	t.Helper()
	d, err := secrets.New(secrets.Config{FingerprintKey: []byte("discover-test-fingerprint-key-0123")})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// alnum returns n random upper-case letters and digits.
func alnum(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	mixed       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// copyExe copies the test binary to dir/name, so that a process runs an
// executable of that name.
func copyExe(t *testing.T, dir, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs exe with argv and env (plus the helper switch), waits until
// it is ready, and stops it at the end of the test.
func start(t *testing.T, exe string, argv, env []string) int {
	t.Helper()
	cmd := &exec.Cmd{Path: exe, Args: argv, Env: append(env, helperEnv+"=1")}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("%v did not start: %q, %v", argv, line, err)
	}
	return cmd.Process.Pid
}

// matcherFunc adapts a function to Matcher.
type matcherFunc func([]store.Selector) []store.Entry

func (f matcherFunc) Match(s []store.Selector) []store.Entry { return f(s) }

func listen(t *testing.T) (net.Listener, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln, ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestScanRealProcesses starts an unregistered "agent" holding an OpenAI
// key in its environment and AWS keys in its HOME, connecting straight to
// a Service's upstream; a registered agent connecting through the proxy;
// and an MCP server stand-in. Each is found and classified, and no secret
// value appears in the report or the log.
func TestScanRealProcesses(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	_, upstream := listen(t)
	_, proxy := listen(t)

	openaiKey := "sk-proj-" + alnum(48, mixed)
	awsID := "AKIA" + alnum(16, upperDigits)
	awsSecret := alnum(40, mixed)
	ghToken := "ghp_" + alnum(36, mixed)
	argSecret := alnum(32, mixed)
	mustWrite(t, filepath.Join(home, ".aws/credentials"),
		"[default]\naws_access_key_id = "+awsID+"\naws_secret_access_key = "+awsSecret+"\n")
	mustWrite(t, filepath.Join(home, ".cursor/mcp.json"), `{"mcpServers": {"github": {"command": "npx",
		"args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "`+ghToken+`"}}}}`)
	secretValues := []string{openaiKey, awsID, awsSecret, ghToken, argSecret}

	python := copyExe(t, dir, "bin/python3")
	agent := start(t, python, []string{"python3", filepath.Join(dir, "agent.py"), "--api-key", argSecret},
		[]string{"HOME=" + home, "OPENAI_API_KEY=" + openaiKey, "DISCOVER_CONNECT=" + upstream.String()})
	claude := copyExe(t, dir, "bin/claude")
	registered := start(t, claude, []string{"claude", "-p", "hello"}, []string{"HOME=" + home, "DISCOVER_CONNECT=" + proxy.String()})
	node := copyExe(t, dir, "bin/node")
	mcp := start(t, node, []string{"node", filepath.Join(dir, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"), dir},
		[]string{"HOME=" + home})
	// This process holds the proxy's listener, so it is writ: its own
	// connection to the upstream is the proxy forwarding, not shadow.
	fwd, err := net.Dial("tcp", upstream.String())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()

	var logs bytes.Buffer
	s, err := New(Config{
		Detector:  newDetector(t),
		Log:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		WritAddrs: func() []netip.AddrPort { return []netip.AddrPort{proxy} },
		Upstreams: func(context.Context) []Upstream { return []Upstream{{Service: "billing", Addr: upstream}} },
		Matcher: matcherFunc(func(sel []store.Selector) []store.Entry {
			if slices.Contains(sel, store.Selector{Type: attest.SelectorType, Value: attest.KeyPath + ":" + claude}) {
				return []store.Entry{{Name: "claude", SpiffeID: "spiffe://writ.local/agent/claude"}}
			}
			return nil
		}),
		Home: func(int) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]Process{}
	for _, p := range rep.Processes {
		byPID[p.PID] = p
	}

	a := byPID[agent]
	if a.Kind != KindAgent || a.Exe != python || len(a.SHA256) != 64 || a.Identity != "" || !slices.Contains(a.Selectors, "unix:sha256:"+a.SHA256) {
		t.Errorf("agent process: %+v", a)
	}
	if !slices.Contains(a.Cmdline, Redacted) {
		t.Errorf("agent's --api-key argument not redacted: %q", a.Cmdline)
	}
	if len(a.Connections) != 1 || a.Connections[0].Remote != upstream || a.Connections[0].Route != RouteDirect || a.Connections[0].Service != "billing" {
		t.Errorf("agent's connections: %+v", a.Connections)
	}
	r := byPID[registered]
	if r.Kind != KindAgent || r.Name != "claude" || r.Identity != "spiffe://writ.local/agent/claude" {
		t.Errorf("registered agent: %+v", r)
	}
	if len(r.Connections) != 1 || r.Connections[0].Route != RouteWrit {
		t.Errorf("registered agent's connections: %+v", r.Connections)
	}
	m := byPID[mcp]
	if m.Kind != KindMCPServer || m.Name != "@modelcontextprotocol/server-filesystem" {
		t.Errorf("MCP server: %+v", m)
	}

	// Every credential on its own: other processes on the host (another
	// test's agent) may hold a credential of the same name.
	var env, awsFile, mcpEnv bool
	for _, c := range rep.Credentials {
		k := c.Source + ":" + c.Name + ":" + c.Kind
		switch {
		case c.Source == "env" && c.Name == "OPENAI_API_KEY" && slices.Contains(c.PIDs, agent):
			env = true
		case c.Source == "file" && c.Path == filepath.Join(home, ".aws/credentials") && c.Name == "default":
			awsFile = true
		case c.Source == "mcp_config" && c.Name == "github.env.GITHUB_PERSONAL_ACCESS_TOKEN":
			mcpEnv = true
		}
		if len(c.Fingerprint) != 64 {
			t.Errorf("credential %s: fingerprint %q", k, c.Fingerprint)
		}
	}
	if !env || !awsFile || !mcpEnv {
		t.Errorf("credentials found: env %v, aws file %v, MCP config env %v; all: %+v", env, awsFile, mcpEnv, rep.Credentials)
	}
	// Other test runs on the host (this test in another checkout, say)
	// have homes of their own: only what lies in this test's is judged.
	var ours []MCPDeclared
	for _, d := range rep.MCPConfigs {
		if strings.HasPrefix(d.Path, home+string(filepath.Separator)) {
			ours = append(ours, d)
		}
	}
	if len(ours) != 1 || ours[0].Server != "github" || ours[0].Client != "cursor" {
		t.Errorf("declared MCP servers in %s: %+v", home, ours)
	}

	shadow := map[ShadowKind][]Shadow{}
	for _, sh := range rep.Shadows {
		shadow[sh.Kind] = append(shadow[sh.Kind], sh)
	}
	if !hasShadow(shadow[ShadowUnidentified], agent) || !hasShadow(shadow[ShadowUnidentified], mcp) || hasShadow(shadow[ShadowUnidentified], registered) {
		t.Errorf("unidentified: %+v", shadow[ShadowUnidentified])
	}
	for _, c := range byPID[os.Getpid()].Connections {
		if c.Remote == upstream && c.Service != "" {
			t.Errorf("writ's own connection to the upstream is counted as access to %q around writ", c.Service)
		}
	}
	if len(shadow[ShadowDirectAccess]) != 1 || shadow[ShadowDirectAccess][0].PID != agent || shadow[ShadowDirectAccess][0].Service != "billing" {
		t.Errorf("direct access: %+v", shadow[ShadowDirectAccess])
	}
	if len(shadow[ShadowStaticCredential]) < 3 {
		t.Errorf("static credentials: %+v", shadow[ShadowStaticCredential])
	}

	if os.Getenv("DISCOVER_DUMP") != "" {
		b, _ := json.MarshalIndent(rep, "", " ")
		t.Logf("%s", b)
	}
	out, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range secretValues {
		if bytes.Contains(out, []byte(v)) || bytes.Contains(logs.Bytes(), []byte(v)) {
			t.Errorf("a secret value (%d bytes) appears in the report or the log", len(v))
		}
	}
}

func hasShadow(list []Shadow, pid int) bool {
	return slices.ContainsFunc(list, func(s Shadow) bool { return s.PID == pid })
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
