package scan

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

// TestFixPlanExtracts runs each step's extraction pipeline with sh and
// checks that it yields the secret (by fingerprint), and that the printed
// plan holds no value.
func TestFixPlanExtracts(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	root := t.TempDir()
	files := map[string]string{}
	var values []string
	for _, c := range kindCases() {
		files[c.path] = c.body
		for _, w := range c.want {
			values = append(values, w.value)
		}
	}
	writeFiles(t, root, files)
	fs, err := testScanner(t, nil).Dir(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	steps := FixPlan(fs, "")
	d := testDetector(t)
	for _, st := range steps {
		if st.Extract == "" {
			t.Errorf("%s at %s:%d: no extraction", st.Finding.RuleID, st.Finding.Path, st.Finding.Line)
			continue
		}
		cmd := exec.Command("sh", "-c", st.Extract)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s: %v", st.Extract, err)
			continue
		}
		if d.Fingerprint(out) != st.Finding.Fingerprint {
			t.Errorf("%s at %s:%d: %q does not extract the value", st.Finding.RuleID, st.Finding.Path, st.Finding.Line, st.Extract)
		}
		if !strings.Contains(st.Documents, "kind: Service") || !strings.Contains(st.Documents, "kind: AccessPolicy") {
			t.Errorf("documents: %s", st.Documents)
		}
	}
	var buf bytes.Buffer
	if err := WriteFixPlan(&buf, steps); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if bytes.Contains(buf.Bytes(), []byte(v)) {
			t.Errorf("plan holds a secret value")
		}
	}
}
