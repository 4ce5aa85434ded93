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

	mu sync.Mutex
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
	if next == cur.Next {
		return false, nil, nil
	}
	state := ev.state(last)
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
	stored, err := e.Store.RaiseAlerts(ctx, cur.Next, next, state, list, e.Webhooks)
	if err != nil {
		return false, nil, fmt.Errorf("alerts: %w", err)
	}
	var created []store.Alert
	for _, a := range stored {
		if a.Created {
			created = append(created, a.Alert)
		}
	}
	return st.Read == BatchSize, created, nil
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
