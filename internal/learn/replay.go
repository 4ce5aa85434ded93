package learn

import (
	"context"
	"slices"
	"strings"

	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
)

// Change categories of a [Replay] report.
const (
	NewlyDenied      = "newly_denied"
	NewlyAllowed     = "newly_allowed"
	ApprovalRequired = "approval_newly_required"
)

// Example is one recorded access whose decision would change.
type Example struct {
	Index   int64  `json:"index"`
	Time    string `json:"time"`
	Service string `json:"service"`
	Method  string `json:"method"`
	Path    string `json:"path,omitempty"`
	// Tool, Resource or Prompt is the object of an MCP call.
	Tool     string `json:"tool,omitempty"`
	Resource string `json:"resource,omitempty"`
	Prompt   string `json:"prompt,omitempty"`
	// Was is the recorded decision and its rule; Now the candidate's.
	Was     string `json:"was"`
	WasRule string `json:"was_rule,omitempty"`
	Now     string `json:"now"`
	Reason  string `json:"reason,omitempty"`
}

// Change counts the accesses of one identity whose decision changes the
// same way under the same candidate rule.
type Change struct {
	Category string `json:"category"`
	SpiffeID string `json:"spiffe_id"`
	// Policy and Rule decide under the candidate ("" and "" for the
	// default deny).
	Policy   string    `json:"policy,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Count    int64     `json:"count"`
	Examples []Example `json:"examples"`
}

// ReplayReport is what a candidate policy set would have changed.
type ReplayReport struct {
	// Accesses is the number of recorded accesses re-decided; Skipped
	// those that name no caller or service (refused before a policy
	// could decide); Unchanged those decided the same way.
	Accesses  int64    `json:"accesses"`
	Skipped   int64    `json:"skipped"`
	Unchanged int64    `json:"unchanged"`
	Changes   []Change `json:"changes"`
}

// Changed returns the number of accesses whose decision would change.
func (r *ReplayReport) Changed() int64 {
	var n int64
	for _, c := range r.Changes {
		n += c.Count
	}
	return n
}

// Count returns the accesses in changes of category cat.
func (r *ReplayReport) Count(cat string) int64 {
	var n int64
	for _, c := range r.Changes {
		if c.Category == cat {
			n += c.Count
		}
	}
	return n
}

// Replayer re-decides accesses with a candidate snapshot, one at a time
// ([Replayer.Add]), keeping counts and at most Examples examples per
// change. Rate limits are charged at each access's recorded time in
// windows of its own, so a limit the recorded traffic exceeds shows as
// newly denied.
type Replayer struct {
	req      policy.Request // reused: one access at a time
	eng      *policy.Engine
	examples int
	rep      ReplayReport
	changes  map[changeKey]*Change
}

type changeKey struct{ cat, id, policy, rule string }

// NewReplayer returns a replayer deciding with snap, keeping up to
// examples examples per change (default 3). Policies of snap in observe
// mode decide as if promoted ([policy.Snapshot.AsPromoted]): replay shows
// what promoting them would change.
func NewReplayer(snap *policy.Snapshot, examples int) *Replayer {
	if examples <= 0 {
		examples = 3
	}
	eng := policy.NewEngine(policy.Config{Limiter: ratelimit.New()}, snap.AsPromoted())
	return &Replayer{eng: eng, examples: examples, changes: map[changeKey]*Change{}}
}

// Add re-decides a.
func (r *Replayer) Add(ctx context.Context, a *Access) {
	if !a.decidable() {
		r.rep.Skipped++
		return
	}
	r.rep.Accesses++
	a.fill(&r.req)
	d := r.eng.Decide(ctx, &r.req)
	was := policy.Effect(a.Decision)
	if a.Allowed {
		was = policy.Allow
		if a.Approval != "" {
			was = policy.ApprovalRequired
		}
	} else if was != policy.ApprovalRequired {
		was = policy.Deny
	}
	var cat string
	switch {
	case d.Effect == policy.Deny && was != policy.Deny:
		cat = NewlyDenied
	case d.Effect != policy.Deny && was == policy.Deny:
		cat = NewlyAllowed
	case d.Effect == policy.ApprovalRequired && was == policy.Allow:
		cat = ApprovalRequired
	default:
		r.rep.Unchanged++
		return
	}
	k := changeKey{cat, a.SpiffeID, d.Policy, d.Rule}
	c := r.changes[k]
	if c == nil {
		c = &Change{Category: cat, SpiffeID: a.SpiffeID, Policy: d.Policy, Rule: d.Rule, Examples: []Example{}}
		r.changes[k] = c
	}
	c.Count++
	if len(c.Examples) < r.examples {
		wasRule := a.Rule
		if a.Policy != "" {
			wasRule = a.Policy + "/" + a.Rule
		}
		c.Examples = append(c.Examples, Example{
			Index: a.Index, Time: stamp(a.Time), Service: a.Service, Method: a.Method, Path: a.Path,
			Tool: a.Tool, Resource: a.Resource, Prompt: a.Prompt,
			Was: string(was), WasRule: wasRule, Now: string(d.Effect), Reason: strings.Join(d.Reasons, "; "),
		})
	}
}

// Report returns the changes, ordered by category, identity, policy and
// rule.
func (r *Replayer) Report() ReplayReport {
	rep := r.rep
	rep.Changes = make([]Change, 0, len(r.changes))
	for _, c := range r.changes {
		rep.Changes = append(rep.Changes, *c)
	}
	order := map[string]int{NewlyDenied: 0, ApprovalRequired: 1, NewlyAllowed: 2}
	slices.SortFunc(rep.Changes, func(a, b Change) int {
		if d := order[a.Category] - order[b.Category]; d != 0 {
			return d
		}
		return strings.Compare(a.SpiffeID+"\x00"+a.Policy+"\x00"+a.Rule, b.SpiffeID+"\x00"+b.Policy+"\x00"+b.Rule)
	})
	return rep
}

// Replay re-decides every access of r that f selects with snap.
func Replay(ctx context.Context, r Records, f Filter, snap *policy.Snapshot, examples int) (ReplayReport, error) {
	rp := NewReplayer(snap, examples)
	err := Scan(ctx, r, f, func(a *Access) error {
		rp.Add(ctx, a)
		return nil
	})
	return rp.Report(), err
}
