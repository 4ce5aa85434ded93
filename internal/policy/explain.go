package policy

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Explanation is a decision with the trace of every rule of every policy:
// which policies apply to the caller (and the on-behalf-of user), and for
// each of their rules whether it matched and why not.
type Explanation struct {
	Request  string        `json:"request"`
	Decision Decision      `json:"decision"`
	Policies []PolicyTrace `json:"policies"`
}

// PolicyTrace is one policy in an explanation.
type PolicyTrace struct {
	Policy string `json:"policy"`
	Source string `json:"source"` // file:line
	// AppliesTo lists "agent via SUBJECT" and "user via SUBJECT"; empty
	// when no subject matches.
	AppliesTo []string    `json:"applies_to"`
	Rules     []RuleTrace `json:"rules,omitempty"`
}

// Rule outcomes in a trace.
const (
	OutcomeMatch          = "match"
	OutcomeNoTarget       = "no-target"
	OutcomeFlowNotMet     = "flow-not-met"
	OutcomeConditionFalse = "condition-false"
	OutcomeConditionError = "condition-error"
	// OutcomeNeedsTask: an allow rule with a call budget matched a call
	// made without a task, which it does not grant.
	OutcomeNeedsTask = "needs-task"
)

// RuleTrace is one rule evaluated for one principal.
type RuleTrace struct {
	Principal string `json:"principal"` // agent or user
	Rule      string `json:"rule"`
	Effect    string `json:"effect"`
	Line      int    `json:"line"`
	Outcome   string `json:"outcome"`
	Detail    string `json:"detail,omitempty"`
}

// Explain evaluates every rule of every policy for req at req.Now, without
// the index, and returns the decision with a trace. Its decision is always
// the one [Snapshot.Decide] returns.
func (s *Snapshot) Explain(req *Request) *Explanation {
	return s.explain(req, req.Now, "")
}

func (s *Snapshot) explain(req *Request, now time.Time, node string) *Explanation {
	ex := &Explanation{Request: describeFull(req)}
	canon, bad := canonicalRequest(req, new(Request), node)
	if bad == "" && canon != req {
		ex.Request = describeFull(canon)
		if sent := describe(req); sent != describe(canon) {
			ex.Request += "; as sent: " + sent
		}
		req = canon
	}
	td, path, idOK := splitID(req.Subject.SpiffeID)
	_, _, keyOK := requestKey(req)
	keyOK = keyOK && bad == ""
	act := &activation{req: req, now: now, td: td, path: path}
	var agentCands, userCands []*crule
	for _, p := range s.policies {
		pt := PolicyTrace{Policy: p.ref, Source: p.file, AppliesTo: []string{}}
		if p.line > 0 {
			pt.Source = fmt.Sprintf("%s:%d", p.file, p.line)
		}
		var agentVia, userVia string
		for _, sp := range p.subjects {
			switch {
			case agentVia == "" && idOK && (sp.matchID(td, path) || sp.matchLabels(req.Subject.Labels)):
				agentVia = sp.src
			case userVia == "" && sp.matchUser(req.Task.OnBehalfOf, req.Task.Groups):
				userVia = sp.src
			}
		}
		for _, who := range []struct{ principal, via string }{{"agent", agentVia}, {"user", userVia}} {
			if who.via == "" {
				continue
			}
			pt.AppliesTo = append(pt.AppliesTo, who.principal+" via "+who.via)
			for _, r := range p.rules {
				rt := RuleTrace{Principal: who.principal, Rule: r.name, Effect: r.effect.String(), Line: r.line}
				matched := false
				var why []string
				for i, t := range r.targets {
					if !keyOK {
						why = append(why, "the request is incomplete")
						break
					}
					ok, reason := t.check(req, false, true)
					if ok {
						matched = true
						break
					}
					if len(r.targets) > 1 {
						reason = fmt.Sprintf("target %d: %s", i+1, reason)
					}
					why = append(why, reason)
				}
				switch {
				case !matched:
					rt.Outcome, rt.Detail = OutcomeNoTarget, strings.Join(why, "; ")
				case !r.flowMet(req.Task.LabelsSeen):
					rt.Outcome = OutcomeFlowNotMet
					rt.Detail = fmt.Sprintf("the task has touched [%s]; the rule needs all of [%s] and any of [%s]",
						strings.Join(req.Task.LabelsSeen, ", "), strings.Join(r.flowAll, ", "), strings.Join(r.flowAny, ", "))
				default:
					ok, err := r.applies(act)
					switch {
					case err != nil:
						rt.Outcome = OutcomeConditionError
						rt.Detail = fmt.Sprintf("when %s: %v", oneLine(r.when.src), err)
						if r.effect != effectAllow {
							rt.Detail += " (a failing " + r.effect.String() + " condition applies: fail closed)"
						}
					case !ok:
						rt.Outcome, rt.Detail = OutcomeConditionFalse, "when "+oneLine(r.when.src)+" is false"
					case r.effect == effectAllow && r.needsTask(req):
						rt.Outcome, rt.Detail = OutcomeNeedsTask, r.needsTaskReason()
					default:
						rt.Outcome = OutcomeMatch
					}
				}
				if matched {
					if who.principal == "agent" {
						agentCands = append(agentCands, r)
					} else {
						userCands = append(userCands, r)
					}
				}
				pt.Rules = append(pt.Rules, rt)
			}
		}
		ex.Policies = append(ex.Policies, pt)
	}
	switch {
	case !idOK:
		ex.Decision = denied(fmt.Sprintf("subject %q is not a SPIFFE ID; the caller is not identified", req.Subject.SpiffeID))
	case bad != "":
		ex.Decision = denied(bad)
	case !keyOK:
		ex.Decision = denied(fmt.Sprintf("the request is incomplete (kind %q); see the request schema in docs/policy.md", req.Kind))
	default:
		var agent, user sideResult
		evalRules(agentCands, act, &agent)
		var up *sideResult
		if req.Task.OnBehalfOf != "" {
			evalRules(userCands, act, &user)
			up = &user
		}
		ex.Decision = combine(req, &agent, up)
	}
	return ex
}

