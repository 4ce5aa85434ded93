package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

func TestBaselineSuppressesOld(t *testing.T) {
	root := t.TempDir()
	old := "ghp_" + fake("base-old", alnum, 36)
	writeFiles(t, root, map[string]string{"a.env": "GH_TOKEN=" + old + "\n"})
	s := testScanner(t, nil)
	first, err := s.Dir(context.Background(), root)
	if err != nil || len(first) != 1 {
		t.Fatalf("first scan: %v, %v", first, err)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, Report{Target: root, Findings: first}); err != nil {
		t.Fatal(err)
	}
	bl, err := ParseBaseline("baseline.json", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// The old secret moves down a line and into a second file; a new one
	// arrives.
	fresh := "AKIA" + fake("base-new", upperDigits, 16)
	writeFiles(t, root, map[string]string{
		"a.env": "# moved\nGH_TOKEN=" + old + "\n",
		"b.env": "AWS_ACCESS_KEY_ID=" + fresh + "\n",
	})
	second, err := s.Dir(context.Background(), root)
	if err != nil || len(second) != 2 {
		t.Fatalf("second scan: %v, %v", second, err)
	}
	if n := bl.Mark(second); n != 1 {
		t.Fatalf("%d new findings, want 1", n)
	}
	for _, f := range second {
		if want := f.Path == "b.env"; f.New != want {
			t.Errorf("%s: new = %v, want %v", f.Path, f.New, want)
		}
	}
}

func TestParseBaselineRejects(t *testing.T) {
	for _, src := range []string{``, `{`, `[]`, `{"findings": [{"rule_id": "x"}]}`, `{"findings": "no"}`} {
		if _, err := ParseBaseline("b.json", []byte(src)); err == nil {
			t.Errorf("ParseBaseline(%q): no error", src)
		}
	}
}

// TestSARIF checks the properties SARIF 2.1.0's schema requires of what
// WriteSARIF writes: version, runs, each run's tool.driver.name, each
// result's message.text, and of the optional parts used, their required
// members (rule ids, artifact URIs, regions starting at line 1 or later).
func TestSARIF(t *testing.T) {
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
	var log map[string]any
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log["version"] != "2.1.0" {
		t.Errorf("version = %v", log["version"])
	}
	if s, _ := log["$schema"].(string); s == "" {
		t.Error("no $schema")
	}
	runs, _ := log["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("runs = %v", log["runs"])
	}
	run := runs[0].(map[string]any)
	driver := dig(t, run, "tool", "driver")
	if name, _ := driver["name"].(string); name == "" {
		t.Error("tool.driver.name empty")
	}
	ruleIDs := map[string]bool{}
	for _, r := range driver["rules"].([]any) {
		rm := r.(map[string]any)
		id, _ := rm["id"].(string)
		if id == "" {
			t.Error("rule without id")
		}
		ruleIDs[id] = true
	}
	results, _ := run["results"].([]any)
	if len(results) != len(fs) {
		t.Fatalf("%d results, want %d", len(results), len(fs))
	}
	levels := map[string]bool{"none": true, "note": true, "warning": true, "error": true}
	for i, r := range results {
		rm := r.(map[string]any)
		if text, _ := dig(t, rm, "message")["text"].(string); text == "" {
			t.Errorf("result %d: message.text empty", i)
		}
		if id, _ := rm["ruleId"].(string); !ruleIDs[id] {
			t.Errorf("result %d: ruleId %q not among the driver's rules", i, id)
		}
		if l, _ := rm["level"].(string); !levels[l] {
			t.Errorf("result %d: level %q", i, l)
		}
		locs, _ := rm["locations"].([]any)
		if len(locs) != 1 {
			t.Fatalf("result %d: locations %v", i, rm["locations"])
		}
		phys := dig(t, locs[0].(map[string]any), "physicalLocation")
		if uri, _ := dig(t, phys, "artifactLocation")["uri"].(string); uri == "" {
			t.Errorf("result %d: no artifact uri", i)
		}
		if line, _ := dig(t, phys, "region")["startLine"].(float64); line < 1 {
			t.Errorf("result %d: startLine %v", i, line)
		}
		if fp, _ := dig(t, rm, "partialFingerprints")["writSecret/v1"].(string); len(fp) != 64 {
			t.Errorf("result %d: partial fingerprint %q", i, fp)
		}
	}
}

func dig(t *testing.T, m map[string]any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("no object %q in %v", k, m)
		}
		m = next
	}
	return m
}
