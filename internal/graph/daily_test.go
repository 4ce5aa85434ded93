package graph

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// windowLog is a log of random accesses over five days from t0, folded.
func windowLog(t testing.TB, seed uint64) *testLog {
	tl := newTestLog(t)
	r := rand.New(rand.NewPCG(seed, 3))
	var es []audit.Event
	for i := range 400 {
		id := "spiffe://writ.local/agent/a" + strconv.Itoa(r.IntN(3))
		e := call(r.IntN(4) != 0, id, "inst_"+strconv.Itoa(r.IntN(2)), "", []string{"", "ann"}[r.IntN(2)],
			"Service/svc"+strconv.Itoa(r.IntN(3)), []string{"", "key"}[r.IntN(2)])
		e.ID = "ev" + strconv.Itoa(i)
		e.Time = t0.Add(time.Duration(r.Int64N(int64(5 * 24 * time.Hour))))
		es = append(es, e)
	}
	tl.emit(t, es...)
	return tl
}

// sameAnswer fails t unless q is answered alike by l (the daily and
// all-time rollups where they apply) and by summing every hour.
func sameAnswer(t testing.TB, l *Lineage, q Query) {
	t.Helper()
	ctx := context.Background()
	got, err := l.Query(ctx, q)
	if err != nil {
		t.Fatalf("Query(%+v): %v", q, err)
	}
	ref := *l
	ref.HourlyOnly = true
	want, err := (&ref).Query(ctx, q)
	if err != nil {
		t.Fatalf("hourly Query(%+v): %v", q, err)
	}
	if !reflect.DeepEqual(got.Nodes, want.Nodes) || !reflect.DeepEqual(got.Edges, want.Edges) || !reflect.DeepEqual(got.Paths, want.Paths) {
		t.Fatalf("Query(since %v, until %v, %+v): the rollups answer %d nodes %d edges, the hours %d nodes %d edges\n%+v\n%+v",
			q.Since, q.Until, q, len(got.Nodes), len(got.Edges), len(want.Nodes), len(want.Edges), got.Edges, want.Edges)
	}
}

// TestDailyRollupProperty: random windows (open ends, inside an hour, on
// hour and day boundaries, from before the first access) and filters are
// answered by the daily and all-time rollups exactly as by summing hours.
func TestDailyRollupProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	tl := windowLog(t, seed)
	l := tl.lineage()
	r := rand.New(rand.NewPCG(seed, 4))
	at := func() time.Time {
		v := t0.Add(-36*time.Hour + time.Duration(r.Int64N(int64(8*24*time.Hour))))
		switch r.IntN(4) {
		case 0:
			return v.Truncate(time.Hour)
		case 1:
			return v.Truncate(24 * time.Hour)
		}
		return v
	}
	for i := range 40 {
		var q Query
		if r.IntN(4) != 0 {
			q.Since = at()
		}
		if r.IntN(3) == 0 {
			q.Until = at()
		}
		if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
			q.Since, q.Until = q.Until, q.Since.Add(time.Second)
		}
		switch i % 5 {
		case 1:
			q.Identity = "spiffe://writ.local/agent/a1"
		case 2:
			q.To = "service:svc2"
		case 3:
			q.Credential = "key"
		}
		sameAnswer(t, l, q)
	}
	// From before the first access: the all-time rollup.
	sameAnswer(t, l, Query{Since: t0.Add(-time.Hour)})
	sameAnswer(t, l, Query{Since: t0.Add(-400 * 24 * time.Hour)})
}

// FuzzDailyRollup: any window, in minutes around the log, is answered by
// the rollups as by summing hours.
func FuzzDailyRollup(f *testing.F) {
	f.Add(int64(0), int64(0), false, false)
	f.Add(int64(-60), int64(0), true, false)
	f.Add(int64(24*60-1), int64(3*24*60+1), true, true)
	f.Add(int64(15*60), int64(15*60+1), true, true)
	f.Add(int64(0), int64(2*24*60), false, true)
	tl := windowLog(f, 1)
	l := tl.lineage()
	f.Fuzz(func(t *testing.T, since, until int64, sinceSet, untilSet bool) {
		const lim = 1 << 30
		if since < -lim || since > lim || until < -lim || until > lim {
			return
		}
		var q Query
		if sinceSet {
			q.Since = t0.Add(time.Duration(since) * time.Minute)
		}
		if untilSet {
			q.Until = t0.Add(time.Duration(until) * time.Minute)
		}
		if q.Check() != nil {
			return
		}
		sameAnswer(t, l, q)
	})
}
