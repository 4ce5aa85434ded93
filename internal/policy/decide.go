package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// scratch is the per-decision working memory, pooled per snapshot so that
// a decision allocates little.
type scratch struct {
	req    Request // the request in canonical form, when it was not
	act    activation
	pols   []int32
	cands  []*crule
	allows []*crule
	agent  sideResult
	user   sideResult
}

// sideResult is the outcome of one principal's rules (the agent's, or the
// on-behalf-of user's).
type sideResult struct {
	needTask *crule // first allow that matched but grants only within a task
	deny     *crule
	denyErr  error // the deny matched because its condition failed to evaluate
	allows   []*crule
	approval *crule // first matching allow-with-approval or escalate rule
	apprErr  error
}

func (r *sideResult) reset(allows []*crule) {
	*r = sideResult{allows: allows[:0]}
}

func (s *Snapshot) getScratch() *scratch {
	if sc, ok := s.pool.Get().(*scratch); ok {
		return sc
	}
	return &scratch{}
}

func (s *Snapshot) putScratch(sc *scratch) {
	sc.req = Request{}
	sc.act = activation{}
	clear(sc.cands[:cap(sc.cands)])
	clear(sc.allows[:cap(sc.allows)])
	sc.agent, sc.user = sideResult{}, sideResult{}
	s.pool.Put(sc)
}

// Decide answers req at req.Now (which must be set; an [Engine] fills it
// from its clock). It does not charge rate limits: the decision lists them
// as obligations, and an Engine with a limiter enforces them.
func (s *Snapshot) Decide(req *Request) Decision {
	return s.decide(req, req.Now, "")
}

// decide answers req at now; node is the source.node of a request that
// gives none.
func (s *Snapshot) decide(req *Request, now time.Time, node string) Decision {
	td, path, ok := splitID(req.Subject.SpiffeID)
	if !ok {
		return denied(fmt.Sprintf("subject %q is not a SPIFFE ID; the caller is not identified", req.Subject.SpiffeID))
	}
	sc := s.getScratch()
	defer s.putScratch(sc)
	req, bad := canonicalRequest(req, &sc.req, node)
	if bad != "" {
		return denied(bad)
	}
	exact, pattern, ok := requestKey(req)
	if !ok {
		return denied(fmt.Sprintf("the request is incomplete (kind %q); see the request schema in docs/policy.md", req.Kind))
	}
	sc.act = activation{req: req, now: now, td: td, path: path}

	sc.pols = s.subjects.agent(td, path, req.Subject.Labels, sc.pols[:0])
	sc.cands = s.candidates(sc.pols, req, exact, pattern, sc.cands[:0])
	sc.agent.reset(sc.allows)
	evalRules(sc.cands, &sc.act, &sc.agent)
	sc.allows = sc.agent.allows

	var user *sideResult
	if req.Task.OnBehalfOf != "" {
		sc.pols = s.subjects.user(req.Task.OnBehalfOf, req.Task.Groups, sc.pols[:0])
		sc.cands = s.candidates(sc.pols, req, exact, pattern, sc.cands[:0])
		sc.user.reset(sc.allows[len(sc.allows):])
		evalRules(sc.cands, &sc.act, &sc.user)
		user = &sc.user
	}
	return combine(req, &sc.agent, user)
}

