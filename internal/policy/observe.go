package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/internal/resource"
)

// Observe mode.
//
// A policy with `mode: observe` is compiled but left out of the set that
// decides. A snapshot holding observed policies also holds a second,
// observed set: the enforcing policies, minus those an observed policy
// replaces (spec.replaces), plus the observed policies. An [Engine]
// decides every request with the enforcing set, as always, and then with
// the observed set; when the two differ, the decision carries an
// [Observation] (would_deny, would_hold, would_allow) that the enforcement
// point records. The observed decision never changes the effect: observe
// mode cannot allow what the enforcing set denies, nor deny what it
// allows.

// ObserveEffect says how the observed set would have decided differently.
type ObserveEffect string

// Observation effects.
const (
	// WouldDeny: the enforcing set allowed (or held for approval), the
	// observed set would deny.
	WouldDeny ObserveEffect = "would_deny"
	// WouldHold: the enforcing set allowed, the observed set would hold
	// the call for approval.
	WouldHold ObserveEffect = "would_hold"
	// WouldAllow: the enforcing set denied, the observed set would allow
	// (or hold for approval).
	WouldAllow ObserveEffect = "would_allow"
)

// Observation is the decision the observed policies would have made, when
// it differs from the enforcing decision.
type Observation struct {
	Effect ObserveEffect `json:"effect"`
	// Observing is "name@version" of the observed policy the difference
	// is counted for: the observed policy that decided, or the one
	// replacing the enforcing policy that decided, or the first observed
	// policy whose subjects cover the caller.
	Observing string `json:"observing,omitempty"`
	// Policy and Rule decided in the observed set (empty for its default
	// deny); Reasons are its reasons.
	Policy  string   `json:"policy,omitempty"`
	Rule    string   `json:"rule,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// ObserveStats counts what an [Engine] observed for one observed policy
// version since Since (when the engine first installed that version).
type ObserveStats struct {
	Policy   string
	Version  int64
	Replaces []string
	Since    time.Time
	// Decisions is the number of decisions whose caller (or on-behalf-of
	// user) the policy's subjects cover.
	Decisions                        int64
	WouldDeny, WouldHold, WouldAllow int64
}

// observeCounter is the live form of ObserveStats.
type observeCounter struct {
	since                                       time.Time
	decisions, wouldDeny, wouldHold, wouldAllow atomic.Int64
}

func (c *observeCounter) add(e ObserveEffect) {
	switch e {
	case WouldDeny:
		c.wouldDeny.Add(1)
	case WouldHold:
		c.wouldHold.Add(1)
	case WouldAllow:
		c.wouldAllow.Add(1)
	}
}

// mode compiles spec.mode and spec.replaces.
func (c *compiler) mode(pol *cpolicy, spec *Spec) {
	switch spec.Mode {
	case "", ModeEnforce:
	case ModeObserve:
		pol.observe = true
	default:
		c.errorf(p("spec", "mode"), "%q is not a mode; enforce (the default) or observe", spec.Mode)
	}
	if len(spec.Replaces) > 0 && !pol.observe {
		c.errorf(p("spec", "replaces"), "only a policy in observe mode replaces others; add mode: observe, or remove replaces")
		return
	}
	for i, r := range spec.Replaces {
		switch {
		case !resource.ValidName(r):
			c.errorf(p("spec", "replaces", i), "%q is not a policy name", r)
		case r == pol.name:
			c.errorf(p("spec", "replaces", i), "a policy cannot replace itself")
		case slices.Contains(pol.replaces, r):
			c.warnf(p("spec", "replaces", i), "%q is listed twice", r)
		default:
			pol.replaces = append(pol.replaces, r)
		}
	}
}

// observedSet builds the observed set of s from the enforcing inputs and
// the observed policies (already compiled). Enforcing policies are
// compiled again, because a compiled rule belongs to one snapshot.
func (s *Snapshot) observedSet(enforcing []Input, observed []*cpolicy) error {
	byName := map[string]bool{}
	for _, in := range enforcing {
		byName[in.Name()] = true
	}
	replacedBy := map[string]*cpolicy{}
	for _, o := range observed {
		for i, r := range o.replaces {
			switch {
			case replacedBy[r] != nil:
				s.warnings = append(s.warnings, Warning{File: o.file, Line: o.line, Field: fieldPath("spec.replaces", i),
					Msg: "policy " + r + " is also replaced by " + replacedBy[r].ref + "; differences are counted for that one"})
				continue
			case !byName[r]:
				isObserved := slices.ContainsFunc(observed, func(x *cpolicy) bool { return x.name == r })
				msg := "no enforcing policy " + r + " exists; nothing is replaced"
				if isObserved {
					msg = "policy " + r + " is itself in observe mode; nothing is replaced"
				}
				s.warnings = append(s.warnings, Warning{File: o.file, Line: o.line, Field: fieldPath("spec.replaces", i), Msg: msg})
			}
			replacedBy[r] = o
		}
	}
	pols := make([]*cpolicy, 0, len(enforcing)+len(observed))
	for _, in := range enforcing {
		if replacedBy[in.Name()] != nil {
			continue
		}
		p, _, err := in.compile()
		if err != nil {
			return err // it compiled a moment ago; only a bug gets here
		}
		pols = append(pols, p)
	}
	pols = append(pols, observed...)
	o := &Snapshot{policies: pols}
	o.index()
	s.observed, s.replacedBy = o, replacedBy
	s.observing = slices.Clone(observed)
	slices.SortFunc(s.observing, func(a, b *cpolicy) int { return strings.Compare(a.name, b.name) })
	return nil
}

func fieldPath(f string, i int) string { return f + "[" + strconv.Itoa(i) + "]" }

// Observing reports whether s holds policies in observe mode.
func (s *Snapshot) Observing() bool { return len(s.observing) > 0 }

// AsPromoted returns the set that would decide if every observed policy
// of s were promoted: the enforcing policies, minus those replaced, plus
// the observed ones. Without observed policies it is s.
func (s *Snapshot) AsPromoted() *Snapshot {
	if s.observed == nil {
		return s
	}
	return s.observed
}

// covers reports whether p's subjects name the caller or the user on
// whose behalf its task acts.
func (p *cpolicy) covers(req *Request, td, path string) bool {
	for _, sp := range p.subjects {
		switch {
		case sp.matchID(td, path), sp.matchLabels(req.Subject.Labels):
			return true
		case req.Task.OnBehalfOf != "" && sp.matchUser(req.Task.OnBehalfOf, req.Task.Groups):
			return true
		}
	}
	return false
}

// observedEffect compares the enforcing effect with the observed one.
func observedEffect(enforcing, observed Effect) ObserveEffect {
	switch {
	case enforcing == Allow && observed == Deny, enforcing == ApprovalRequired && observed == Deny:
		return WouldDeny
	case enforcing == Allow && observed == ApprovalRequired:
		return WouldHold
	case enforcing == Deny && observed != Deny:
		return WouldAllow
	}
	return ""
}

// observe decides req with the observed set of snap (charging its own rate
// windows), counts the decision for the observed policies that cover the
// caller, and returns the difference from d, the enforcing decision.
func (e *Engine) observe(snap *Snapshot, req *Request, now time.Time, d Decision) *Observation {
	od := e.charge(snap.observed.decide(req, now, e.node), now, e.olimiter)
	var covering *cpolicy
	if td, path, ok := splitID(req.Subject.SpiffeID); ok {
		for _, p := range snap.observing {
			if p.covers(req, td, path) {
				if covering == nil {
					covering = p
				}
				if c := e.counter(p.ref); c != nil {
					c.decisions.Add(1)
				}
			}
		}
	}
	eff := observedEffect(d.Effect, od.Effect)
	if eff == "" {
		return nil
	}
	o := &Observation{Effect: eff, Policy: od.Policy, Rule: od.Rule, Reasons: od.Reasons}
	switch {
	case snap.observedRef(od.Policy) != nil:
		o.Observing = snap.observedRef(od.Policy).ref
	case snap.replacedBy[refName(d.Policy)] != nil:
		o.Observing = snap.replacedBy[refName(d.Policy)].ref
	case covering != nil:
		o.Observing = covering.ref
	}
	if c := e.counter(o.Observing); c != nil {
		c.add(eff)
	}
	return o
}

// observedRef returns the observed policy whose ref is ref, or nil.
func (s *Snapshot) observedRef(ref string) *cpolicy {
	for _, p := range s.observing {
		if p.ref == ref {
			return p
		}
	}
	return nil
}

// refName is the name of "name@version".
func refName(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		return ref[:i]
	}
	return ref
}

func (e *Engine) counter(ref string) *observeCounter {
	if ref == "" {
		return nil
	}
	if c, ok := e.counters.Load(ref); ok {
		return c.(*observeCounter)
	}
	return nil
}

// track starts counting for the observed policies of s (keeping the
// counts of versions already installed) and forgets those s no longer
// holds.
func (e *Engine) track(s *Snapshot) {
	keep := map[string]bool{}
	now := e.now()
	for _, p := range s.observing {
		keep[p.ref] = true
		e.counters.LoadOrStore(p.ref, &observeCounter{since: now})
	}
	e.counters.Range(func(k, _ any) bool {
		if !keep[k.(string)] {
			e.counters.Delete(k)
		}
		return true
	})
}

// Observing returns what the engine observed for each observed policy of
// its current snapshot, by name.
func (e *Engine) Observing() []ObserveStats {
	snap := e.snap.Load()
	out := make([]ObserveStats, 0, len(snap.observing))
	for _, p := range snap.observing {
		st := ObserveStats{Policy: p.name, Version: p.version, Replaces: slices.Clone(p.replaces)}
		if c := e.counter(p.ref); c != nil {
			st.Since = c.since
			st.Decisions, st.WouldDeny = c.decisions.Load(), c.wouldDeny.Load()
			st.WouldHold, st.WouldAllow = c.wouldHold.Load(), c.wouldAllow.Load()
		}
		out = append(out, st)
	}
	return out
}

// SpecDigest is the digest of a stored spec (the JSON [EncodeSpec]
// returns): "sha256:" and its hex sha256. `writ policy promote
// --expect-digest` compares it, so that exactly the version reviewed is
// promoted.
func SpecDigest(spec []byte) string {
	sum := sha256.Sum256(spec)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DecodeStored decodes a stored spec as strictly as CompileStored does.
func DecodeStored(spec []byte) (*Spec, error) { return decodeStoredSpec(spec) }
