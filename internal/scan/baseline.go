package scan

import (
	"encoding/json"
	"fmt"
)

// Baseline is the set of findings an earlier scan reported (its JSON
// output). A finding is in the baseline when one with the same rule and
// fingerprint is: moving a secret to another line or file keeps it old,
// and a new secret is new wherever it is.
type Baseline struct {
	known map[string]bool
}

// ParseBaseline reads a report written by `writ scan --output json`.
func ParseBaseline(name string, src []byte) (*Baseline, error) {
	var r Report
	if err := json.Unmarshal(src, &r); err != nil {
		return nil, fmt.Errorf("parse baseline %s: %w (use the output of writ scan --output json)", name, err)
	}
	b := &Baseline{known: map[string]bool{}}
	for i, f := range r.Findings {
		if f.RuleID == "" || f.Fingerprint == "" {
			return nil, fmt.Errorf("parse baseline %s: finding %d has no rule_id or fingerprint", name, i)
		}
		b.known[f.RuleID+"\x00"+f.Fingerprint] = true
	}
	return b, nil
}

// Mark sets New on each finding the baseline does not hold and returns the
// number of new findings.
func (b *Baseline) Mark(fs []Finding) int {
	n := 0
	for i := range fs {
		if !b.known[fs[i].RuleID+"\x00"+fs[i].Fingerprint] {
			fs[i].New = true
			n++
		}
	}
	return n
}
