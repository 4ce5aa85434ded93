package graph

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditfeed"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// countingRecords is the log's backend, counting the records a builder
// reads back.
type countingRecords struct {
	r    auditfeed.Records
	read atomic.Int64
	// during, when set, runs once after the next read, before the reader
	// sees its records.
	during func()
}

func (c *countingRecords) ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error) {
	recs, err := c.r.ReadRecords(ctx, from, limit)
	c.read.Add(int64(len(recs)))
	if f := c.during; f != nil {
		c.during = nil
		f()
	}
	return recs, err
}

// liveLog is a testLog with two builders: ref reads every event back into
// the log's own store, live follows the log as it is written and keeps
// its facts in a second store (a cursor of its own).
type liveLog struct {
	*testLog
	ref, live *Builder
	facts     *sqlite.DB
	counted   *countingRecords
}

func newLiveLog(t *testing.T) *liveLog {
	tl := newTestLog(t)
	facts, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "facts.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { facts.Close() })
	c := &countingRecords{r: tl.db.Audit()}
	ll := &liveLog{testLog: tl, facts: facts, counted: c,
		ref:  &Builder{Log: tl.db.Audit(), Facts: tl.db, Approvals: tl.db},
		live: &Builder{Log: c, Facts: facts, Approvals: tl.db}}
	tl.log.Observe(ll.live.Observer())
	return ll
}

// factsOf is every fact of db, hourly and all-time, and its cursor, as
// one comparable string.
func factsOf(t *testing.T, db *sqlite.DB) string {
	t.Helper()
	ctx := context.Background()
	hourly, err := db.ListLineage(ctx, store.LineageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := db.ListLineage(ctx, store.LineageFilter{AllTime: true})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := db.GetCursor(ctx, store.CursorLineage)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range append(hourly, all...) {
		f.FirstSeen, f.LastSeen = f.FirstSeen.UTC(), f.LastSeen.UTC()
		lines = append(lines, fmt.Sprintf("%+v", f))
	}
	slices.Sort(lines)
	return fmt.Sprintf("next=%d %d facts\n%v", cur.Next, len(lines), lines)
}

// emitUnseen writes es without handing them to the live builder, as
// another server's events or ones written before it followed the log.
func (ll *liveLog) emitUnseen(t *testing.T, es ...audit.Event) {
	t.Helper()
	ll.log.Observe(nil)
	ll.emit(t, es...)
	ll.log.Observe(ll.live.Observer())
}

// hand hands the live builder the n events of the log from index from,
// as the log does when it writes them.
func (ll *liveLog) hand(t *testing.T, from int64, n int) {
	t.Helper()
	recs, err := ll.db.Audit().ReadRecords(context.Background(), from, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		e, err := audit.DecodeEvent(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		ll.live.Committed(rec.Index, &e)
	}
}

func (ll *liveLog) sync(t *testing.T, b *Builder) {
	t.Helper()
	if _, err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (ll *liveLog) compare(t *testing.T) {
	t.Helper()
	ll.sync(t, ll.ref)
	if want, got := factsOf(t, ll.db), factsOf(t, ll.facts); want != got {
		t.Fatalf("the live builder disagrees with the one reading the log:\nlive: %s\nread: %s", got, want)
	}
}

// randomAccesses are access events (allowed, denied, some held for an
// approval decided or not) among other events, over a few hours.
func randomAccesses(r *rand.Rand, n int, at time.Time) []audit.Event {
	var es []audit.Event
	for i := range n {
		var e audit.Event
		switch r.IntN(5) {
		case 0:
			e = audit.Event{Type: audit.TokenMinted, SpiffeID: mailID}
		default:
			e = call(r.IntN(4) != 0, []string{mailID, filesID}[r.IntN(2)], fmt.Sprint("inst_", r.IntN(2)), "",
				[]string{"", "ann"}[r.IntN(2)], fmt.Sprint("Service/svc", r.IntN(3)), []string{"", "key"}[r.IntN(2)])
			if r.IntN(6) == 0 {
				e.Details["approval"] = fmt.Sprint("appr_", r.IntN(3))
			}
		}
		e.Time = at.Add(time.Duration(i) * time.Minute)
		es = append(es, e)
	}
	return es
}

// TestLiveMatchesRead: a builder following the log as it is written
// stores the same facts at the same cursor as one reading every event
// back, over random events and Sync points; once it follows, it reads
// nothing back.
func TestLiveMatchesRead(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			ll := newLiveLog(t)
			for i := range 2 { // one approval decided by a human, one not found
				if _, err := ll.db.CreateApproval(ctx, store.Approval{ID: fmt.Sprint("appr_", i), Kind: "http", SpiffeID: mailID,
					State: "approved", DecidedBy: fmt.Sprint("admin:", i), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), DecidedAt: t0}); err != nil {
					t.Fatal(err)
				}
			}
			at := t0
			for round := range 10 {
				n := r.IntN(60)
				es := randomAccesses(r, n, at)
				at = at.Add(time.Duration(n+r.IntN(90)) * time.Minute)
				for len(es) > 0 {
					k := min(len(es), 1+r.IntN(10))
					ll.emit(t, es[:k]...)
					es = es[k:]
				}
				before := ll.counted.read.Load()
				ll.sync(t, ll.live)
				if read := ll.counted.read.Load() - before; round > 0 && read != 0 {
					t.Fatalf("round %d: the live builder read %d records back", round, read)
				}
				ll.compare(t)
			}
			if !ll.live.live.on {
				t.Fatal("the builder never folded live")
			}
			if ll.ref.live.on {
				t.Fatal("a builder whose Observer was never taken folded live: it would stop reading the log")
			}
		})
	}
}

