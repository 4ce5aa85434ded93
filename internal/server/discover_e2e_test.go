package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/servertest"
)

const discoverHelperEnv = "WRIT_DISCOVER_HELPER_CONNECT"

// TestDiscoverHelperProcess is not a test: it is a process for the
// discovery tests to find (the test binary re-executed under another
// name). It connects to $WRIT_DISCOVER_HELPER_CONNECT, says "ready" and
// holds the connection until its stdin closes.
func TestDiscoverHelperProcess(t *testing.T) {
	addr := os.Getenv(discoverHelperEnv)
	if addr == "" {
		t.Skip("helper process for the discovery tests")
	}
	if addr != "none" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		defer c.Close()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func randomText(n int) string {
	const a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = a[int(b[i])%len(a)]
	}
	return string(b)
}

// startAs runs the test binary as dir/name (a copy) with argv[0] name,
// extra arguments after "--", and env; it returns once the process holds
// its connection.
func startAs(t *testing.T, dir, name, connect string, extra, env []string) (int, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "bin", name)
	os.MkdirAll(filepath.Dir(exe), 0o755)
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{name, "-test.run=^TestDiscoverHelperProcess$", "--"}, extra...)
	cmd := &exec.Cmd{Path: exe, Args: args, Env: append(env, discoverHelperEnv+"="+connect)}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("%s did not start: %q %v", name, line, err)
	}
	return cmd.Process.Pid, exe
}

