package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditfeed"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
)

// Facts is where the builder keeps the graph's aggregates (store.Lineage).
type Facts interface {
	GetCursor(ctx context.Context, name string) (store.Cursor, error)
	AddLineage(ctx context.Context, from, next int64, facts []store.LineageFact) error
	ListLineage(ctx context.Context, f store.LineageFilter) ([]store.LineageFact, error)
	LineageStart(ctx context.Context) (time.Time, bool, error)
}

// Approvers tells who decided an approval request (store.Approvals).
type Approvers interface {
	GetApproval(ctx context.Context, id string) (store.Approval, error)
}

// BatchSize is how many audit records one [Builder.Sync] step folds into
// one transaction of the store.
const BatchSize = 20000

// Builder folds the audit log into the stored lineage aggregates,
// incrementally: it reads from the stored cursor on, so each event is
// folded once however often the graph is queried. A Builder whose
// [Builder.Observer] the log calls folds events as they are written
// instead, and reads back only what it did not see.
type Builder struct {
	Log       auditfeed.Records
	Facts     Facts
	Approvals Approvers // optional: without it approvers are not named
	Logger    *slog.Logger

	mu        sync.Mutex // one Sync at a time in this process
	approvers map[string]string
	live      live
}

// live is the fold of the events the log hands over as it writes them,
// from index base up to next (exclusive), contiguous. Sync stores it when
// the stored cursor has reached base, after reading [cursor, base) from
// the log, so every event is folded once: read if below base, live from
// base on. Anything that would break that (an index that does not follow
// on, a cursor that another server moved past base, a fold grown past its
// bounds, a store that refused it) discards the fold and starts a new one
// at the next event written; the discarded events are read back instead.
type live struct {
	mu     sync.Mutex
	follow bool // the log calls Committed
	on     bool // base and next hold; false: the next event starts a fold
	base   int64
	next   int64
	acc    *accumulator
	// held are the access events of approved requests: folding one needs
	// its approver, a store lookup, which Sync does.
	held []*audit.Event
}

// maxLiveFacts and maxLiveHeld bound the live fold between two Syncs; past
// them it is discarded and the next Sync reads those events instead, a
// step of BatchSize at a time. A caller that makes every access a new path
// (a new tool name each call, say) thus holds no more than a read step
// would.
const (
	maxLiveFacts = BatchSize
	maxLiveHeld  = 10000
)

// Observer returns the function to give the audit log's Observe, so that
// the builder folds events as they are written (see [Builder.Committed]).
// A Builder whose Observer was never taken reads the log.
func (b *Builder) Observer() auditlog.Observer {
	b.live.mu.Lock()
	b.live.follow = true
	b.live.mu.Unlock()
	return b.Committed
}

// Detach is called once the log no longer calls the builder's Observer:
// Syncs read the log again.
func (b *Builder) Detach() {
	b.live.mu.Lock()
	b.live.follow = false
	b.live.discard()
	b.live.mu.Unlock()
}

// Committed folds the event the audit log wrote at idx (the
// auditlog.Observer that [Builder.Observer] returns). It is quick and
// never waits for Sync.
func (b *Builder) Committed(idx int64, e *audit.Event) {
	l := &b.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.follow {
		return
	}
	switch {
	case !l.on || idx > l.next || len(l.acc.m) >= maxLiveFacts || len(l.held) >= maxLiveHeld:
		l.on, l.base, l.next, l.acc, l.held = true, idx, idx, newAccumulator(), nil
	case idx < l.next:
		return // handed over twice
	}
	if isAccess(e.Type) {
		if e.Details["approval"] != "" {
			l.held = append(l.held, e)
		} else {
			l.acc.add(e, "")
		}
	}
	l.next = idx + 1
}

// discard drops the live fold; the next event starts another. l.mu is
// held.
func (l *live) discard() {
	l.on, l.base, l.next, l.acc, l.held = false, 0, 0, nil, nil
}

// Sync folds every event appended since the last Sync and returns the
// index of the next event to fold (the number of events folded in so far).
// If another writer moved the cursor meanwhile it starts again from there.
func (b *Builder) Sync(ctx context.Context) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for tries := 0; ; {
		next, more, err := b.step(ctx)
		switch {
		case errors.Is(err, store.ErrCursorMoved) && tries < 3:
			tries++
			continue
		case err != nil:
			return next, err
		case !more:
			return next, nil
		}
	}
}

