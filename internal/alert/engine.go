package alert

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditfeed"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
)

// Store is where the engine keeps alerts, its cursor and the outbox
// (store.Alerts and the cursor of store.Lineage).
type Store interface {
	GetCursor(ctx context.Context, name string) (store.Cursor, error)
	store.Alerts
}

// Engine evaluates the rules over the audit log, incrementally from its
// stored cursor, and stores what they raise.
type Engine struct {
	Log   auditfeed.Records
	Store Store
	Rules Config
	// Webhooks returns the names of the webhooks to notify of a new
	// alert; optional.
	Webhooks func(store.Alert) []string
	// Emitter records acknowledgements and resolutions.
	Emitter audit.Emitter
	Now     func() time.Time
	Logger  *slog.Logger

	mu   sync.Mutex
	live live
}

// live is the evaluation of events as the log writes them (see
// [Engine.Committed]), so that Sync stores what they raised without
// reading them back. It holds the evaluator from the stored cursor base on,
// through the events before next.
//
// It is exact: an event is evaluated once, in index order, or live is
// off. Sync turns it on by buffering the events written while it reads
// the log from its cursor: every event is then either read (written
// before the read reached it) or buffered (written after buffering
// began), and the buffered ones the read covered (below where it stopped)
// are skipped. An index that does not follow on (events written by
// another server, or missed before buffering began) turns it off, and
// the next Sync reads the log again.
type live struct {
	mu     sync.Mutex
	follow bool // Observer was called: the log hands over what it writes
	mode   int  // liveOff, liveBuffering or liveOn
	buf    []committed
	base   int64 // the stored cursor the evaluation continues
	next   int64
	ev     *evaluator
	raises []store.Alert
	last   time.Time
}

const (
	liveOff = iota
	liveBuffering
	liveOn
)

// committed is an event written while Sync read the log.
type committed struct {
	idx int64
	e   *audit.Event
}

// maxLiveBuffered bounds the events held while Sync reads the log; past
// it, live stays off until the next Sync. maxLiveRaises bounds the raises
// held between two Syncs the same way.
const (
	maxLiveBuffered = 8192
	maxLiveRaises   = 4096
)

// Observer returns the function to give the audit log's Observe, so that
// the engine evaluates events as they are written (see [Engine.Committed])
// instead of reading each back at the next Sync. An engine whose Observer
// was never taken reads the log.
func (e *Engine) Observer() auditlog.Observer {
	e.live.mu.Lock()
	e.live.follow = true
	e.live.mu.Unlock()
	return e.Committed
}

// Detach is called once the log no longer calls the engine's Observer:
// Syncs read the log again.
func (e *Engine) Detach() {
	e.live.mu.Lock()
	e.live.follow = false
	e.live.off()
	e.live.mu.Unlock()
}

// Committed evaluates the event the audit log wrote at idx (the
// auditlog.Observer that [Engine.Observer] returns). It is quick and
// never waits for Sync.
func (e *Engine) Committed(idx int64, ae *audit.Event) {
	l := &e.live
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.mode {
	case liveBuffering:
		if len(l.buf) == maxLiveBuffered {
			l.off()
			return
		}
		l.buf = append(l.buf, committed{idx, ae})
	case liveOn:
		switch {
		case idx < l.next:
		case idx > l.next || len(l.raises) >= maxLiveRaises:
			l.off()
		default:
			l.eval(idx, ae)
		}
	}
}

// eval evaluates the event at l.next. l.mu is held.
func (l *live) eval(idx int64, ae *audit.Event) {
	l.raises = append(l.raises, l.ev.eval(idx, ae)...)
	l.last = ae.Time
	l.next = idx + 1
}

// off stops the live evaluation until Sync starts it again. l.mu is held.
func (l *live) off() {
	clear(l.buf) // keeps no event alive
	l.mode, l.buf, l.base, l.next, l.ev, l.raises, l.last = liveOff, l.buf[:0], 0, 0, nil, nil, time.Time{}
}

// BatchSize is how many audit records one step of [Engine.Sync] reads.
const BatchSize = 5000

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Sync evaluates every event appended since the last Sync and returns
// the alerts created.
func (e *Engine) Sync(ctx context.Context) ([]store.Alert, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var created []store.Alert
	for tries := 0; ; {
		more, c, err := e.step(ctx)
		created = append(created, c...)
		switch {
		case errors.Is(err, store.ErrCursorMoved) && tries < 3:
			tries++
		case err != nil:
			return created, err
		case !more:
			return created, nil
		}
	}
}

func (e *Engine) step(ctx context.Context) (bool, []store.Alert, error) {
	cur, err := e.Store.GetCursor(ctx, store.CursorAlerts)
	if err != nil {
		return false, nil, fmt.Errorf("alerts: %w", err)
	}
	if ok, created, err := e.stepLive(ctx, cur); ok {
		return false, created, err
	}
	ev := newEvaluator(e.Rules, decodeCarried(cur.State))
	var raises []store.Alert
	var last time.Time
	next, st, err := auditfeed.Read(ctx, e.Log, cur.Next, BatchSize, nil, func(idx int64, ae *audit.Event) error {
		raises = append(raises, ev.eval(idx, ae)...)
		last = ae.Time
		return nil
	})
	if err != nil {
		return false, nil, fmt.Errorf("alerts: %w", err)
	}
	if st.Unreadable > 0 && e.Logger != nil {
		e.Logger.WarnContext(ctx, "alerts: skipped audit events that cannot be decoded (run writ audit verify)",
			"events", st.Unreadable, "first_index", st.FirstUnreadable)
	}
	more := st.Read == BatchSize
	if next == cur.Next {
		e.goLive(cur.Next, ev)
		return false, nil, nil
	}
	state := ev.state(last)
	created, err := e.raise(ctx, cur.Next, next, state, raises)
	if err != nil {
		e.stopLive()
		return false, nil, err
	}
	if !more {
		e.goLive(next, ev)
	}
	return more, created, nil
}

