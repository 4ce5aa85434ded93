package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSARIFValidatesWithMultitool validates writ's SARIF with the OASIS
// SARIF SDK's own validator (Sarif.Multitool validate, npm
// @microsoft/sarif-multitool-linux, installed by .ci/run): the SARIF 2.1.0
// JSON schema and the SDK's validation rules. Any error or warning fails.
func TestSARIFValidatesWithMultitool(t *testing.T) {
	tool := os.Getenv("WRIT_SARIF_MULTITOOL")
	if tool == "" {
		tool, _ = exec.LookPath("sarif-multitool")
	}
	if tool == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("WRIT_SARIF_MULTITOOL is not set and sarif-multitool is not on PATH; .ci/run installs it")
		}
		t.Skip("no SARIF Multitool (set WRIT_SARIF_MULTITOOL to npm @microsoft/sarif-multitool-linux's Sarif.Multitool)")
	}
	root := t.TempDir()
	files := map[string]string{}
	for _, c := range kindCases() {
		files[c.path] = c.body
	}
	writeFiles(t, root, files)
	fs, err := testScanner(t, nil).Dir(context.Background(), root)
	if err != nil || len(fs) == 0 {
		t.Fatalf("scan: %d findings, %v", len(fs), err)
	}
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, fs, testDetector(t).Rules()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "writ.sarif"), filepath.Join(dir, "validation.sarif")
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "validate", in, "-o", out, "--log", "ForceOverwrite")
	cmd.Env = append(os.Environ(), "DOTNET_CLI_TELEMETRY_OPTOUT=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Sarif.Multitool validate: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Runs []struct {
			Results []struct {
				RuleID  string `json:"ruleId"`
				Level   string `json:"level"`
				Message struct {
					ID        string   `json:"id"`
					Text      string   `json:"text"`
					Arguments []string `json:"arguments"`
				} `json:"message"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Runs) == 0 {
		t.Fatalf("validation log: %v\n%s", err, b)
	}
	for _, r := range v.Runs[0].Results {
		// The validator's results default to warning when no level is set.
		if r.Level == "" || r.Level == "error" || r.Level == "warning" {
			t.Errorf("%s %s: %s %s %v", r.Level, r.RuleID, r.Message.ID, r.Message.Text, r.Message.Arguments)
		}
	}
}
