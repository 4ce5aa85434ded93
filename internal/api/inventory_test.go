package api

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/writ-dev/writ/internal/discover"
)

var fixReport = &discover.Report{Time: t0, Host: "h1", Limits: []string{"3 processes of other users could not be read fully"},
	Processes: []discover.Process{{PID: 42, PPID: 1, UID: 1000, User: "u", Exe: "/usr/bin/python3", SHA256: "ab", Start: t0, StartTicks: 7,
		Cgroup: "/c", Container: "cid", Cmdline: []string{"python3", "--token", "[REDACTED]"}, Kind: discover.KindAgent, Name: "agent.py",
		Confidence: 0.5, Evidence: []string{"environment holds OPENAI_API_KEY"}, Selectors: []string{"unix:uid:1000"}, Identity: "spiffe://writ.local/agent/a",
		Connections: []discover.Connection{{Local: netip.MustParseAddrPort("127.0.0.1:5000"), Remote: netip.MustParseAddrPort("10.0.0.1:443"),
			Route: discover.RouteDirect, Service: "api"}}, Credentials: []string{"cred_1"}}},
	Credentials: []discover.Credential{{ID: "cred_1", Kind: "secret-variable", Source: "env", Name: "OPENAI_API_KEY", Path: "/p", Line: 3,
		Fingerprint: "ff", UID: 1000, PIDs: []int{42}}},
	MCPConfigs: []discover.MCPDeclared{{Client: "cursor", Path: "/h/.cursor/mcp.json", Server: "gh", Command: "npx", Args: []string{"-y"},
		URL: "https://x", Env: []string{"GITHUB_TOKEN"}, Credentials: []string{"cred_2"}, UID: 1000}},
	Shadows: []discover.Shadow{{Kind: discover.ShadowDirectAccess, PID: 42, Process: "agent.py", Credential: "cred_1", Service: "api",
		Remote: "10.0.0.1:443", Detail: "around writ"}},
}

// TestDiscoveryReportWire pins the report's wire form and holds it equal,
// byte for byte, to the sensor's own encoding, which the inventory stores
// as each item's data.
func TestDiscoveryReportWire(t *testing.T) {
	golden(t, "discovery-report", ReportToAPI(fixReport))
	want, _ := json.Marshal(fixReport)
	got, _ := json.Marshal(ReportToAPI(fixReport))
	if !bytes.Equal(got, want) {
		t.Errorf("wire report %s\n differs from the sensor's %s", got, want)
	}
}
