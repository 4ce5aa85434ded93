package alert

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditfeed"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
)

// countingLog is the store's audit backend, counting the records the
// engine reads back.
type countingLog struct {
	r    auditfeed.Records
	read atomic.Int64
}

func (c *countingLog) ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error) {
	recs, err := c.r.ReadRecords(ctx, from, limit)
	c.read.Add(int64(len(recs)))
	return recs, err
}

// liveEnv is env with a second engine that follows the log as it is
// written (Committed), on a store of its own cursor: the first engine,
// which reads every event back, is the reference.
type liveEnv struct {
	*env
	live    *Engine
	counted *countingLog
}

func newLiveEnv(t *testing.T, cfg Config) *liveEnv {
	e := newEnv(t, cfg)
	c := &countingLog{r: e.db.Audit()}
	le := &liveEnv{env: e, counted: c}
	le.live = &Engine{Log: c, Store: &otherCursor{Store: e.db}, Rules: cfg, Now: e.eng.Now,
		Webhooks: func(store.Alert) []string { return nil }}
	e.log.Observe(le.live.Observer())
	return le
}

// otherCursor keeps the live engine's cursor, state and alerts apart from
// the reference engine's: its own alert store in memory over the real
// cursor semantics (RaiseAlerts moves from → to or fails).
type otherCursor struct {
	Store
	cur    store.Cursor
	alerts map[string]*store.Alert
}

func (o *otherCursor) GetCursor(context.Context, string) (store.Cursor, error) { return o.cur, nil }

func (o *otherCursor) RaiseAlerts(_ context.Context, from, to int64, state []byte, list []store.Alert, _ func(store.Alert) []string) ([]store.RaisedAlert, error) {
	if from != o.cur.Next {
		return nil, store.ErrCursorMoved
	}
	if o.alerts == nil {
		o.alerts = map[string]*store.Alert{}
	}
	var out []store.RaisedAlert
	for _, a := range list {
		if old, ok := o.alerts[a.DedupKey]; ok {
			old.Count += a.Count
			old.LastEvidence = a.LastEvidence
			old.Evidence = append(old.Evidence, a.Evidence...)[:min(len(old.Evidence)+len(a.Evidence), store.MaxEvidence)]
			out = append(out, store.RaisedAlert{Alert: *old})
			continue
		}
		c := a
		o.alerts[a.DedupKey] = &c
		out = append(out, store.RaisedAlert{Alert: c, Created: true})
	}
	o.cur = store.Cursor{Next: to, State: state}
	return out, nil
}

// summary is what both engines must agree on: every alert's rule, key,
// count, evidence and times, and the evaluation state at the cursor.
func summary(t *testing.T, alerts []store.Alert, cur store.Cursor) string {
	t.Helper()
	var lines []string
	for _, a := range alerts {
		var ev []string
		for _, x := range a.Evidence {
			ev = append(ev, fmt.Sprint(x.Index))
		}
		lines = append(lines, fmt.Sprintf("%s %s count=%d first=%v last=%v evidence=%v", a.Rule, a.DedupKey, a.Count,
			a.FirstEvidence.UnixNano(), a.LastEvidence.UnixNano(), ev))
	}
	slices.Sort(lines)
	return fmt.Sprintf("next=%d state=%s\n%v", cur.Next, cur.State, lines)
}

func (le *liveEnv) compare(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ref, err := le.db.ListAlerts(ctx, store.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	refCur, err := le.db.GetCursor(ctx, store.CursorAlerts)
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Alert
	for _, a := range le.live.Store.(*otherCursor).alerts {
		got = append(got, *a)
	}
	if w, g := summary(t, ref, refCur), summary(t, got, le.live.Store.(*otherCursor).cur); w != g {
		t.Fatalf("the live engine disagrees with the one reading the log:\nlive: %s\nread: %s", g, w)
	}
}

// randomEvents are events that raise alerts (denial bursts, revoked and
// bypass refusals, admin failures, shadow agents) or count rule use.
func randomEvents(r *rand.Rand, n int, at time.Time) []audit.Event {
	var es []audit.Event
	for i := range n {
		tm := at.Add(time.Duration(i) * time.Second)
		var e audit.Event
		switch r.IntN(6) {
		case 0, 1:
			e = denied(fmt.Sprintf("spiffe://writ.local/agent/%d", r.IntN(3)))
			if r.IntN(4) == 0 {
				e.Reason = "instance inst_1 is revoked"
			}
		case 2:
			e = audit.Event{Type: audit.AdminAuthFailed, Source: fmt.Sprintf("10.0.0.%d:4000", r.IntN(2))}
		case 3:
			e = shadowAgent(fmt.Sprint("k", r.IntN(4)))
		default:
			e = audit.Event{Type: audit.AccessAllowed, SpiffeID: "spiffe://writ.local/agent/0", Policy: fmt.Sprintf("p%d@1", r.IntN(2)), Rule: fmt.Sprint("r", r.IntN(3))}
		}
		e.Time = tm
		es = append(es, e)
	}
	return es
}

// TestLiveMatchesRead: an engine following the log as it is written
// raises what an engine reading every event back raises, and stores the
// same state at the same cursor, over random events and Sync points;
// once live, it reads nothing back.
func TestLiveMatchesRead(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			le := newLiveEnv(t, Config{DenialThreshold: 3, DenialWindow: time.Minute, AuthFailThreshold: 2, AuthFailWindow: 30 * time.Second})
			at := t0
			for round := range 12 {
				n := r.IntN(40)
				es := randomEvents(r, n, at)
				at = at.Add(time.Duration(n+r.IntN(120)) * time.Second)
				le.now = at
				for len(es) > 0 {
					k := min(len(es), 1+r.IntN(8))
					le.emit(t, es[:k]...)
					es = es[k:]
				}
				if _, err := le.eng.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				before := le.counted.read.Load()
				if _, err := le.live.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				// The first Sync reads the log (and turns live on);
				// after it, nothing is read back.
				if read := le.counted.read.Load() - before; round > 0 && read != 0 {
					t.Fatalf("round %d: the live engine read %d records back", round, read)
				}
				le.compare(t)
			}
			if le.live.live.mode != liveOn {
				t.Fatal("the engine never went live")
			}
			if le.eng.live.mode != liveOff {
				t.Fatal("an engine whose Observer was never taken went live: it would stop reading the log")
			}
		})
	}
}

