package auditfeed_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditfeed"
	"github.com/writ-dev/writ/internal/auditlog"
)

// records is a log in memory: ReadRecords only.
type records [][]byte

func (r records) ReadRecords(_ context.Context, from int64, limit int) ([]auditlog.Record, error) {
	var out []auditlog.Record
	for i := from; i < int64(len(r)) && len(out) < limit; i++ {
		out = append(out, auditlog.Record{Index: i, Data: r[i]})
	}
	return out, nil
}

// eventData is the same log with the cheap read, which hands out a buffer
// it reuses, as the SQLite store's sql.RawBytes are.
type eventData struct{ records }

func (r eventData) ReadEventData(_ context.Context, from int64, limit int, fn func(int64, []byte) error) (int, error) {
	buf := make([]byte, 0, 4096)
	n := 0
	for i := from; i < int64(len(r.records)) && n < limit; i++ {
		buf = append(buf[:0], r.records[i]...)
		n++
		if err := fn(i, buf); err != nil {
			return n, err
		}
		for j := range buf {
			buf[j] = 'x' // what the driver does with the next row
		}
	}
	return n, nil
}

func (eventData) ReadRecords(context.Context, int64, int) ([]auditlog.Record, error) {
	return nil, errors.New("ReadRecords called although ReadEventData is there")
}

func testLog(t *testing.T, n int) records {
	var r records
	for i := range n {
		e := audit.Event{ID: fmt.Sprintf("evt_%04d", i), Time: time.Unix(int64(1000+i), 0).UTC(), Type: audit.AccessAllowed,
			SpiffeID: "spiffe://writ.local/a", Details: map[string]string{"n": fmt.Sprint(i)}}
		if i%3 == 0 {
			e.Type = audit.AccessDenied
		}
		data, err := e.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		if i == 7 {
			data = []byte(`{"id":"evt_0007","type":`) // damaged
		}
		r = append(r, data)
	}
	return r
}

// TestReadBothBackends: the cheap read and ReadRecords give the same
// events, counts and damaged records, across pages, with a type filter,
// and events do not share the reader's reused buffer.
func TestReadBothBackends(t *testing.T) {
	ctx := context.Background()
	log := testLog(t, 2*auditfeed.PageSize+5)
	denied := func(ty audit.Type) bool { return ty == audit.AccessDenied }
	type got struct {
		next int64
		st   auditfeed.Stats
		evs  []audit.Event
	}
	read := func(r auditfeed.Records, from int64, max int) got {
		var g got
		var err error
		g.next, g.st, err = auditfeed.Read(ctx, r, from, max, denied, func(idx int64, e *audit.Event) error {
			if want := fmt.Sprintf("evt_%04d", idx); e.ID != want {
				t.Errorf("event %d has id %q, want %q", idx, e.ID, want)
			}
			g.evs = append(g.evs, *e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	for _, c := range []struct {
		from int64
		max  int
	}{{0, 0}, {3, 10}, {0, auditfeed.PageSize + 1}, {int64(len(log)), 0}} {
		a, b := read(log, c.from, c.max), read(eventData{log}, c.from, c.max)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("from %d max %d: ReadRecords gave next %d %+v, ReadEventData next %d %+v", c.from, c.max, a.next, a.st, b.next, b.st)
		}
		if c.from == 0 && c.max == 0 {
			if a.next != int64(len(log)) || a.st.Read != len(log) || a.st.Unreadable != 1 || a.st.FirstUnreadable != 7 {
				t.Errorf("whole log: next %d, stats %+v", a.next, a.st)
			}
			if want := (len(log)-1)/3 + 1; a.st.Decoded != want || len(a.evs) != want {
				t.Errorf("whole log: %d decoded, %d events, want %d denied", a.st.Decoded, len(a.evs), want)
			}
		}
	}
}

// TestReadStopsAtError: an error from fn stops the read at that record,
// which is not counted, on both backends.
func TestReadStopsAtError(t *testing.T) {
	log := testLog(t, 20)
	stop := errors.New("stop")
	for _, r := range []auditfeed.Records{log, eventData{log}} {
		next, st, err := auditfeed.Read(context.Background(), r, 0, 0, nil, func(idx int64, _ *audit.Event) error {
			if idx == 12 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || next != 12 || st.Read != 12 {
			t.Errorf("%T: next %d, read %d, err %v; want 12, 12, stop", r, next, st.Read, err)
		}
	}
}
