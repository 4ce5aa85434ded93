package policy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/internal/ratelimit"
)

// Config configures an [Engine]. The zero value is usable.
type Config struct {
	// Now is the clock for requests without a time; default time.Now.
	Now func() time.Time
	// Limiter, when set, enforces the rate obligations of allowed and
	// approval-pending decisions: a call over a limit is denied. Every
	// enforcement point that shares an Engine (or a Limiter) shares the
	// windows. When nil, rates are only reported as obligations.
	Limiter *ratelimit.Limiter
	// Node is the name of the node the engine decides for (writ.yaml
	// node_name): the source.node of requests that give none. Empty: such
	// requests have no node.
	Node string
}

// Engine answers access questions with the current [Snapshot], which
// [Engine.Swap] replaces atomically: a decision in flight keeps the snapshot
// it started with. An Engine is safe for concurrent use.
type Engine struct {
	now     func() time.Time
	limiter *ratelimit.Limiter
	// olimiter holds the rate windows of observed decisions, apart from
	// the enforcing ones so that observing never uses up a real limit.
	olimiter *ratelimit.Limiter
	node     string
	snap     atomic.Pointer[Snapshot]
	counters sync.Map // observed policy ref -> *observeCounter
}

// NewEngine returns an engine deciding with s (nil: deny everything until
// the first Swap).
func NewEngine(cfg Config, s *Snapshot) *Engine {
	e := &Engine{now: cfg.Now, limiter: cfg.Limiter, node: cfg.Node}
	if e.now == nil {
		e.now = time.Now
	}
	if cfg.Limiter != nil {
		e.olimiter = ratelimit.New()
	}
	if s == nil {
		s = Empty()
	}
	e.track(s)
	e.snap.Store(s)
	return e
}

// Swap installs s and returns the snapshot it replaces.
func (e *Engine) Swap(s *Snapshot) *Snapshot {
	if s == nil {
		s = Empty()
	}
	e.track(s)
	return e.snap.Swap(s)
}

// Snapshot returns the current snapshot.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Decide answers req with the current snapshot and, when the engine has a
// limiter, charges the decision's rate limits. It never fails: anything
// that prevents a decision denies (fail closed). ctx is reserved for
// tracing and cancellation.
func (e *Engine) Decide(ctx context.Context, req *Request) Decision {
	now := req.Now
	if now.IsZero() {
		now = e.now()
	}
	snap := e.snap.Load()
	d := e.charge(snap.decide(req, now, e.node), now, e.limiter)
	if snap.observed != nil {
		d.Observed = e.observe(snap, req, now, d)
	}
	return d
}

// charge charges d's rate limits to l (when set) and denies when one is
// used up.
func (e *Engine) charge(d Decision, now time.Time, l *ratelimit.Limiter) Decision {
	if d.Effect == Deny || l == nil || len(d.Obligations.Rate) == 0 {
		return d
	}
	var buf [4]ratelimit.Claim
	claims := buf[:0]
	for _, r := range d.Obligations.Rate {
		claims = append(claims, ratelimit.Claim{Key: r.Key, Limit: ratelimit.Limit{N: r.Limit, Window: time.Duration(r.Window)}})
	}
	res := l.Allow(now, claims...)
	if res.Allowed {
		return d
	}
	r := d.Obligations.Rate[res.Failed]
	return Decision{
		Effect: Deny, Policy: d.Policy, Rule: d.Rule, Principal: d.Principal,
		Reasons: []string{fmt.Sprintf("rate limit %d per %v per %s (%s) is used up for %s; retry in %v",
			r.Limit, time.Duration(r.Window), r.Per, r.Rule, r.Key[len(r.Rule)+1:], res.RetryAfter.Round(time.Millisecond))},
		Obligations: Obligations{Rate: d.Obligations.Rate},
		RetryAfter:  Duration(res.RetryAfter),
	}
}

// Explain is Decide with a trace of every rule (see [Snapshot.Explain]).
// It does not charge rate limits.
func (e *Engine) Explain(ctx context.Context, req *Request) *Explanation {
	now := req.Now
	if now.IsZero() {
		now = e.now()
	}
	return e.snap.Load().explain(req, now, e.node)
}
