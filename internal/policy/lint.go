package policy

import (
	"fmt"
	"slices"
)

// lint adds warnings for rules that can never change a decision: rules
// whose condition is constant, and allow or escalate rules that an
// unconditional deny in the same policy shadows completely. It is
// conservative: a warning is certain, silence is not a proof.
func (c *compiler) lint(pol *cpolicy) {
	idx := map[*crule]int{}
	for i, r := range pol.rules {
		idx[r] = i
	}
	ruleAt := func(r *crule, parts ...any) []any { return append(p("spec", "rules", idx[r]), parts...) }
	for _, r := range pol.rules {
		if r.when != nil && r.when.lit != nil {
			if *r.when.lit {
				c.warnf(ruleAt(r, "when"), "the condition is always true; remove it")
			} else {
				c.warnf(ruleAt(r, "when"), "rule %q never applies: its condition is always false", r.name)
			}
		}
	}
	for _, r := range pol.rules {
		if r.effect == effectDeny {
			continue
		}
		for _, d := range pol.rules {
			if d.effect != effectDeny || d.when != nil || d.flowAll != nil || d.flowAny != nil {
				continue
			}
			if coveredBy(r, d) {
				at := fmt.Sprintf("spec.rules[%d]", idx[d])
				if d.line > 0 {
					at = fmt.Sprintf("line %d", d.line)
				}
				c.warnf(ruleAt(r), "rule %q can never apply: deny rule %q (%s) matches every call it covers, and deny wins", r.name, d.name, at)
				break
			}
		}
	}
	// Two unconditional rules with the same targets and opposite effects
	// are a contradiction even when neither is written first.
	for i, a := range pol.rules {
		for _, b := range pol.rules[i+1:] {
			if a.effect == b.effect || a.when != nil || b.when != nil || !sameTargets(a, b) {
				continue
			}
			if a.effect != effectDeny && b.effect != effectDeny && (a.approval == nil) != (b.approval == nil) {
				c.warnf(ruleAt(b), "rules %q and %q cover the same calls; the one that requires approval always wins", a.name, b.name)
			}
		}
	}
}

// coveredBy reports whether every target of r is covered by a target of d.
func coveredBy(r, d *crule) bool {
	for _, rt := range r.targets {
		if !slices.ContainsFunc(d.targets, func(dt *ctarget) bool { return dt.covers(rt) }) {
			return false
		}
	}
	return len(r.targets) > 0
}

func sameTargets(a, b *crule) bool {
	return coveredBy(a, b) && coveredBy(b, a)
}

// String describes a warning position for debugging.
func (r *crule) String() string { return fmt.Sprintf("%s/%s", r.p.ref, r.name) }
