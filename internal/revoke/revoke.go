// Package revoke is writ's kill switch: it keeps every revocation (of a
// SPIFFE ID, an agent instance, a task or one access token) durably in the
// store and in memory, answers [List.Revoked] with map lookups only, and
// tells in-process watchers (Workload API streams, the token verifier's
// callers, the proxy) the moment something is revoked, so enforcement
// follows within microseconds of the store commit.
//
// A revocation is permanent unless it carries an expiry (a token's
// revocation stops mattering once the token has expired); expired ones
// are pruned by [List.Run].
package revoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// ErrNotAudited reports a revocation that is in force but whose audit
// event could not be recorded.
var ErrNotAudited = errors.New("revocation in force but not audited")

// Config configures a [List].
type Config struct {
	Store   store.Revocations
	Emitter audit.Emitter
	Log     *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// PruneEvery is how often Run prunes expired revocations; default 10m.
	PruneEvery time.Duration
}

// Target names what credentials derive from. A credential is dead when any
// non-empty field of its target is revoked.
type Target struct {
	SpiffeID string
	Instance string
	Task     string
	TokenID  string // jti
}

// List is the in-memory view of every revocation. It is safe for
// concurrent use.
type List struct {
	c Config
	// set is an immutable map replaced on every change (copy on write):
	// checks never take a lock.
	set atomic.Pointer[map[key]store.Revocation]

	mu   sync.Mutex // serializes writers and guards subs
	subs map[chan struct{}]struct{}
}

type key struct{ kind, value string }

// Kinds lists the revocation kinds in the order [List.Check] tests them.
var kinds = [...]string{store.RevokeToken, store.RevokeTask, store.RevokeInstance, store.RevokeSpiffeID}

