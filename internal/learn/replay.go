package learn

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/task"
)

// Change categories of a [Replay] report.
const (
	NewlyDenied      = apitypes.ReplayNewlyDenied
	NewlyAllowed     = apitypes.ReplayNewlyAllowed
	ApprovalRequired = apitypes.ReplayApprovalRequired
	BudgetExceeded   = apitypes.ReplayBudgetExceeded
)

// The report types are the wire types: `writ policy replay -o json` and
// the server's replay before a promotion print the same document.
type (
	// Example is one recorded decision that would change.
	Example = apitypes.ReplayExample
	// Change counts the records of one identity whose decision changes
	// the same way under the same candidate rule.
	Change = apitypes.ReplayChange
	// ReplayReport is what a candidate policy set would have changed.
	ReplayReport = apitypes.ReplayReport
)

// Replayer re-decides recorded decisions with a candidate snapshot, one
// at a time ([Replayer.Add] for accesses; [Replay] also passes token
// and task events), keeping counts and at most Examples examples per
// change. Rate limits are charged at each record's time in windows of
// their own, so a limit the recorded traffic exceeds shows as newly
// denied.
//
// Token exchanges (token.minted, and token.denied when policy decided:
// details policy_effect) are decided again as the issuer asks: the
// audience, the scopes decided, the caller's labels and the task's
// purpose and calls at the time. Task openings (task.opened) are decided
// again as the task service asks ([task.DecideOpen]: the purpose, then
// every audience with the task's scopes); when the candidate gives a
// task a budget smaller than the calls it made (task.closed, details
// calls), the task is reported as budget_newly_exceeded.
type Replayer struct {
	req      policy.Request // reused: one access at a time
	eng      *policy.Engine
	examples int
	rep      ReplayReport
	changes  map[changeKey]*Change
	// tasks are the tasks opened in the window and not yet closed, with
	// the budget the candidate gives them.
	tasks map[string]replayTask
}

type replayTask struct {
	id, purpose string
	index       int64
	time        time.Time
	budget      int64 // under the candidate; 0 for none
	policy      string
	rule        string
	recorded    int64 // the recorded budget
}

// maxReplayTasks bounds the open tasks a replay follows for budgets.
const maxReplayTasks = 1 << 20

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
	return &Replayer{eng: eng, examples: examples, changes: map[changeKey]*Change{}, tasks: map[string]replayTask{}}
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
	r.compare(was, d, a.SpiffeID, func() Example {
		kind := apitypes.ReplayHTTP
		if a.isMCP() {
			kind = apitypes.ReplayMCP
		}
		return Example{Index: a.Index, Time: stamp(a.Time), Kind: kind, Service: a.Service, Method: a.Method, Path: a.Path,
			Tool: a.Tool, Resource: a.Resource, Prompt: a.Prompt, WasRule: ruleRef(a.Policy, a.Rule)}
	})
}

// compare counts the change from was to d, if any; example describes the
// record (Was, Now and Reason are filled in).
func (r *Replayer) compare(was policy.Effect, d policy.Decision, spiffeID string, example func() Example) {
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
	if c := r.change(cat, spiffeID, d.Policy, d.Rule); len(c.Examples) < r.examples {
		e := example()
		e.Was, e.Now, e.Reason = string(was), string(d.Effect), strings.Join(d.Reasons, "; ")
		c.Examples = append(c.Examples, e)
	}
}

// change counts one more record in the change of (cat, id, policy, rule).
func (r *Replayer) change(cat, id, pol, rule string) *Change {
	k := changeKey{cat, id, pol, rule}
	c := r.changes[k]
	if c == nil {
		c = &Change{Category: cat, SpiffeID: id, Policy: pol, Rule: rule, Examples: []Example{}}
		r.changes[k] = c
	}
	c.Count++
	return c
}

func ruleRef(pol, rule string) string {
	if pol != "" {
		return pol + "/" + rule
	}
	return rule
}

// addEvent re-decides the token exchange or task event ev (index idx);
// other events are ignored.
func (r *Replayer) addEvent(ctx context.Context, idx int64, ev *event) {
	switch ev.Type {
	case audit.TokenMinted, audit.TokenDenied:
		r.addToken(ctx, idx, ev)
	case audit.TaskOpened:
		r.addTask(ctx, idx, ev)
	case audit.TaskClosed:
		r.closeTask(idx, ev)
	}
}

func subjectLabels(s string) map[string]string {
	if s == "" {
		return nil
	}
	return decodeLabels(s)
}