// step folds up to BatchSize records, or the live fold, and reports
// whether there may be more.
func (b *Builder) step(ctx context.Context) (int64, bool, error) {
	cur, err := b.Facts.GetCursor(ctx, store.CursorLineage)
	if err != nil {
		return 0, false, fmt.Errorf("lineage: %w", err)
	}
	l := &b.live
	l.mu.Lock()
	if l.on && l.base < cur.Next {
		// The cursor is past the fold's start: another server's builder
		// folded some of its events, or this Sync's last read did.
		l.discard()
	}
	if l.on && l.base == cur.Next {
		// Everything before base is stored: store the live fold.
		acc, held, next := l.acc, l.held, l.next
		l.base, l.acc, l.held = next, newAccumulator(), nil
		l.mu.Unlock()
		if next == cur.Next {
			return next, false, nil
		}
		for _, e := range held {
			acc.add(e, b.approver(ctx, e.Details["approval"]))
		}
		if err := b.Facts.AddLineage(ctx, cur.Next, next, acc.facts()); err != nil {
			l.mu.Lock()
			l.discard()
			l.mu.Unlock()
			return cur.Next, false, fmt.Errorf("lineage: %w", err)
		}
		return next, false, nil
	}
	limit := BatchSize
	if l.on {
		limit = int(min(int64(limit), l.base-cur.Next)) // read up to the live fold
	}
	l.mu.Unlock()
	acc := newAccumulator()
	next, st, err := auditfeed.Read(ctx, b.Log, cur.Next, limit, isAccess, func(_ int64, e *audit.Event) error {
		acc.add(e, b.approver(ctx, e.Details["approval"]))
		return nil
	})
	if err != nil {
		return cur.Next, false, fmt.Errorf("lineage: %w", err)
	}
	if st.Unreadable > 0 && b.Logger != nil {
		b.Logger.WarnContext(ctx, "lineage: skipped audit events that cannot be decoded (run writ audit verify)",
			"events", st.Unreadable, "first_index", st.FirstUnreadable)
	}
	if next == cur.Next {
		return next, false, nil
	}
	if err := b.Facts.AddLineage(ctx, cur.Next, next, acc.facts()); err != nil {
		return cur.Next, false, fmt.Errorf("lineage: %w", err)
	}
	l.mu.Lock()
	if l.on && l.base < next {
		l.discard() // it began with events this read folded
	}
	more := st.Read == limit || l.on && l.base == next // the next step stores the live fold
	l.mu.Unlock()
	return next, more, nil
}

func isAccess(t audit.Type) bool { return t == audit.AccessAllowed || t == audit.AccessDenied }

// approver returns who decided approval id ("" when unknown), remembering
// the answers.
func (b *Builder) approver(ctx context.Context, id string) string {
	if id == "" || b.Approvals == nil {
		return ""
	}
	if who, ok := b.approvers[id]; ok {
		return who
	}
	who := ""
	if a, err := b.Approvals.GetApproval(ctx, id); err == nil {
		who = a.DecidedBy
	}
	if b.approvers == nil || len(b.approvers) > 100000 {
		b.approvers = map[string]string{}
	}
	b.approvers[id] = who
	return who
}

// accumulator sums access events into facts per hour and path.
type accumulator struct {
	m map[store.LineageFact]*store.LineageFact
}

func newAccumulator() *accumulator {
	return &accumulator{m: map[store.LineageFact]*store.LineageFact{}}
}

// Unidentified and Unrouted name the identity of an access whose caller
// was not identified and the target of one that matched no route.
const (
	Unidentified = "(unidentified)"
	Unrouted     = "(unrouted)"
)

// FactOf returns the path of one access event, with zero counts.
func FactOf(e *audit.Event, approvedBy string) store.LineageFact {
	f := store.LineageFact{Hour: e.Time.UTC().Truncate(time.Hour), User: e.OnBehalfOf, Identity: e.SpiffeID,
		Instance: e.Instance, Task: e.Task, Via: e.Details["via"], Credential: e.Credential, ApprovedBy: approvedBy}
	if f.Identity == "" {
		f.Identity = Unidentified
	}
	kind, name, _ := strings.Cut(e.Target, "/")
	switch kind {
	case "MCPServer":
		f.TargetKind = store.TargetMCPServer
	default:
		f.TargetKind = store.TargetService
	}
	f.Target = e.Details["service"]
	if f.Target == "" {
		f.Target = name
	}
	if f.Target == "" {
		f.Target = Unrouted
	}
	switch d := e.Details; {
	case d["tool"] != "":
		f.Tool = d["tool"]
	case d["resource"] != "":
		f.Tool = "resource:" + d["resource"]
	case d["prompt"] != "":
		f.Tool = "prompt:" + d["prompt"]
	}
	return f
}

func (a *accumulator) add(e *audit.Event, approvedBy string) {
	k := FactOf(e, approvedBy)
	f := a.m[k]
	if f == nil {
		f = new(store.LineageFact)
		*f = k
		f.FirstSeen, f.LastSeen = e.Time, e.Time
		a.m[k] = f
	}
	if e.Type == audit.AccessAllowed {
		f.Allowed++
	} else {
		f.Denied++
	}
	if e.Details["approval"] != "" {
		f.Held++
	}
	if e.Time.Before(f.FirstSeen) {
		f.FirstSeen = e.Time
	}
	if e.Time.After(f.LastSeen) {
		f.LastSeen = e.Time
	}
}

// facts returns the hourly facts and, for each path, its share of the
// all-time rollup (Hour store.LineageAllTime), which a query over every
// hour reads instead of summing them.
func (a *accumulator) facts() []store.LineageFact {
	out := make([]store.LineageFact, 0, 2*len(a.m))
	all := make(map[store.LineageFact]int, len(a.m))
	for _, f := range a.m {
		out = append(out, *f)
		out = store.RollUp(out, all, *f, store.LineageAllTime)
	}
	return out
}