// New loads the current revocations from the store.
func New(ctx context.Context, c Config) (*List, error) {
	if c.Store == nil {
		return nil, errors.New("revoke: no store configured")
	}
	if c.Emitter == nil {
		return nil, errors.New("revoke: no audit emitter configured; revocations must be audited")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PruneEvery <= 0 {
		c.PruneEvery = 10 * time.Minute
	}
	rs, err := c.Store.ListRevocations(ctx, c.Now())
	if err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	m := make(map[key]store.Revocation, len(rs))
	for _, r := range rs {
		m[key{r.Kind, r.Value}] = r
	}
	l := &List{c: c, subs: map[chan struct{}]struct{}{}}
	l.set.Store(&m)
	return l, nil
}

// Reload reads the revocations from the store again, makes them the ones
// in force and wakes every watcher: for revocations and lifts another
// server on the same store made. Nothing is audited (the other server
// did).
func (l *List) Reload(ctx context.Context) error {
	// Held while reading, so that a revocation made here meanwhile is
	// not dropped.
	l.mu.Lock()
	defer l.mu.Unlock()
	rs, err := l.c.Store.ListRevocations(ctx, l.c.Now())
	if err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	m := make(map[key]store.Revocation, len(rs))
	for _, r := range rs {
		m[key{r.Kind, r.Value}] = r
	}
	l.set.Store(&m)
	l.notifyLocked()
	return nil
}

// ValidKind reports whether kind is one of the revocation kinds.
func ValidKind(kind string) bool {
	for _, k := range kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Revoke records r durably, then makes it effective in memory and wakes
// every watcher, and audits it. Revoking what is already revoked is not an
// error: it reports created false and changes nothing.
func (l *List) Revoke(ctx context.Context, r store.Revocation) (store.Revocation, bool, error) {
	if !ValidKind(r.Kind) {
		return store.Revocation{}, false, fmt.Errorf("revoke: kind %q is not one of spiffe_id, instance, task, token", r.Kind)
	}
	if r.Value == "" || len(r.Value) > 2048 || strings.ContainsAny(r.Value, "\x00\n") {
		return store.Revocation{}, false, fmt.Errorf("revoke %s: value must be 1 to 2048 characters on one line", r.Kind)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = l.c.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	got, created, err := l.c.Store.PutRevocation(ctx, r)
	if err != nil {
		return store.Revocation{}, false, err
	}
	cur := *l.set.Load()
	if _, ok := cur[key{got.Kind, got.Value}]; !ok {
		next := make(map[key]store.Revocation, len(cur)+1)
		for k, v := range cur {
			next[k] = v
		}
		next[key{got.Kind, got.Value}] = got
		l.set.Store(&next)
		l.notifyLocked()
	}
	if created {
		e := revocationEvent(audit.Revocation, r)
		if err := l.c.Emitter.Emit(ctx, e); err != nil {
			// The revocation is in force; only its record is missing.
			l.c.Log.ErrorContext(ctx, "audit revocation", "kind", r.Kind, "error", err)
			return got, created, fmt.Errorf("revoke %s %q: %w: %v", r.Kind, r.Value, ErrNotAudited, err)
		}
	}
	return got, created, nil
}

// Revoked reports whether the credential value of kind is revoked.
func (l *List) Revoked(kind, value string) bool {
	if value == "" {
		return false
	}
	_, ok := (*l.set.Load())[key{kind, value}]
	return ok
}

// Check returns the revocation that kills t, if any: the first revoked of
// its token id, task, instance and SPIFFE ID.
func (l *List) Check(t Target) (store.Revocation, bool) {
	m := *l.set.Load()
	if len(m) == 0 {
		return store.Revocation{}, false
	}
	for i, v := range [...]string{t.TokenID, t.Task, t.Instance, t.SpiffeID} {
		if v == "" {
			continue
		}
		if r, ok := m[key{kinds[i], v}]; ok {
			return r, true
		}
	}
	return store.Revocation{}, false
}

// InstanceRevoked reports whether an instance or its SPIFFE ID is revoked.
// It has the shape of workload.Config.Revoked.
func (l *List) InstanceRevoked(instance, spiffeID string) bool {
	_, ok := l.Check(Target{Instance: instance, SpiffeID: spiffeID})
	return ok
}

// All returns every revocation in memory, in no particular order.
func (l *List) All() []store.Revocation {
	m := *l.set.Load()
	out := make([]store.Revocation, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// Watch returns a channel that receives (without blocking the sender: one
// pending signal at most) whenever a revocation takes effect, and a cancel
// function that must be called to stop watching.
func (l *List) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

func (l *List) notifyLocked() {
	for ch := range l.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Prune forgets revocations whose expiry has passed, in the store and in
// memory, and returns how many were removed from memory.
func (l *List) Prune(ctx context.Context) (int, error) {
	now := l.c.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.c.Store.PruneRevocations(ctx, now); err != nil {
		return 0, err
	}
	cur := *l.set.Load()
	next := make(map[key]store.Revocation, len(cur))
	for k, v := range cur {
		if v.ExpiresAt.IsZero() || v.ExpiresAt.After(now) {
			next[k] = v
		}
	}
	l.set.Store(&next)
	return len(cur) - len(next), nil
}

// Run prunes expired revocations every PruneEvery until ctx ends.
func (l *List) Run(ctx context.Context) error {
	t := time.NewTicker(l.c.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if n, err := l.Prune(ctx); err != nil {
				l.c.Log.WarnContext(ctx, "prune revocations", "error", err)
			} else if n > 0 {
				l.c.Log.DebugContext(ctx, "pruned expired revocations", "count", n)
			}
		}
	}
}

// Lift takes back the revocation of kind and value: it is deleted from
// the store, stops counting at once for every check ([List.Check],
// [List.Revoked], the token verifier, the proxy), and is audited as
// revocation.lifted. What the revocation already did stays done (closed
// tasks stay closed). It returns store.ErrNotFound if nothing of kind
// and value is revoked.
func (l *List) Lift(ctx context.Context, kind, value, actor, reason string) (store.Revocation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	got, err := l.c.Store.DeleteRevocation(ctx, kind, value)
	if err != nil {
		return store.Revocation{}, err
	}
	cur := *l.set.Load()
	next := make(map[key]store.Revocation, len(cur))
	for k, v := range cur {
		if k != (key{kind, value}) {
			next[k] = v
		}
	}
	l.set.Store(&next)
	l.notifyLocked()
	e := revocationEvent(audit.RevocationLifted, store.Revocation{Kind: kind, Value: value, Actor: actor, Reason: reason})
	e.Action = "lift"
	if err := l.c.Emitter.Emit(ctx, e); err != nil {
		l.c.Log.ErrorContext(ctx, "audit lifted revocation", "kind", kind, "error", err)
		return got, fmt.Errorf("lift revocation of %s %q: %w: %v", kind, value, ErrNotAudited, err)
	}
	return got, nil
}

// revocationEvent is the audit event of r, attributed to what it names.
func revocationEvent(t audit.Type, r store.Revocation) audit.Event {
	e := audit.Event{Type: t, Actor: r.Actor, Reason: r.Reason, Target: r.Kind + ":" + r.Value,
		Action: "revoke", Details: map[string]string{"kind": r.Kind}}
	switch r.Kind {
	case store.RevokeSpiffeID:
		e.SpiffeID = r.Value
	case store.RevokeInstance:
		e.Instance = r.Value
	case store.RevokeTask:
		e.Task = r.Value
	case store.RevokeToken:
		e.Credential = r.Value
	}
	return e
}

// List returns every revocation in force (not expired), oldest first,
// from the store.
func (l *List) List(ctx context.Context) ([]store.Revocation, error) {
	return l.c.Store.ListRevocations(ctx, l.c.Now())
}
