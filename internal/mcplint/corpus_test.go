package mcplint

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// heldOut reports whether a tool belongs to the held-out set: a
// deterministic 30% of tool names, chosen by hash before any rule was
// tuned. Rules are tuned on the other 70% only.
func heldOut(name string) bool {
	h := sha256.Sum256([]byte(name))
	return h[0] < 77
}

type corpusTool struct {
	file string
	tool Tool
}

func loadCorpus(t testing.TB, dir string) []corpusTool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata/%s: %v", dir, err)
	}
	var out []corpusTool
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		tools, err := Parse(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tl := range tools {
			out = append(out, corpusTool{filepath.Base(f), tl})
		}
	}
	return out
}

// corpusStats counts flagged tools (a high finding) of a corpus split.
type corpusStats struct {
	total, flagged int
	flaggedNames   []string
	missedNames    []string
}

func evaluate(t testing.TB, l *Linter, tools []corpusTool, held bool) corpusStats {
	var s corpusStats
	for _, ct := range tools {
		if heldOut(ct.tool.Name) != held {
			continue
		}
		s.total++
		high := false
		for _, f := range l.LintTool(&ct.tool) {
			if f.Severity == High {
				high = true
				break
			}
		}
		name := ct.file + ":" + ct.tool.Name
		if high && !held && os.Getenv("MCPLINT_TUNING") == "2" {
			for _, f := range l.LintTool(&ct.tool) {
				if f.Severity == High {
					t.Logf("  %s:%s %s %s %q", ct.file, ct.tool.Name, f.RuleID, f.Field, f.Evidence)
				}
			}
		}
		if high {
			s.flagged++
			s.flaggedNames = append(s.flaggedNames, name)
		} else {
			s.missedNames = append(s.missedNames, name)
		}
	}
	return s
}

// TestCorpusPrecisionRecall lints the benign corpus (real tool descriptors)
// and the poisoned one, prints precision, recall and the benign
// false-positive rate on the tuning and held-out sets, and fails if on the
// held-out set recall is under 90% or the false-positive rate over 5%.
// With MCPLINT_TUNING=1 it also lists the tuning set's misses and false
// positives (never the held-out set's).
func TestCorpusPrecisionRecall(t *testing.T) {
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	benign := loadCorpus(t, "benign")
	poisoned := loadCorpus(t, "poisoned")
	if len(benign) < 150 || len(poisoned) < 80 {
		t.Fatalf("corpora of %d benign and %d poisoned tools; want at least 150 and 80", len(benign), len(poisoned))
	}
	for _, set := range []struct {
		name string
		held bool
	}{{"tuning", false}, {"held-out", true}} {
		b := evaluate(t, l, benign, set.held)
		p := evaluate(t, l, poisoned, set.held)
		recall := float64(p.flagged) / float64(p.total)
		fpr := float64(b.flagged) / float64(b.total)
		precision := 1.0
		if p.flagged+b.flagged > 0 {
			precision = float64(p.flagged) / float64(p.flagged+b.flagged)
		}
		t.Logf("%-8s poisoned %d/%d flagged (recall %.1f%%), benign %d/%d flagged (false positives %.1f%%), precision %.1f%%",
			set.name, p.flagged, p.total, 100*recall, b.flagged, b.total, 100*fpr, 100*precision)
		if !set.held && os.Getenv("MCPLINT_TUNING") != "" {
			t.Logf("tuning misses: %s", strings.Join(p.missedNames, ", "))
			t.Logf("tuning false positives: %s", strings.Join(b.flaggedNames, ", "))
		}
		if set.held {
			if recall < 0.90 {
				t.Errorf("held-out recall %.1f%% < 90%%", 100*recall)
			}
			if fpr > 0.05 {
				t.Errorf("held-out false-positive rate %.1f%% > 5%%", 100*fpr)
			}
		}
	}
}

// TestCorpusFamilies checks that each file of the poisoned corpus (one per
// attack family) is found by its own family of rules in most of its tools,
// so that recall does not rest on one catch-all rule.
func TestCorpusFamilies(t *testing.T) {
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"hidden-instructions.json":  FamilyInstructions,
		"shadowing.json":            FamilyShadowing,
		"invisible-characters.json": FamilyInvisible,
		"exfiltration.json":         FamilyExfiltration,
		"secrets.json":              FamilySecret,
		"schema.json":               FamilySchema,
	}
	byFile := map[string][2]int{}
	for _, ct := range loadCorpus(t, "poisoned") {
		fam, ok := want[ct.file]
		if !ok {
			continue
		}
		n := byFile[ct.file]
		n[0]++
		for _, f := range l.LintTool(&ct.tool) {
			if f.Family == fam && f.Severity == High {
				n[1]++
				break
			}
		}
		byFile[ct.file] = n
	}
	files := sortedKeys(byFile)
	sort.Strings(files)
	for _, f := range files {
		n := byFile[f]
		t.Logf("%-26s %d/%d found by %s", f, n[1], n[0], want[f])
		if float64(n[1]) < 0.75*float64(n[0]) {
			t.Errorf("%s: only %d of %d tools found by the %s rules", f, n[1], n[0], want[f])
		}
	}
}