// TestLiveGap: events the builder was not handed (another server's, or
// written while it did not follow) are read back, and only those; it
// agrees with the reference after.
func TestLiveGap(t *testing.T) {
	ll := newLiveLog(t)
	r := rand.New(rand.NewPCG(1, 2))
	ll.emit(t, randomAccesses(r, 10, t0)...)
	ll.sync(t, ll.live)
	ll.emit(t, randomAccesses(r, 10, t0.Add(time.Hour))...) // folded live
	ll.emitUnseen(t, randomAccesses(r, 7, t0.Add(2*time.Hour))...)
	ll.emit(t, randomAccesses(r, 10, t0.Add(3*time.Hour))...) // a new fold
	before := ll.counted.read.Load()
	ll.sync(t, ll.live)
	// The unseen 7 and the 10 before them, whose fold the gap discarded.
	if read := ll.counted.read.Load() - before; read != 17 {
		t.Fatalf("after a gap the builder read %d records, want 17", read)
	}
	ll.compare(t)
	ll.emit(t, randomAccesses(r, 5, t0.Add(4*time.Hour))...)
	before = ll.counted.read.Load()
	ll.sync(t, ll.live)
	if read := ll.counted.read.Load() - before; read != 0 {
		t.Fatalf("after catching up the builder read %d records", read)
	}
	ll.compare(t)
}

// TestLiveCursorMoved: another server's builder folded events the live
// fold holds (it moved the shared cursor past the fold's start): the fold
// is dropped, not stored twice.
func TestLiveCursorMoved(t *testing.T) {
	ll := newLiveLog(t)
	r := rand.New(rand.NewPCG(3, 4))
	other := &Builder{Log: ll.db.Audit(), Facts: ll.facts, Approvals: ll.db}
	ll.emit(t, randomAccesses(r, 10, t0)...)
	ll.sync(t, ll.live)
	ll.emit(t, randomAccesses(r, 10, t0.Add(time.Hour))...)
	ll.sync(t, other) // folds the 10 the live fold holds
	ll.emit(t, randomAccesses(r, 3, t0.Add(2*time.Hour))...)
	ll.sync(t, ll.live)
	ll.compare(t)
	// It follows again: the next events are not read back.
	ll.emit(t, randomAccesses(r, 5, t0.Add(3*time.Hour))...)
	before := ll.counted.read.Load()
	ll.sync(t, ll.live)
	if read := ll.counted.read.Load() - before; read != 0 {
		t.Fatalf("after the cursor moved the builder still reads back: %d records", read)
	}
	ll.compare(t)
}

// TestLiveDuringRead: events written while a Sync reads the log (the
// fold starts below where the read stops) are not folded twice.
func TestLiveDuringRead(t *testing.T) {
	ll := newLiveLog(t)
	r := rand.New(rand.NewPCG(5, 6))
	ll.emitUnseen(t, randomAccesses(r, 10, t0)...)
	// The fold starts at index 4, as if the log handed these over while
	// the read below was under way.
	ll.hand(t, 4, 6)
	// Sync reads [0, 4) up to the fold, then stores the fold.
	before := ll.counted.read.Load()
	ll.sync(t, ll.live)
	if read := ll.counted.read.Load() - before; read != 4 {
		t.Fatalf("read %d records up to the live fold at 4, want 4", read)
	}
	ll.compare(t)
}

// TestLiveStartsDuringRead: a fold that starts while a Sync reads, at an
// event the read also folds, is dropped: its events are not stored twice.
func TestLiveStartsDuringRead(t *testing.T) {
	ll := newLiveLog(t)
	r := rand.New(rand.NewPCG(7, 8))
	ll.emitUnseen(t, randomAccesses(r, 10, t0)...)
	ll.counted.during = func() { ll.hand(t, 7, 3) }
	ll.sync(t, ll.live)
	ll.compare(t)
	ll.emit(t, randomAccesses(r, 4, t0.Add(time.Hour))...)
	before := ll.counted.read.Load()
	ll.sync(t, ll.live)
	if read := ll.counted.read.Load() - before; read != 0 {
		t.Fatalf("the builder still reads back: %d records", read)
	}
	ll.compare(t)
}

// TestLiveBounded: a fold past its bound is dropped and started again at
// the next event rather than grow; the dropped events are read back.
func TestLiveBounded(t *testing.T) {
	ll := newLiveLog(t)
	ll.sync(t, ll.live)
	held := call(true, mailID, "inst_1", "", "", "Service/svc0", "", "approval", "appr_x")
	held.Time = t0
	for i := range maxLiveHeld + 1 {
		ll.live.Committed(int64(i), &held)
	}
	if l := &ll.live.live; !l.on || l.base != maxLiveHeld || len(l.held) != 1 {
		t.Fatalf("after %d held events: base %d, %d held; want a new fold at %d", maxLiveHeld+1, l.base, len(l.held), maxLiveHeld)
	}
}

// TestLiveBoundedPaths: a caller that makes every access a new path (a new
// tool name each call) cannot grow the fold past one read step's bound.
func TestLiveBoundedPaths(t *testing.T) {
	ll := newLiveLog(t)
	ll.sync(t, ll.live)
	for i := range maxLiveFacts + 1 {
		e := call(false, mailID, "inst_1", "", "", "MCPServer/files", "", "tool", fmt.Sprint("tool-", i))
		e.Time = t0
		ll.live.Committed(int64(i), &e)
	}
	if l := &ll.live.live; !l.on || l.base != maxLiveFacts || len(l.acc.m) != 1 {
		t.Fatalf("after %d paths: base %d, %d paths held; want a new fold at %d", maxLiveFacts+1, l.base, len(l.acc.m), maxLiveFacts)
	}
}