// TestDiscoverAndInventory runs the sensor inside a real server against
// real processes: an unregistered "agent" holding an OpenAI-style key and
// an AWS credentials file in its HOME that connects straight to a
// Service's upstream, a registered agent connecting to the proxy, and an
// MCP server stand-in. writ discover and writ inventory classify each;
// no secret value is in any answer, log line or file of the data
// directory.
func TestDiscoverAndInventory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var logs bytes.Buffer
	cfg := servertest.Config(filepath.Join(dir, "data"))
	cfg.Log.Level = "debug"
	in := servertest.Start(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c := in.Client

	up, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			conn, err := up.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	apply(t, c, "svc.yaml", fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: billing}
spec:
  upstream: http://%s
  match: {host: billing.internal}
`, up.Addr()))
	brokered := "brokered-" + randomText(24)
	if _, err := c.PutCredential(ctx, "billing-key", "bearer", brokered); err != nil {
		t.Fatal(err)
	}

	home := filepath.Join(dir, "home")
	openaiKey := "sk-proj-" + randomText(48)
	awsID := "AKIA" + randomText(16)
	awsSecret := randomText(40)
	argSecret := randomText(30)
	os.MkdirAll(filepath.Join(home, ".aws"), 0o700)
	os.WriteFile(filepath.Join(home, ".aws/credentials"), []byte("[default]\naws_access_key_id = "+awsID+"\naws_secret_access_key = "+awsSecret+"\n"), 0o600)
	secretValues := []string{openaiKey, awsID, awsSecret, argSecret, brokered}

	agent, _ := startAs(t, dir, "python3", up.Addr().String(), []string{"agent.py", "--api-key", argSecret},
		[]string{"HOME=" + home, "OPENAI_API_KEY=" + openaiKey})
	registered, claudeExe := startAs(t, dir, "claude", in.Server.ProxyAddr(), nil, []string{"HOME=" + home})
	mcp, _ := startAs(t, dir, "node", "none", []string{filepath.Join(dir, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")}, []string{"HOME=" + home})
	if _, err := c.CreateEntry(ctx, apitypes.Entry{Name: "claude", SpiffeID: "spiffe://writ.local/agent/claude",
		Selectors: []string{"unix:path:" + claudeExe}, Labels: map[string]string{"owner": "platform"}}); err != nil {
		t.Fatal(err)
	}

	rep, err := c.Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	procs := map[int]apitypes.DiscoveredProcess{}
	for _, p := range rep.Processes {
		procs[p.PID] = p
	}
	if p := procs[agent]; p.Kind != "agent" || p.Identity != "" || len(p.Connections) != 1 || p.Connections[0].Service != "billing" || p.Connections[0].Route != "direct" {
		t.Errorf("unregistered agent: %+v", p)
	}
	if p := procs[registered]; p.Kind != "agent" || p.Identity != "spiffe://writ.local/agent/claude" || len(p.Connections) != 1 || p.Connections[0].Route != "writ" {
		t.Errorf("registered agent: %+v", p)
	}
	if p := procs[mcp]; p.Kind != "mcp_server" || p.Identity != "" {
		t.Errorf("MCP server: %+v", p)
	}
	shadow := map[string]int{}
	for _, s := range rep.Shadows {
		if s.PID == agent || s.PID == mcp || s.PID == registered {
			shadow[s.Kind+"/"+strconv.Itoa(s.PID)]++
		}
	}
	if shadow["unidentified/"+strconv.Itoa(agent)] != 1 || shadow["unidentified/"+strconv.Itoa(mcp)] != 1 || shadow["unidentified/"+strconv.Itoa(registered)] != 0 ||
		shadow["direct_access/"+strconv.Itoa(agent)] != 1 || shadow["static_credential/"+strconv.Itoa(agent)] < 2 {
		t.Errorf("shadow findings: %v", shadow)
	}

	inv, err := c.Inventory(ctx, client.InventoryQuery{})
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	var claudeID *apitypes.InventoryIdentity
	for i := range inv.Identities {
		if inv.Identities[i].Name == "claude" {
			claudeID = &inv.Identities[i]
		}
	}
	if claudeID == nil || claudeID.Owner != "platform" || claudeID.Discovered != 1 || claudeID.Live != 1 {
		t.Errorf("identity claude in the inventory: %+v", claudeID)
	}
	var brokeredSeen, discoveredSeen bool
	for _, cr := range inv.Credentials {
		brokeredSeen = brokeredSeen || cr.Source == "brokered" && cr.Name == "billing-key"
		discoveredSeen = discoveredSeen || cr.Source == "discovered" && cr.Name == "OPENAI_API_KEY" && cr.Shadow
	}
	if !brokeredSeen || !discoveredSeen {
		t.Errorf("credentials: brokered %v, discovered %v: %+v", brokeredSeen, discoveredSeen, inv.Credentials)
	}
	if len(inv.Services) != 1 || inv.Services[0].Name != "billing" || len(inv.Hosts) != 1 {
		t.Errorf("services %+v, hosts %+v", inv.Services, inv.Hosts)
	}
	shadowAgents, err := c.Inventory(ctx, client.InventoryQuery{Kind: "agent", Shadow: "true"})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, it := range shadowAgents.Discovered {
		if it.Kind != "agent" || !it.Shadow || !it.Live {
			t.Errorf("--kind agent --shadow listed %+v", it)
		}
		var p apitypes.DiscoveredProcess
		if err := json.Unmarshal(it.Data, &p); err != nil {
			t.Fatalf("inventory item data: %v", err)
		}
		found = found || p.PID == agent
	}
	if !found || len(shadowAgents.Identities) != 0 || len(shadowAgents.Credentials) != 0 {
		t.Errorf("--kind agent --shadow: %+v", shadowAgents)
	}
	if _, err := c.Inventory(ctx, client.InventoryQuery{Kind: "bogus"}); err == nil {
		t.Error("an unknown kind was accepted")
	}

	// The audit log records the discovery, with fingerprints only.
	var events []apitypes.AuditSearchResult
	for typ, least := range map[string]int{"discovery.agent_found": 3, "discovery.credential_found": 3, "discovery.shadow_access": 5} {
		res, err := c.AuditSearch(ctx, apitypes.AuditQuery{Type: typ})
		if err != nil {
			t.Fatalf("search audit: %v", err)
		}
		if len(res.Events) < least {
			t.Errorf("%d %s events, want at least %d", len(res.Events), typ, least)
		}
		events = append(events, res)
	}

	answers, _ := json.Marshal([]any{rep, inv, shadowAgents, events})
	in.Stop()
	var files bytes.Buffer
	filepath.WalkDir(cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			files.Write(b)
		}
		return nil
	})
	if files.Len() == 0 {
		t.Fatal("read nothing from the data directory")
	}
	for i, v := range secretValues {
		for what, b := range map[string][]byte{"answers": answers, "log": logs.Bytes(), "data directory": files.Bytes()} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("secret %d appears in the %s", i, what)
			}
		}
	}
}

// TestContinuousDiscovery: with discovery enabled, the server finds a new
// agent by itself on its next scan, records it in the inventory and the
// audit log, and does not report it again on the scans after.
func TestContinuousDiscovery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := servertest.Config(filepath.Join(dir, "data"))
	cfg.Discovery.Disabled = false
	cfg.Discovery.Interval = time.Second
	in := servertest.Start(t, cfg, nil)
	agent, _ := startAs(t, dir, "aider", "none", nil, []string{"HOME=" + dir})

	found := func() bool {
		inv, err := in.Client.Inventory(ctx, client.InventoryQuery{Kind: "agent"})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range inv.Discovered {
			var p apitypes.DiscoveredProcess
			json.Unmarshal(it.Data, &p)
			if p.PID == agent && it.Name == "aider" && it.Shadow && it.Live {
				return true
			}
		}
		return false
	}
	// No speed is asserted: the limit only ends a test that would
	// otherwise hang.
	deadline := time.Now().Add(2 * time.Minute)
	for !found() {
		if time.Now().After(deadline) {
			t.Fatal("the continuous scans never recorded the agent")
		}
		time.Sleep(200 * time.Millisecond)
	}
	count := func() int {
		res, err := in.Client.AuditSearch(ctx, apitypes.AuditQuery{Type: "discovery.agent_found"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range res.Events {
			if e.Details["pid"] == strconv.Itoa(agent) {
				n++
			}
		}
		return n
	}
	// The scan records the inventory before it emits its events: wait
	// for the event too.
	for count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent is in the inventory, but no discovery.agent_found event was recorded for it")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d discovery.agent_found events for the agent, want 1", n)
	}
	// Wait for two more scans (the host's last scan time moves), then the
	// agent must still have been reported once.
	hostScan := func() time.Time {
		inv, err := in.Client.Inventory(ctx, client.InventoryQuery{Kind: "host"})
		if err != nil || len(inv.Hosts) != 1 {
			t.Fatalf("hosts: %+v, %v", inv.Hosts, err)
		}
		return inv.Hosts[0].LastSeen
	}
	first := hostScan()
	for scans := 0; scans < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the continuous scans stopped")
		}
		time.Sleep(200 * time.Millisecond)
		if s := hostScan(); s.After(first) {
			first, scans = s, scans+1
		}
	}
	if n := count(); n != 1 {
		t.Errorf("%d discovery.agent_found events for the agent after more scans, want 1", n)
	}
}