func (r *Replayer) addToken(ctx context.Context, idx int64, ev *event) {
	was := policy.Allow
	if ev.Type == audit.TokenDenied {
		was = policy.Effect(ev.D.PolicyEffect)
	}
	if ev.SpiffeID == "" || ev.Target == "" || was == "" {
		r.rep.Skipped++ // refused before policy decided (or recorded before #16)
		return
	}
	r.rep.Tokens++
	purpose := ev.D.TaskPurpose
	if purpose == "" {
		purpose = r.tasks[ev.Task].purpose // events recorded before #16
	}
	var calls int64
	if n, err := strconv.ParseInt(ev.D.TaskCalls, 10, 64); err == nil {
		calls = n
	}
	scopes := strings.Fields(ev.D.Scope)
	r.req = policy.Request{
		Kind:     policy.KindToken,
		Subject:  policy.Subject{SpiffeID: ev.SpiffeID, Labels: subjectLabels(ev.D.SubjectLabels)},
		Instance: ev.Instance,
		Task:     policy.Task{ID: ev.Task, Purpose: purpose, OnBehalfOf: ev.OnBehalfOf, Calls: calls},
		Token:    policy.TokenRequest{Audience: ev.Target, Scopes: scopes},
		Now:      ev.Time,
	}
	d := r.eng.Decide(ctx, &r.req)
	r.compare(was, d, ev.SpiffeID, func() Example {
		return Example{Index: idx, Time: stamp(ev.Time), Kind: apitypes.ReplayToken, Audience: ev.Target, Scopes: ev.D.Scope,
			Task: ev.Task, Purpose: purpose, WasRule: ruleRef(ev.Policy, ev.Rule)}
	})
}

func (r *Replayer) addTask(ctx context.Context, idx int64, ev *event) {
	if ev.D.Purpose == "" {
		return // an approval opening a pending task: decided when it was asked for
	}
	was := policy.Effect(ev.Decision)
	if ev.SpiffeID == "" || (was != policy.Allow && was != policy.Deny && was != policy.ApprovalRequired) {
		r.rep.Skipped++
		return
	}
	r.rep.Tasks++
	base := policy.Request{
		Subject:  policy.Subject{SpiffeID: ev.SpiffeID, Labels: subjectLabels(ev.D.SubjectLabels)},
		Instance: ev.Instance,
		Task:     policy.Task{ID: ev.Task, Purpose: ev.D.Purpose, OnBehalfOf: ev.OnBehalfOf},
		Now:      ev.Time,
	}
	d := task.DecideOpen(ctx, r.eng, base, strings.Fields(ev.Target), strings.Fields(ev.D.Scope))
	r.compare(was, d, ev.SpiffeID, func() Example {
		return Example{Index: idx, Time: stamp(ev.Time), Kind: apitypes.ReplayTask, Audience: ev.Target, Scopes: ev.D.Scope,
			Task: ev.Task, Purpose: ev.D.Purpose, WasRule: ruleRef(ev.Policy, ev.Rule)}
	})
	if d.Effect == policy.Deny || ev.Task == "" || len(r.tasks) >= maxReplayTasks {
		return
	}
	budget := int64(d.Obligations.Budget)
	if n, err := strconv.ParseInt(ev.D.BudgetRequested, 10, 64); err == nil && n > 0 && (budget == 0 || n < budget) {
		budget = n
	}
	t := replayTask{id: ev.SpiffeID, purpose: ev.D.Purpose, index: idx, time: ev.Time, budget: budget, policy: d.Policy, rule: d.Rule}
	if n, err := strconv.ParseInt(ev.D.Budget, 10, 64); err == nil {
		t.recorded = n
	}
	r.tasks[ev.Task] = t
}

func (r *Replayer) closeTask(idx int64, ev *event) {
	t, ok := r.tasks[ev.Task]
	if !ok {
		return
	}
	delete(r.tasks, ev.Task)
	calls, err := strconv.ParseInt(ev.D.Calls, 10, 64)
	if err != nil || t.budget == 0 || calls <= t.budget {
		return
	}
	if c := r.change(BudgetExceeded, t.id, t.policy, t.rule); len(c.Examples) < r.examples {
		was := "no budget"
		if t.recorded > 0 {
			was = "budget " + strconv.FormatInt(t.recorded, 10)
		}
		c.Examples = append(c.Examples, Example{Index: t.index, Time: stamp(t.time), Kind: apitypes.ReplayTask, Task: ev.Task,
			Purpose: t.purpose, Calls: calls, Budget: t.budget, Was: was, Now: "budget " + strconv.FormatInt(t.budget, 10),
			Reason: strconv.FormatInt(calls-t.budget, 10) + " calls beyond the budget would be refused (closed at #" + strconv.FormatInt(idx, 10) + ")"})
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
	order := map[string]int{NewlyDenied: 0, ApprovalRequired: 1, BudgetExceeded: 2, NewlyAllowed: 3}
	slices.SortFunc(rep.Changes, func(a, b Change) int {
		if d := order[a.Category] - order[b.Category]; d != 0 {
			return d
		}
		return strings.Compare(a.SpiffeID+"\x00"+a.Policy+"\x00"+a.Rule, b.SpiffeID+"\x00"+b.Policy+"\x00"+b.Rule)
	})
	return rep
}

// Replay re-decides every access, token exchange and task opening of r
// that f selects with snap (f.Service selects accesses only).
func Replay(ctx context.Context, r Records, f Filter, snap *policy.Snapshot, examples int) (ReplayReport, error) {
	rp := NewReplayer(snap, examples)
	var a Access
	err := scanEvents(ctx, r, f, replayable, func(idx int64, ev *event) error {
		if isAccess(ev.Type) {
			a = accessOf(idx, ev)
			rp.Add(ctx, &a)
			return nil
		}
		rp.addEvent(ctx, idx, ev)
		return nil
	})
	return rp.Report(), err
}

func replayable(t audit.Type) bool { return learnable(t) || t == audit.TokenDenied }
