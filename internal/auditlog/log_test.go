package auditlog_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// env is a real store in a temporary directory with a fixed KEK.
type env struct {
	path   string
	kek    []byte
	db     *sqlite.DB
	sealer *keys.Sealer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	e := &env{path: filepath.Join(t.TempDir(), "writ.db"), kek: kek}
	e.reopenDB(t)
	return e
}

func (e *env) reopenDB(t testing.TB) {
	t.Helper()
	if e.db != nil {
		e.db.Close()
	}
	db, err := sqlite.Open(context.Background(), e.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.sealer, err = keys.NewSealer(e.kek)
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) config() auditlog.Config {
	return auditlog.Config{Backend: e.db.Audit(), Keys: e.db, Sealer: e.sealer, CheckpointEvery: 1 << 30, CheckpointInterval: time.Hour}
}

func (e *env) open(t testing.TB, cfg auditlog.Config) *auditlog.Log {
	t.Helper()
	l, err := auditlog.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func (e *env) verify(t testing.TB) (*auditlog.VerifyReport, error) {
	t.Helper()
	trusted, _, err := auditlog.StoredVerifiers(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	return auditlog.Verify(context.Background(), e.db.Audit(), auditlog.VerifyOptions{Trusted: trusted})
}

func sampleEvent(i int) audit.Event {
	return audit.Event{
		Type:      audit.AccessAllowed,
		SpiffeID:  "spiffe://writ.local/agent/mail" + strconv.Itoa(i%3),
		Instance:  "inst_" + strconv.Itoa(i%7),
		Task:      "task_" + strconv.Itoa(i%5),
		Target:    "https://api.example.com/v1/messages",
		Action:    "POST",
		Decision:  "allow",
		Policy:    "mail@3",
		Rule:      "send",
		RequestID: "req_" + strconv.Itoa(i),
		LatencyUS: int64(i + 1),
		Details:   map[string]string{"n": strconv.Itoa(i)},
	}
}

func appendN(t testing.TB, l *auditlog.Log, n int) []auditlog.Entry {
	t.Helper()
	out := make([]auditlog.Entry, n)
	for i := range n {
		en, err := l.Append(context.Background(), sampleEvent(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out[i] = en
	}
	return out
}

func TestAppendConcurrentThenVerify(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	const writers, each = 16, 50
	var wg sync.WaitGroup
	seen := make(map[int64]string)
	var mu sync.Mutex
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				en, err := l.Append(context.Background(), sampleEvent(w*each+i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if prev, dup := seen[en.Index]; dup {
					errs <- fmt.Errorf("index %d given to %s and %s", en.Index, prev, en.ID)
				}
				seen[en.Index] = en.ID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := l.Size(); got != writers*each {
		t.Fatalf("Size = %d, want %d", got, writers*each)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rep, err := e.verify(t)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Size != writers*each || rep.Latest == nil || rep.Latest.Size != rep.Size || rep.Unsigned != 0 {
		t.Errorf("report = %+v, want %d events all covered by the final checkpoint", rep, writers*each)
	}
	if _, err := l.Append(context.Background(), sampleEvent(0)); !errors.Is(err, auditlog.ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
}

func checkpointSizes(t *testing.T, e *env) []int64 {
	t.Helper()
	list, err := e.db.Audit().ListCheckpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, c := range list {
		out = append(out, c.Size)
	}
	return out
}

func TestCheckpointEveryN(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.CheckpointEvery = 10
	l := e.open(t, cfg)
	appendN(t, l, 35)
	// Each checkpoint is followed by its audit.checkpoint event, which
	// does not count towards the next ten.
	if got, want := checkpointSizes(t, e), []int64{10, 21, 32}; !slices.Equal(got, want) {
		t.Fatalf("checkpoints at %v, want %v", got, want)
	}
	ctx := context.Background()
	recs, err := e.db.Audit().SearchRecords(ctx, auditlog.Query{Type: audit.AuditCheckpoint, Ascending: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Index != 10 || recs[1].Index != 21 {
		t.Fatalf("checkpoint events at %v, want indexes 10, 21, 32", recs)
	}
	ev, _ := recs[1].Event()
	cp, err := auditlog.OpenCheckpoint([]byte(ev.Details["checkpoint"]), l.Trusted())
	if err != nil || cp.Size != 21 || ev.Details["size"] != "21" || ev.Details["root"] != cp.Hash.String() {
		t.Errorf("checkpoint event %+v does not carry the signed checkpoint of size 21: %v", ev, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := checkpointSizes(t, e); got[len(got)-1] != 38 {
		t.Errorf("after Close checkpoints are %v, want a final one at 38", got)
	}
}

func TestCheckpointInterval(t *testing.T) {
	// In a synctest bubble the clock moves only when every goroutine
	// of the test (the writer, the syncer, the store's indexer) waits,
	// so the interval's ticker cannot fire in the middle of the appends
	// however slow the machine is.
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		cfg := e.config()
		cfg.CheckpointInterval = 20 * time.Millisecond
		l := e.open(t, cfg)
		appendN(t, l, 3)
		synctest.Wait()
		if stored, cp := l.LatestCheckpoint(); stored.Note != nil {
			t.Fatalf("checkpoint of size %d signed before the interval passed", cp.Size)
		}
		time.Sleep(cfg.CheckpointInterval)
		synctest.Wait()
		stored, cp := l.LatestCheckpoint()
		if stored.Note == nil {
			t.Fatal("no checkpoint once the interval passed")
		}
		if cp.Size != 3 {
			t.Fatalf("interval checkpoint has size %d, want 3", cp.Size)
		}
		// Idle for several intervals: only the checkpoint's own event
		// is new, which does not call for another checkpoint.
		time.Sleep(5 * cfg.CheckpointInterval)
		synctest.Wait()
		if got := checkpointSizes(t, e); len(got) != 1 {
			t.Errorf("idle log signed checkpoints %v, want just [3]", got)
		}
	})
}

func TestOpenChecksStoredLog(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		tamper string
		want   string
	}{
		{"truncated below the checkpoint", `DELETE FROM audit_events WHERE idx >= 15`, "events were removed"},
		{"stored hashes rewritten", `UPDATE audit_events SET hashes = randomblob(length(hashes)) WHERE idx = 15`, "does not match the signed checkpoint"},
		{"unsigned tail edited", `UPDATE audit_events SET data = replace(data, 'POST', 'GET') WHERE idx = 21`, "index 21"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			l := e.open(t, e.config())
			appendN(t, l, 20)
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			// Events after the final checkpoint, as after a crash.
			l2 := e.open(t, e.config())
			appendN(t, l2, 3)
			l2.Close(ctx)
			e.exec(t, `DELETE FROM audit_checkpoints WHERE size > 20`)
			e.exec(t, c.tamper)
			_, err := auditlog.Open(ctx, e.config())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open of a tampered log: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestOpenWrongKEK(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	l.Close(context.Background())
	cfg := e.config()
	other := make([]byte, keys.KEKSize)
	cfg.Sealer, _ = keys.NewSealer(other)
	if _, err := auditlog.Open(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("Open with another KEK: %v, want an unseal error", err)
	}
}

func TestAppendFailsClosed(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	appendN(t, l, 2)
	e.db.Close() // the store goes away under the log
	if err := l.Emit(context.Background(), sampleEvent(3)); err == nil {
		t.Fatal("Emit succeeded with the store closed; enforcement would not fail closed")
	}
}

func TestAppendDuplicateIDFailsAlone(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	ctx := context.Background()
	dup := sampleEvent(0)
	dup.ID = "evt_fixed"
	if _, err := l.Append(ctx, dup); err != nil {
		t.Fatal(err)
	}
	// Concurrent appends share group commits with the duplicate.
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := sampleEvent(i)
			if i == 7 {
				ev = dup
			}
			_, errs[i] = l.Append(ctx, ev)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i == 7 {
			if !errors.Is(err, store.ErrExists) {
				t.Errorf("duplicate id: %v, want ErrExists", err)
			}
		} else if err != nil {
			t.Errorf("append %d failed next to a duplicate: %v", i, err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.verify(t); err != nil || rep.Size != 20 {
		t.Fatalf("Verify = %+v, %v; want 20 events", rep, err)
	}
}

func TestAppendNormalises(t *testing.T) {
	e := newEnv(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	cfg := e.config()
	cfg.Now = func() time.Time { return now }
	l := e.open(t, cfg)
	ctx := context.Background()
	if _, err := l.Append(ctx, audit.Event{SpiffeID: "x"}); err == nil {
		t.Error("Append without a type succeeded")
	}
	en, err := l.Append(ctx, audit.Event{Type: audit.AccessDenied, Reason: "bad \xff byte", Details: map[string]string{"k\xfe": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(en.ID, "evt_") || !en.Time.Equal(now) || en.Time.Location() != time.UTC {
		t.Errorf("Append filled id %q time %v, want evt_... and now in UTC", en.ID, en.Time)
	}
	if en.Reason != "bad \uFFFD byte" || en.Details["k\uFFFD"] != "v" {
		t.Errorf("invalid UTF-8 not replaced: %q %v", en.Reason, en.Details)
	}
	r, err := e.db.Audit().RecordByID(ctx, en.ID)
	if err != nil {
		t.Fatal(err)
	}
	back, err := r.Event()
	if err != nil || back.Reason != en.Reason || !back.Time.Equal(now) {
		t.Errorf("stored event %+v, %v; want %+v", back, err, en.Event)
	}
	// A time near now is kept; one far from it is recorded as reported
	// and replaced by now, so that time searches stay exact.
	near := now.Add(-time.Minute)
	if en, _ := l.Append(ctx, audit.Event{Type: audit.TaskOpened, Time: near}); !en.Time.Equal(near) || en.Details != nil {
		t.Errorf("time a minute ago became %v %v", en.Time, en.Details)
	}
	far := now.Add(-time.Hour)
	en, _ = l.Append(ctx, audit.Event{Type: audit.TaskOpened, Time: far, Details: map[string]string{"a": "b"}})
	if !en.Time.Equal(now) || en.Details["reported_time"] != far.UTC().Format(time.RFC3339Nano) || en.Details["a"] != "b" {
		t.Errorf("time an hour ago became %v %v", en.Time, en.Details)
	}
}

// TestAppendBatch: a batch is appended in order with consecutive indexes;
// a duplicate id in it fails alone, and the error says which.
func TestAppendBatch(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	ctx := context.Background()
	first := sampleEvent(0)
	first.ID = "evt_first"
	if _, err := l.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	var es []audit.Event
	for i := range 50 {
		es = append(es, sampleEvent(i+1))
	}
	entries, err := l.AppendBatch(ctx, es, audit.Written)
	if err != nil {
		t.Fatal(err)
	}
	for i, en := range entries {
		if en.Index != int64(i+1) || en.RequestID != es[i].RequestID || en.ID == "" {
			t.Fatalf("entry %d = index %d, request %s, id %q", i, en.Index, en.RequestID, en.ID)
		}
	}
	es[3] = first
	entries, err = l.AppendBatch(ctx, es[:5], audit.Synced)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("batch with a duplicate id: %v, want ErrExists", err)
	}
	if entries[3].ID != "" || entries[2].ID == "" || entries[4].ID == "" {
		t.Fatalf("entries of a batch with one duplicate: %+v", entries)
	}
	// Once Synced returned, the events are in the log for readers.
	if got, err := e.db.Audit().RecordByID(ctx, entries[4].ID); err != nil || got.Index != entries[4].Index {
		t.Fatalf("RecordByID after AppendBatch = %d, %v", got.Index, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.verify(t); err != nil || rep.Size != 55 {
		t.Fatalf("Verify = %+v, %v; want 55 events", rep, err)
	}
}

func TestNewEventID(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	a, err := audit.NewEventID(now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := audit.NewEventID(now)
	if a == b || !strings.HasPrefix(a, "evt_") || len(a) != 4+26 {
		t.Fatalf("NewEventID = %q, %q", a, b)
	}
}

// TestObserve: the observer sees every event written, once, in index
// order, with its index, id and time as stored, and nothing of a batch
// the store refused (here a duplicate id, written one by one after the
// batch failed: the others are seen, the duplicate is not).
func TestObserve(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	ctx := context.Background()
	var (
		mu   sync.Mutex
		seen []auditlog.Entry
	)
	l.Observe(func(idx int64, ev *audit.Event) {
		mu.Lock()
		seen = append(seen, auditlog.Entry{Index: idx, Event: *ev})
		mu.Unlock()
	})
	first := sampleEvent(0)
	first.ID = "evt_first"
	var want []auditlog.Entry
	en, err := l.Append(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, en)
	var es []audit.Event
	for i := range 20 {
		es = append(es, sampleEvent(i+1))
	}
	es[7] = first // refused
	entries, err := l.AppendBatch(ctx, es, audit.Synced)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("batch with a duplicate id: %v", err)
	}
	for i, en := range entries {
		if i != 7 {
			want = append(want, en)
		}
	}
	l.Observe(nil)
	if _, err := l.Append(ctx, sampleEvent(99)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("observer saw %d events, want %d", len(seen), len(want))
	}
	for i := range want {
		g, w := seen[i], want[i]
		if g.Index != w.Index || g.ID != w.ID || !g.Time.Equal(w.Time) || g.RequestID != w.RequestID {
			t.Fatalf("event %d seen as index %d id %s time %v, appended as %d %s %v", i, g.Index, g.ID, g.Time, w.Index, w.ID, w.Time)
		}
	}
}
