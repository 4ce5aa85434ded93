package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// AuditOpener returns a fresh, empty audit log backend. It registers its
// own cleanup.
type AuditOpener func(t *testing.T) auditlog.Backend

// RunAudit runs the conformance suite of the audit log storage
// (auditlog.Backend) against backends opened by open.
func RunAudit(t *testing.T, open AuditOpener) {
	t.Run("AppendRead", func(t *testing.T) { testAuditAppendRead(t, open(t)) })
	t.Run("AppendIsAtomic", func(t *testing.T) { testAuditAppendAtomic(t, open(t)) })
	t.Run("Hashes", func(t *testing.T) { testAuditHashes(t, open(t)) })
	t.Run("Search", func(t *testing.T) { testAuditSearch(t, open(t)) })
	t.Run("SearchAcrossBlocks", func(t *testing.T) { testAuditSearchBlocks(t, open(t)) })
	t.Run("Checkpoints", func(t *testing.T) { testAuditCheckpoints(t, open(t)) })
}

// auditLog builds records with correct tlog hashes, as the audit log does.
type auditLog struct {
	hashes []tlog.Hash // every stored hash, by stored-hash index
	recs   []auditlog.Record
	events []audit.Event
}

func (l *auditLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

// add builds the next record for e.
func (l *auditLog) add(t *testing.T, e audit.Event) auditlog.Record {
	t.Helper()
	data, err := e.MarshalCanonical()
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(l.recs))
	h, err := tlog.StoredHashes(n, data, l)
	if err != nil {
		t.Fatal(err)
	}
	l.hashes = append(l.hashes, h...)
	r := auditlog.Record{Index: n, Data: data, Hashes: h, Keys: auditlog.KeysOf(&e)}
	l.recs = append(l.recs, r)
	l.events = append(l.events, e)
	return r
}

// auditT0 is the time of the first test event.
func auditT0() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

func auditEvent(i int) audit.Event {
	types := []audit.Type{audit.AccessAllowed, audit.AccessDenied, audit.TokenMinted}
	decisions := []string{"allow", "deny", ""}
	spiffe := []string{"spiffe://writ.local/agent/mail", "spiffe://writ.local/agent/mail/drafts", "spiffe://writ.local/agent/mailer", ""}
	return audit.Event{
		ID:         fmt.Sprintf("evt_%06d", i),
		Time:       auditT0().Add(time.Duration(i) * time.Second),
		Type:       types[i%3],
		SpiffeID:   spiffe[i%4],
		Instance:   fmt.Sprintf("inst_%d", i%5),
		Task:       fmt.Sprintf("task_%d", i%7),
		Decision:   decisions[i%3],
		Target:     "https://api.example.com/v1",
		Details:    map[string]string{"i": fmt.Sprint(i)},
		OnBehalfOf: "alice@example.com",
	}
}

func appendAudit(t *testing.T, b auditlog.Backend, l *auditLog, from, n int) {
	t.Helper()
	var recs []auditlog.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, l.add(t, auditEvent(i)))
	}
	if err := b.AppendRecords(context.Background(), recs); err != nil {
		t.Fatalf("AppendRecords(%d..%d): %v", from, from+n-1, err)
	}
}

func testAuditAppendRead(t *testing.T, b auditlog.Backend) {
	ctx := context.Background()
	if n, err := b.RecordCount(ctx); err != nil || n != 0 {
		t.Fatalf("RecordCount of empty log = %d, %v; want 0", n, err)
	}
	l := &auditLog{}
	appendAudit(t, b, l, 0, 10)
	appendAudit(t, b, l, 10, 5)
	if n, err := b.RecordCount(ctx); err != nil || n != 15 {
		t.Fatalf("RecordCount = %d, %v; want 15", n, err)
	}
	got, err := b.ReadRecords(ctx, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("ReadRecords(3, 4) returned %d records", len(got))
	}
	for i, r := range got {
		want := l.recs[3+i]
		if r.Index != want.Index || string(r.Data) != string(want.Data) || !slices.Equal(r.Hashes, want.Hashes) {
			t.Errorf("ReadRecords[%d] = %+v, want %+v", i, r, want)
		}
		if r.Keys != nil && *r.Keys != *want.Keys {
			t.Errorf("ReadRecords[%d].Keys = %+v, want %+v (the searchable fields of the appended event)", i, *r.Keys, *want.Keys)
		}
	}
	if got, _ := b.ReadRecords(ctx, 14, 100); len(got) != 1 || got[0].Index != 14 {
		t.Errorf("ReadRecords(14, 100) = %d records, want only index 14", len(got))
	}
	if got, _ := b.ReadRecords(ctx, 15, 100); len(got) != 0 {
		t.Errorf("ReadRecords past the end = %d records, want 0", len(got))
	}
	r, err := b.RecordByID(ctx, "evt_000007")
	if err != nil || r.Index != 7 {
		t.Fatalf("RecordByID(evt_000007) = index %d, %v; want 7", r.Index, err)
	}
	e, err := r.Event()
	if err != nil || e.Task != l.events[7].Task || !e.Time.Equal(l.events[7].Time) {
		t.Errorf("RecordByID event = %+v, %v; want %+v", e, err, l.events[7])
	}
	if _, err := b.RecordByID(ctx, "evt_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordByID(missing): %v, want ErrNotFound", err)
	}
}