func describeFull(r *Request) string {
	var b strings.Builder
	b.WriteString(describe(r))
	b.WriteString(" by ")
	if r.Subject.SpiffeID == "" {
		b.WriteString("(no subject)")
	} else {
		b.WriteString(r.Subject.SpiffeID)
	}
	var extra []string
	if r.Instance != "" {
		extra = append(extra, "instance "+r.Instance)
	}
	if r.Task.ID != "" {
		t := "task " + r.Task.ID
		if r.Task.OnBehalfOf != "" {
			t += " on behalf of " + r.Task.OnBehalfOf
		}
		extra = append(extra, t)
	}
	if len(r.Task.LabelsSeen) > 0 {
		extra = append(extra, "touched "+strings.Join(r.Task.LabelsSeen, ", "))
	}
	if len(r.TargetLabels) > 0 {
		extra = append(extra, "target labels "+strings.Join(r.TargetLabels, ", "))
	}
	if r.Source.IP != "" || r.Source.Node != "" {
		extra = append(extra, "from "+strings.TrimSpace(r.Source.IP+" "+r.Source.Node))
	}
	if len(extra) > 0 {
		b.WriteString(" (" + strings.Join(extra, "; ") + ")")
	}
	return b.String()
}

// WriteText writes the explanation for people: the decision, its
// obligations, then every policy and rule with its outcome.
func (ex *Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	d := ex.Decision
	fmt.Fprintf(&b, "request:  %s\n", ex.Request)
	fmt.Fprintf(&b, "decision: %s", d.Effect)
	if d.Rule != "" {
		fmt.Fprintf(&b, " by rule %s of policy %s (%s)", d.Rule, d.Policy, d.Principal)
	}
	b.WriteString("\n")
	for _, r := range d.Reasons {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	writeObligations(&b, d)
	for _, pt := range ex.Policies {
		fmt.Fprintf(&b, "\npolicy %s (%s): ", pt.Policy, pt.Source)
		if len(pt.AppliesTo) == 0 {
			b.WriteString("does not apply: no subject matches the caller or user\n")
			continue
		}
		fmt.Fprintf(&b, "applies to %s\n", strings.Join(pt.AppliesTo, ", "))
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, rt := range pt.Rules {
			fmt.Fprintf(tw, "  %s\t%s\t%s\tline %d\t%s", rt.Principal, rt.Effect, rt.Rule, rt.Line, rt.Outcome)
			if rt.Detail != "" {
				fmt.Fprintf(tw, ": %s", rt.Detail)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeObligations(b *strings.Builder, d Decision) {
	ob := d.Obligations
	if ob.Approval != nil {
		who := "any approver"
		if len(ob.Approval.Approvers) > 0 {
			who = strings.Join(ob.Approval.Approvers, ", ")
		}
		fmt.Fprintf(b, "  approval: %s within %v\n", who, ob.Approval.Timeout)
	}
	for _, r := range slices.Clone(ob.Rate) {
		fmt.Fprintf(b, "  rate: %d per %v per %s (%s, key %s)\n", r.Limit, r.Window, r.Per, r.Rule, r.Key)
	}
	if ob.MaxTTL > 0 {
		fmt.Fprintf(b, "  credential ttl at most %v\n", ob.MaxTTL)
	}
	if ob.Budget > 0 {
		fmt.Fprintf(b, "  budget: %d calls per task\n", ob.Budget)
	}
	if d.RetryAfter > 0 {
		fmt.Fprintf(b, "  retry after %v\n", d.RetryAfter)
	}
}

// oneLine collapses a multi-line condition for a one-line trace.
func oneLine(s string) string { return "`" + strings.Join(strings.Fields(s), " ") + "`" }