// TestLiveGap: an event the live engine misses (another server's, say)
// turns it off; the next Sync reads the log and agrees with the reference
// again, and goes live again.
func TestLiveGap(t *testing.T) {
	ctx := context.Background()
	le := newLiveEnv(t, Config{DenialThreshold: 2, DenialWindow: time.Minute})
	a := "spiffe://writ.local/agent/a"
	le.emit(t, denied(a))
	le.live.Sync(ctx) // reads, goes live
	le.log.Observe(nil)
	le.emit(t, denied(a)) // written unseen
	le.log.Observe(le.live.Observer())
	le.emit(t, denied(a))
	if le.live.live.mode != liveOff {
		t.Fatalf("mode %d after a gap, want off", le.live.live.mode)
	}
	before := le.counted.read.Load()
	c, err := le.live.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if le.counted.read.Load() == before {
		t.Fatal("after a gap the engine did not read the log")
	}
	if len(c) != 1 || c[0].Rule != RuleRepeatedDenials {
		t.Fatalf("alerts after the gap: %+v", c)
	}
	le.eng.Sync(ctx)
	le.compare(t)
	le.emit(t, denied(a))
	if le.live.live.mode != liveOn {
		t.Fatalf("mode %d after the read, want on", le.live.live.mode)
	}
	le.live.Sync(ctx)
	le.eng.Sync(ctx)
	le.compare(t)
}

// TestLiveBufferedDuringRead: events written while Sync reads the log are
// buffered and evaluated after the read, each once.
func TestLiveBufferedDuringRead(t *testing.T) {
	ctx := context.Background()
	le := newLiveEnv(t, Config{DenialThreshold: 3, DenialWindow: time.Minute})
	a := "spiffe://writ.local/agent/a"
	le.emit(t, denied(a))
	// Sync's read begins: buffering starts, then events are written
	// that the read also sees (the overlap) and after it stops.
	le.live.live.mu.Lock()
	le.live.live.mode = liveBuffering
	le.live.live.mu.Unlock()
	le.emit(t, denied(a)) // buffered and read
	cur, _ := le.live.Store.GetCursor(ctx, store.CursorAlerts)
	ev := newEvaluator(le.live.Rules, decodeCarried(cur.State))
	// The read, by hand: up to the end of the log now.
	var raises []store.Alert
	next, _, err := auditfeed.Read(ctx, le.live.Log, cur.Next, BatchSize, nil, func(idx int64, ae *audit.Event) error {
		raises = append(raises, ev.eval(idx, ae)...)
		return nil
	})
	if err != nil || next != 2 {
		t.Fatalf("read to %d, %v", next, err)
	}
	le.emit(t, denied(a)) // buffered only: the third denial
	if _, err := le.live.raise(ctx, cur.Next, next, ev.state(le.now), raises); err != nil {
		t.Fatal(err)
	}
	le.live.goLive(next, ev)
	if le.live.live.mode != liveOn || le.live.live.next != 3 {
		t.Fatalf("after the read: mode %d next %d, want on at 3", le.live.live.mode, le.live.live.next)
	}
	c, err := le.live.Sync(ctx)
	if err != nil || len(c) != 1 {
		t.Fatalf("the buffered third denial raised %+v, %v", c, err)
	}
	le.eng.Sync(ctx)
	le.compare(t)
}

// TestLiveBounded: a buffer that overflows turns live off rather than
// grow; nothing is lost, the next Sync reads.
func TestLiveBounded(t *testing.T) {
	var e Engine
	e.live.mode = liveBuffering
	ev := audit.Event{Type: audit.AccessAllowed}
	for i := range maxLiveBuffered + 1 {
		e.Committed(int64(i), &ev)
	}
	if e.live.mode != liveOff || len(e.live.buf) != 0 {
		t.Fatalf("after %d buffered events: mode %d, %d held", maxLiveBuffered+1, e.live.mode, len(e.live.buf))
	}
}
