package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/policy")

const examples = "../../examples/policy"

// TestPolicyCommands runs `writ policy ...` in process and compares the
// output with golden files (go test -update rewrites them).
func TestPolicyCommands(t *testing.T) {
	td := filepath.Join("testdata", "policy")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		golden string // compared with stdout when set
		stderr string // substring of stderr when set
		stdout string // substring of stdout when set
	}{
		{name: "validate examples", args: []string{"policy", "validate", examples}, stdout: "ok: 2 policies (11 rules), 1 test document, 0 warnings"},
		{name: "validate errors", args: []string{"policy", "validate", filepath.Join(td, "bad-policy.yaml")}, code: 1,
			golden: "validate-errors"},
		{name: "validate warnings", args: []string{"policy", "validate", filepath.Join(td, "warn-policy.yaml")},
			stderr: `warning: testdata/policy/warn-policy.yaml:7:7: spec.rules[0]: rule "shadowed" can never apply: deny rule "no-finance" (line 10)`,
			stdout: "ok: 1 policy (2 rules), 0 test documents, 1 warning"},
		{name: "validate json", args: []string{"policy", "validate", "-o", "json", filepath.Join(td, "bad-policy.yaml")}, code: 1,
			stdout: `"valid": false`},
		{name: "validate missing file", args: []string{"policy", "validate", filepath.Join(td, "nope.yaml")}, code: 1, stderr: "nope.yaml: no such file"},
		{name: "test examples", args: []string{"policy", "test", examples}, stdout: "PASS: 24 cases"},
		{name: "test verbose", args: []string{"policy", "test", "-v", examples}, stdout: "--- PASS: email-drafter/reads a message (../../examples/policy/email-drafter-test.yaml:"},
		{name: "test failures", args: []string{"policy", "test", filepath.Join(examples, "email-drafter.yaml"), filepath.Join(td, "failing-test.yaml")}, code: 1,
			golden: "test-failures"},
		{name: "test without tests", args: []string{"policy", "test", filepath.Join(examples, "email-drafter.yaml")}, code: 1, stderr: "no PolicyTest documents"},
		{name: "eval", args: []string{"policy", "eval", "-f", examples, "--input", filepath.Join(td, "send-external.json")}, golden: "eval-send-external"},
		{name: "eval bad request", args: []string{"policy", "eval", "-f", examples, "--input", filepath.Join(td, "bad-policy.yaml")}, code: 1, stderr: "bad-policy.yaml:1:1: invalid character 'a'"},
		{name: "eval needs input", args: []string{"policy", "eval", "-f", examples}, code: 1, stderr: "--input REQUEST.json is required"},
		{name: "explain approval", args: []string{"policy", "explain", "-f", examples, "--input", filepath.Join(td, "send-external.json")}, golden: "explain-send-external"},
		{name: "explain deny", args: []string{"policy", "explain", "-f", examples, "--input", filepath.Join(td, "finance-http.json")}, golden: "explain-finance-http"},
		{name: "explain flow", args: []string{"policy", "explain", "-f", examples, "--input", filepath.Join(td, "toxic-flow.json")}, golden: "explain-toxic-flow"},
		{name: "explain delegation", args: []string{"policy", "explain", "-f", examples, "--input", filepath.Join(td, "user-denied.json")}, golden: "explain-user-denied"},
		{name: "explain json", args: []string{"policy", "explain", "-o", "json", "-f", examples, "--input", filepath.Join(td, "send-external.json")}, stdout: `"outcome": "condition-false"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			if tc.stdout != "" && !strings.Contains(stdout.String(), tc.stdout) {
				t.Fatalf("stdout does not contain %q:\n%s", tc.stdout, stdout.String())
			}
			if tc.stderr != "" && !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("stderr does not contain %q:\n%s", tc.stderr, stderr.String())
			}
			if tc.golden == "" {
				return
			}
			got := stdout.String()
			if tc.code != 0 {
				got += "--- stderr\n" + stderr.String()
			}
			path := filepath.Join(td, tc.golden+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Fatalf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

func TestPolicyEvalStdin(t *testing.T) {
	req, err := os.ReadFile(filepath.Join("testdata", "policy", "finance-http.json"))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"policy", "eval", "-f", examples, "--input", "-"}, bytes.NewReader(req), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"rule": "never-finance-share"`) {
		t.Fatalf("stdout = %s", stdout.String())
	}
}