// stepLive stores what the live evaluation raised since the cursor cur,
// and reports false when it cannot (live is off, or follows another
// cursor): then the log must be read.
func (e *Engine) stepLive(ctx context.Context, cur store.Cursor) (bool, []store.Alert, error) {
	l := &e.live
	l.mu.Lock()
	if l.mode == liveOn && l.base != cur.Next {
		l.off() // the cursor moved under it (another server's engine)
	}
	if l.mode == liveOff && l.follow {
		// Buffer what is written from now on, while the log is read.
		l.mode = liveBuffering
	}
	if l.mode != liveOn || l.base != cur.Next {
		l.mu.Unlock()
		return false, nil, nil
	}
	if l.next == cur.Next {
		l.mu.Unlock()
		return true, nil, nil
	}
	next, raises := l.next, l.raises
	state := l.ev.state(l.last)
	l.base, l.raises = next, nil
	l.mu.Unlock()
	created, err := e.raise(ctx, cur.Next, next, state, raises)
	if err != nil {
		e.stopLive() // the stored cursor is not base: read again
	}
	return true, created, err
}

// goLive continues the read evaluation ev, which the cursor stores up to
// next, with the events buffered meanwhile, and evaluates the events
// written from then on as they come.
func (e *Engine) goLive(next int64, ev *evaluator) {
	l := &e.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mode != liveBuffering {
		return // off: the buffer overflowed
	}
	buf := l.buf
	l.mode, l.base, l.next, l.ev, l.raises, l.last = liveOn, next, next, ev, nil, time.Time{}
	for _, c := range buf {
		switch {
		case c.idx < l.next: // read already
		case c.idx > l.next:
			l.off()
			return
		default:
			l.eval(c.idx, c.e)
		}
	}
	clear(buf)
	l.buf = buf[:0]
}

// stopLive turns the live evaluation off.
func (e *Engine) stopLive() {
	e.live.mu.Lock()
	e.live.off()
	e.live.mu.Unlock()
}

// raise stores the alerts raises of the events [from, to) and the
// evaluation state after them, and moves the cursor from from to to.
func (e *Engine) raise(ctx context.Context, from, to int64, state []byte, raises []store.Alert) ([]store.Alert, error) {
	now := e.now()
	// Merge raises of one key within this batch, so a burst is one alert.
	merged := map[string]int{}
	var list []store.Alert
	for _, r := range raises {
		if i, ok := merged[r.DedupKey]; ok {
			a := &list[i]
			a.Count += r.Count
			a.LastEvidence = r.LastEvidence
			if len(a.Evidence) < store.MaxEvidence {
				a.Evidence = append(a.Evidence, r.Evidence...)
			}
			continue
		}
		r.ID = "alr_" + rand.Text()
		r.RaisedAt = now
		merged[r.DedupKey] = len(list)
		list = append(list, r)
	}
	stored, err := e.Store.RaiseAlerts(ctx, from, to, state, list, e.Webhooks)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	var created []store.Alert
	for _, a := range stored {
		if a.Created {
			created = append(created, a.Alert)
		}
	}
	return created, nil
}

// Run evaluates new events every interval until ctx ends.
func (e *Engine) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := e.Sync(ctx); err != nil && ctx.Err() == nil && e.Logger != nil {
			e.Logger.ErrorContext(ctx, "alerts: evaluate events", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SetState acknowledges or resolves alert id as who, records it in the
// audit log (alert.acknowledged, alert.resolved), and returns the alert.
// If the record fails after the change was stored, the error says so.
func (e *Engine) SetState(ctx context.Context, id, state, who, note string) (store.Alert, error) {
	if len(note) > 4096 {
		return store.Alert{}, fmt.Errorf("note is %d bytes long; at most 4096", len(note))
	}
	prev, err := e.Store.GetAlert(ctx, id)
	if err != nil {
		return prev, err
	}
	typ := audit.AlertAcknowledged
	if state == store.AlertResolved {
		typ = audit.AlertResolved
	}
	now := e.now()
	ev := audit.Event{Type: typ, Actor: who, Target: "alert/" + id, Action: string(typ), Reason: note,
		Details: map[string]string{"alert": id, "rule": prev.Rule, "severity": prev.Severity, "subject": prev.Subject,
			"dwell_seconds": fmt.Sprint(int64(now.Sub(prev.FirstEvidence).Seconds()))}}
	a, err := e.Store.SetAlertState(ctx, id, state, who, note, now)
	if err != nil {
		return a, err
	}
	if e.Emitter != nil {
		if err := e.Emitter.Emit(ctx, ev); err != nil {
			return a, fmt.Errorf("alert %s is %s, but the audit log refused the record of it: %w", id, state, err)
		}
	}
	return a, nil
}