func testAuditAppendAtomic(t *testing.T, b auditlog.Backend) {
	ctx := context.Background()
	l := &auditLog{}
	appendAudit(t, b, l, 0, 3)

	// A gap in the indexes is refused and stores nothing.
	gap := &auditLog{}
	for i := range 5 {
		gap.add(t, auditEvent(100+i))
	}
	if err := b.AppendRecords(ctx, gap.recs[4:]); err == nil {
		t.Fatal("AppendRecords with index 4 onto a log of 3 succeeded")
	}
	// A duplicate id in the middle of a batch fails the whole batch.
	batch := []auditlog.Record{l.add(t, auditEvent(3)), l.add(t, auditEvent(1))}
	if err := b.AppendRecords(ctx, batch); !errors.Is(err, store.ErrExists) {
		t.Fatalf("AppendRecords with a repeated id: %v, want ErrExists", err)
	}
	if n, _ := b.RecordCount(ctx); n != 3 {
		t.Fatalf("after failed appends RecordCount = %d, want 3 (nothing stored)", n)
	}
	if _, err := b.RecordByID(ctx, "evt_000003"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("first record of the failed batch was stored: %v", err)
	}
}

func testAuditHashes(t *testing.T, b auditlog.Backend) {
	ctx := context.Background()
	l := &auditLog{}
	appendAudit(t, b, l, 0, 37)
	all := make([]int64, len(l.hashes))
	for i := range all {
		all[i] = int64(i)
	}
	got, err := b.ReadHashes(ctx, all)
	if err != nil {
		t.Fatalf("ReadHashes(all %d): %v", len(all), err)
	}
	if !slices.Equal(got, l.hashes) {
		t.Fatal("ReadHashes differs from the hashes appended")
	}
	// Unsorted and repeated indexes, as tlog may ask.
	idx := []int64{40, 3, 3, 0, int64(len(l.hashes) - 1)}
	got, err = b.ReadHashes(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range idx {
		if got[i] != l.hashes[x] {
			t.Errorf("ReadHashes(%d) wrong", x)
		}
	}
	if _, err := b.ReadHashes(ctx, []int64{int64(len(l.hashes))}); err == nil {
		t.Error("ReadHashes past the end succeeded")
	}
	want, _ := tlog.TreeHash(37, l)
	th, err := tlog.TreeHash(37, hashReader{ctx, b})
	if err != nil || th != want {
		t.Errorf("TreeHash through the backend = %v, %v; want %v", th, err, want)
	}
}

type hashReader struct {
	ctx context.Context
	b   auditlog.Backend
}

func (h hashReader) ReadHashes(idx []int64) ([]tlog.Hash, error) { return h.b.ReadHashes(h.ctx, idx) }

// expect runs q against both the backend and auditlog.Query.Match over every
// event, and compares.
func expectSearch(t *testing.T, b auditlog.Backend, l *auditLog, name string, q auditlog.Query) []auditlog.Record {
	t.Helper()
	got, err := b.SearchRecords(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: SearchRecords: %v", name, err)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	var want []int64
	for i := range l.events {
		j := i
		if !q.Ascending {
			j = len(l.events) - 1 - i
		}
		if q.Match(int64(j), &l.events[j]) && len(want) < limit {
			want = append(want, int64(j))
		}
	}
	var gotIdx []int64
	for _, r := range got {
		gotIdx = append(gotIdx, r.Index)
	}
	if !slices.Equal(gotIdx, want) {
		t.Errorf("%s: SearchRecords(%+v) = %v, want %v", name, q, gotIdx, want)
	}
	return got
}

func testAuditSearch(t *testing.T, b auditlog.Backend) {
	l := &auditLog{}
	appendAudit(t, b, l, 0, 120)
	for _, c := range []struct {
		name string
		q    auditlog.Query
	}{
		{"all", auditlog.Query{}},
		{"limit", auditlog.Query{Limit: 7}},
		{"ascending", auditlog.Query{Ascending: true, Limit: 9}},
		{"spiffe id exact", auditlog.Query{SpiffeID: "spiffe://writ.local/agent/mail/drafts"}},
		{"spiffe id path prefix", auditlog.Query{SpiffeID: "spiffe://writ.local/agent/mail"}},
		{"spiffe id prefix with slash", auditlog.Query{SpiffeID: "spiffe://writ.local/agent/"}},
		{"spiffe id none", auditlog.Query{SpiffeID: "spiffe://writ.local/agent/mai"}},
		{"instance", auditlog.Query{Instance: "inst_3"}},
		{"task", auditlog.Query{Task: "task_6", Limit: 5}},
		{"type", auditlog.Query{Type: audit.AccessDenied}},
		{"decision", auditlog.Query{Decision: "deny"}},
		{"combined", auditlog.Query{Instance: "inst_1", Type: audit.AccessAllowed, Decision: "allow"}},
		{"since", auditlog.Query{Since: auditT0().Add(100 * time.Second)}},
		{"since exact ns", auditlog.Query{Since: auditT0().Add(100*time.Second + time.Nanosecond)}},
		{"until", auditlog.Query{Until: auditT0().Add(10 * time.Second), Ascending: true}},
		{"window", auditlog.Query{Since: auditT0().Add(30 * time.Second), Until: auditT0().Add(60 * time.Second), Task: "task_2"}},
		{"before", auditlog.Query{Before: 50, Limit: 10}},
		{"after", auditlog.Query{After: 110, Ascending: true}},
		{"after and type", auditlog.Query{After: 60, Type: audit.TokenMinted, Ascending: true, Limit: 4}},
		{"nothing", auditlog.Query{Task: "task_404"}},
	} {
		expectSearch(t, b, l, c.name, c.q)
	}
	// Paging back with Before gives every match once.
	q := auditlog.Query{Instance: "inst_2", Limit: 6}
	var seen int
	for {
		page := expectSearch(t, b, l, "page", q)
		seen += len(page)
		if len(page) < q.Limit {
			break
		}
		q.Before = page[len(page)-1].Index
	}
	if seen != 24 {
		t.Errorf("paging through inst_2 saw %d events, want 24", seen)
	}
}

// testAuditSearchBlocks searches a log long enough to span several blocks
// of a backend's index layout, with a sparse match.
func testAuditSearchBlocks(t *testing.T, b auditlog.Backend) {
	if testing.Short() {
		t.Skip("appends 10000 events")
	}
	l := &auditLog{}
	for from := 0; from < 10000; from += 2500 {
		appendAudit(t, b, l, from, 2500)
	}
	expectSearch(t, b, l, "sparse task", auditlog.Query{Task: "task_3", Instance: "inst_4", Limit: 1000})
	expectSearch(t, b, l, "sparse ascending", auditlog.Query{Task: "task_3", Instance: "inst_4", Ascending: true, Limit: 50})
	expectSearch(t, b, l, "window", auditlog.Query{Since: auditT0().Add(4090 * time.Second), Until: auditT0().Add(8200 * time.Second), Type: audit.AccessDenied, Limit: 2000})
}

func testAuditCheckpoints(t *testing.T, b auditlog.Backend) {
	ctx := context.Background()
	if _, err := b.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestCheckpoint of empty log: %v, want ErrNotFound", err)
	}
	for _, c := range []auditlog.StoredCheckpoint{
		{Size: 10, Note: []byte("ten"), CreatedAt: auditT0()},
		{Size: 3, Note: []byte("three"), CreatedAt: auditT0()},
		{Size: 20, Note: []byte("twenty"), CreatedAt: auditT0().Add(time.Minute)},
		{Size: 10, Note: []byte("ten again"), CreatedAt: auditT0().Add(time.Hour)},
	} {
		if err := b.PutCheckpoint(ctx, c); err != nil {
			t.Fatalf("PutCheckpoint(%d): %v", c.Size, err)
		}
	}
	latest, err := b.LatestCheckpoint(ctx)
	if err != nil || latest.Size != 20 || string(latest.Note) != "twenty" || !latest.CreatedAt.Equal(auditT0().Add(time.Minute)) {
		t.Errorf("LatestCheckpoint = %+v, %v; want size 20", latest, err)
	}
	list, err := b.ListCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, c := range list {
		sizes = append(sizes, c.Size)
	}
	if !slices.Equal(sizes, []int64{3, 10, 20}) || string(list[1].Note) != "ten again" {
		t.Errorf("ListCheckpoints sizes %v (note[1] %q), want [3 10 20] with the replaced note", sizes, list[1].Note)
	}
}