func (s *Snapshot) candidates(pols []int32, req *Request, exact, pattern tkey, out []*crule) []*crule {
	for _, i := range pols {
		out = s.policies[i].idx.lookup(req, exact, pattern, out)
	}
	if len(out) < 2 {
		return out
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ord < out[j-1].ord; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return slices.Compact(out)
}

// evalRules applies the flow and CEL conditions of rules whose targets
// matched (in rule order) and records the outcome in res. Deny rules are
// evaluated first, since one matching deny decides.
func evalRules(cands []*crule, act *activation, res *sideResult) {
	for _, r := range cands {
		if r.effect != effectDeny {
			continue
		}
		ok, err := r.applies(act)
		if ok || err != nil { // a failing deny condition fails closed
			res.deny, res.denyErr = r, err
			return
		}
	}
	for _, r := range cands {
		if r.effect == effectDeny {
			continue
		}
		ok, err := r.applies(act)
		switch {
		case r.effect == effectEscalate && (ok || err != nil): // fails closed too
			if res.approval == nil {
				res.approval, res.apprErr = r, err
			}
		case r.effect == effectAllow && ok && r.needsTask(act.req):
			if res.needTask == nil {
				res.needTask = r
			}
		case r.effect == effectAllow && ok:
			res.allows = append(res.allows, r)
			if r.approval != nil && res.approval == nil {
				res.approval = r
			}
		}
	}
}

// needsTask reports whether r, an allow rule with a call budget, cannot
// grant req because req is an HTTP or MCP call made without a task: a
// budget counts a task's calls, and calls without a task must not escape
// it.
func (r *crule) needsTask(req *Request) bool {
	return r.budget > 0 && req.Task.ID == "" && (req.Kind == KindHTTP || req.Kind == KindMCP)
}

func (r *crule) needsTaskReason() string {
	return fmt.Sprintf("rule %q of policy %s allows this only within a task: it has a budget of %d calls per task; open a task and make the call under it",
		r.name, r.p.ref, r.budget)
}

// applies checks the rule's flow labels and condition (targets already
// matched).
func (r *crule) applies(act *activation) (bool, error) {
	if !r.flowMet(act.req.Task.LabelsSeen) {
		return false, nil
	}
	if r.when == nil {
		return true, nil
	}
	return r.when.eval(act)
}

func (r *crule) flowMet(seen []string) bool {
	for _, l := range r.flowAll {
		if !slices.Contains(seen, l) {
			return false
		}
	}
	if len(r.flowAny) > 0 && !anyIn(r.flowAny, seen) {
		return false
	}
	return true
}

// combine turns the agent's (and the user's, when the task acts on behalf
// of one) results into a decision.
func combine(req *Request, agent, user *sideResult) Decision {
	for _, side := range []struct {
		res       *sideResult
		principal string
	}{{agent, "agent"}, {user, "user"}} {
		if side.res == nil || side.res.deny == nil {
			continue
		}
		r := side.res.deny
		d := Decision{Effect: Deny, Policy: r.p.ref, Rule: r.name, Principal: side.principal, Reasons: r.reasons, Flow: r.flowSeen(req.Task.LabelsSeen)}
		if side.res.denyErr != nil {
			d.Reasons = []string{r.reasons[0], "the rule's condition could not be evaluated, so it applies (fail closed): " + side.res.denyErr.Error()}
		}
		return d
	}
	if len(agent.allows) == 0 {
		d := Decision{Effect: Deny, Principal: "agent", Reasons: []string{
			fmt.Sprintf("no rule allows %s to %s (default deny)", req.Subject.SpiffeID, describe(req))}}
		if r := agent.needTask; r != nil {
			d.Reasons = append(d.Reasons, r.needsTaskReason())
		}
		return d
	}
	if user != nil && len(user.allows) == 0 {
		return Decision{Effect: Deny, Principal: "user", Reasons: []string{
			fmt.Sprintf("no rule allows user %s, on whose behalf task %s acts, to %s (default deny: agent and user must both be allowed)",
				req.Task.OnBehalfOf, req.Task.ID, describe(req))}}
	}
	first := agent.allows[0]
	d := Decision{Effect: Allow, Policy: first.p.ref, Rule: first.name, Principal: "agent", Reasons: first.reasons}
	ob := &d.Obligations
	var budgetRule *crule
	budgetBy := "agent"
	for side, allows := range [2][]*crule{agent.allows, userAllows(user)} {
		for _, r := range allows {
			if r.rate != nil {
				o := r.rate.obligation(req)
				// Rules sharing a bucket are charged once per call.
				if !slices.ContainsFunc(ob.Rate, func(x RateObligation) bool { return x.Key == o.Key }) {
					ob.Rate = append(ob.Rate, o)
				}
			}
			if r.maxTTL > 0 && (ob.MaxTTL == 0 || Duration(r.maxTTL) < ob.MaxTTL) {
				ob.MaxTTL = Duration(r.maxTTL)
			}
			if r.budget > 0 && (ob.Budget == 0 || r.budget < ob.Budget) {
				ob.Budget, budgetRule = r.budget, r
				if side == 1 {
					budgetBy = "user"
				}
			}
		}
	}
	if user != nil {
		d.Reasons = []string{first.reasons[0], "for user " + req.Task.OnBehalfOf + ", on whose behalf the task acts: " + user.allows[0].reasons[0]}
	}
	if ob.Budget > 0 && req.Task.ID != "" && req.Task.Calls >= int64(ob.Budget) {
		return Decision{Effect: Deny, Policy: budgetRule.p.ref, Rule: budgetRule.name, Principal: budgetBy,
			Reasons:     []string{fmt.Sprintf("task %s has made %d calls; rule %q of policy %s allows %d per task", req.Task.ID, req.Task.Calls, budgetRule.name, budgetRule.p.ref, ob.Budget)},
			Obligations: Obligations{Budget: ob.Budget}}
	}
	appr, apprErr, principal := agent.approval, agent.apprErr, "agent"
	if appr == nil && user != nil {
		appr, apprErr, principal = user.approval, user.apprErr, "user"
	}
	if appr != nil {
		d.Effect, d.Policy, d.Rule, d.Principal = ApprovalRequired, appr.p.ref, appr.name, principal
		d.Reasons = appr.reasons
		if apprErr != nil {
			d.Reasons = append(d.Reasons, "the rule's condition could not be evaluated, so it applies (fail closed): "+apprErr.Error())
		}
		d.Obligations.Approval = appr.approval
		d.Flow = appr.flowSeen(req.Task.LabelsSeen)
	}
	return d
}

// flowSeen returns the labels of seen that r's flow condition names, or
// nil when r has none.
func (r *crule) flowSeen(seen []string) []string {
	if len(r.flowAll) == 0 && len(r.flowAny) == 0 {
		return nil
	}
	var out []string
	for _, l := range seen {
		if slices.Contains(r.flowAll, l) || slices.Contains(r.flowAny, l) {
			out = append(out, l)
		}
	}
	return out
}

func userAllows(u *sideResult) []*crule {
	if u == nil {
		return nil
	}
	return u.allows
}

func (c *crate) obligation(req *Request) RateObligation {
	v := ""
	switch c.per {
	case PerTask:
		v = req.Task.ID
	case PerSubject:
		v = req.Subject.SpiffeID
	}
	per := c.per
	if per == PerInstance {
		v = req.Instance
	}
	// Without a task or an instance id, count per subject so that missing
	// ids never escape the limit (a call without a task would otherwise
	// get a fresh window from each new process).
	if v == "" {
		per, v = PerSubject, req.Subject.SpiffeID
	}
	key := c.prefix + v
	if per != c.per {
		key = c.ref + "|" + per + "=" + v
	}
	return RateObligation{Key: key, Limit: c.limit.N, Window: Duration(c.limit.Window), Per: per, Rule: c.ref}
}

func denied(reason string) Decision {
	return Decision{Effect: Deny, Reasons: []string{reason}}
}

// describe says what req asks to do, for reasons.
func describe(r *Request) string {
	switch r.Kind {
	case KindHTTP:
		return fmt.Sprintf("%s %s on service %s", r.HTTP.Method, r.HTTP.Path, r.HTTP.Service)
	case KindMCP:
		switch {
		case r.MCP.Tool != "":
			return fmt.Sprintf("call tool %s on MCP server %s", r.MCP.Tool, r.MCP.Server)
		case r.MCP.Resource != "":
			return fmt.Sprintf("read resource %s on MCP server %s", r.MCP.Resource, r.MCP.Server)
		default:
			return fmt.Sprintf("get prompt %s on MCP server %s", r.MCP.Prompt, r.MCP.Server)
		}
	case KindToken:
		s := "mint a token for audience " + r.Token.Audience
		if len(r.Token.Scopes) > 0 {
			s += " with scopes " + strings.Join(r.Token.Scopes, " ")
		}
		return s
	case KindTask:
		return fmt.Sprintf("open a task for purpose %q", r.Task.Purpose)
	}
	return "make a " + string(r.Kind) + " call"
}
