package discover

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/audit"
)

// TestWatcherDiff: the first step reports the agent and its credential,
// the second reports nothing new, and a new agent process is reported
// when it appears. No event holds the secret.
func TestWatcherDiff(t *testing.T) {
	dir := t.TempDir()
	key := "sk-" + alnum(48, mixed)
	python := copyExe(t, dir, "bin/python3")
	first := start(t, python, []string{"python3", filepath.Join(dir, "a.py")}, []string{"HOME=" + dir, "ANTHROPIC_API_KEY=" + key})

	s, err := New(Config{Detector: newDetector(t), Home: func(int) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	var events []audit.Event
	var recorded int
	w, err := NewWatcher(WatcherConfig{Scanner: s,
		Emitter: audit.EmitterFunc(func(_ context.Context, e audit.Event) error { events = append(events, e); return nil }),
		Record:  func(context.Context, *Report) error { recorded++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	count := func(typ audit.Type, pid string) int {
		n := 0
		for _, e := range events {
			if e.Type == typ && (pid == "" || e.Details["pid"] == pid) {
				n++
			}
		}
		return n
	}
	if _, err := w.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if count(audit.DiscoveryAgentFound, itoa(first)) != 1 || count(audit.DiscoveryShadowAccess, itoa(first)) < 2 {
		t.Fatalf("first scan's events: %+v", events)
	}
	var cred bool
	for _, e := range events {
		if e.Type == audit.DiscoveryCredentialFound && e.Details["name"] == "ANTHROPIC_API_KEY" {
			cred = true
		}
	}
	if !cred {
		t.Errorf("no discovery.credential_found for ANTHROPIC_API_KEY")
	}
	mark := len(events)
	if _, err := w.Step(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range events[mark:] {
		if e.Details["pid"] == itoa(first) {
			t.Errorf("second scan reported the first agent again: %+v", e)
		}
	}
	second := start(t, python, []string{"python3", filepath.Join(dir, "b.py")}, []string{"HOME=" + dir, "ANTHROPIC_API_KEY=" + key})
	mark = len(events)
	if _, err := w.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if count(audit.DiscoveryAgentFound, itoa(second)) != 1 {
		t.Errorf("new agent not reported: %+v", events[mark:])
	}
	if recorded != 3 {
		t.Errorf("Record called %d times, want 3", recorded)
	}
	b, _ := json.Marshal(events)
	if strings.Contains(string(b), key) {
		t.Error("an event holds the secret value")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestInventoryItems(t *testing.T) {
	rep := &Report{Host: "h", Processes: []Process{
		{PID: 1, Kind: KindAgent, Name: "claude", StartTicks: 5},
		{PID: 2, Kind: KindProcess, Exe: "/usr/bin/bash"},
		{PID: 3, Kind: KindProcess, Exe: "/usr/bin/curl", Connections: []Connection{{Service: "billing"}}},
	}, Credentials: []Credential{{ID: "cred_a", Name: "OPENAI_API_KEY", Source: "env"}},
		MCPConfigs: []MCPDeclared{{Server: "gh", Path: "/h/.cursor/mcp.json", Credentials: []string{"cred_b"}}},
		Shadows:    []Shadow{{Kind: ShadowUnidentified, PID: 1}, {Kind: ShadowStaticCredential, PID: 1, Credential: "cred_a"}}}
	items := InventoryItems(rep)
	var got []string
	for _, it := range items {
		got = append(got, it.Kind+":"+it.Name+":"+strconv.FormatBool(it.Shadow))
	}
	want := []string{"host:h:false", "agent:claude:true", "process:curl:false", "credential:OPENAI_API_KEY:true", "mcp_config:gh:true"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("InventoryItems = %q, want %q", got, want)
	}
}
