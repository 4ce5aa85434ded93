package auditlog_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

// tamperLog makes a closed log of 40 events with checkpoints at 10, 21
// (10 events + the checkpoint event + 10) and at the end.
func tamperLog(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	l := e.open(t, e.config())
	ctx := context.Background()
	for i := range 40 {
		if _, err := l.Append(ctx, sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
		if i == 9 || i == 19 {
			if _, _, err := l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.reopenDB(t) // closing the store brings the search index up to date
	if rep, err := e.verify(t); err != nil || rep.Indexed != rep.Size {
		t.Fatalf("untampered log: verify = %+v, %v; want it to verify with every event indexed", rep, err)
	}
	return e
}

// raw opens the store file directly with the SQLite driver, as someone
// with access to the data directory could, bypassing writ.
func (e *env) raw(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *env) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := e.raw(t).Exec(query, args...); err != nil {
		t.Fatalf("tamper: %s: %v", query, err)
	}
}

// execIndex runs query on the audit search index file directly.
func (e *env) execIndex(t *testing.T, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+sqlite.AuditIndexPath(e.path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if res, err := db.Exec(query, args...); err != nil {
		t.Fatalf("tamper: %s: %v", query, err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tamper: %s changed %d rows, want 1", query, n)
	}
}

// rows returns the data and hashes columns of every row, by index.
func (e *env) rows(t *testing.T) (data []string, hashes [][]byte) {
	t.Helper()
	rows, err := e.raw(t).Query(`SELECT data, hashes FROM audit_events ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var h []byte
		if err := rows.Scan(&d, &h); err != nil {
			t.Fatal(err)
		}
		data, hashes = append(data, d), append(hashes, h)
	}
	return data, hashes
}

// forge returns the canonical encoding of a made-up event.
func forge(t *testing.T, e audit.Event) string {
	t.Helper()
	b, err := e.MarshalCanonical()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerifyDetectsTampering(t *testing.T) {
	for _, c := range []struct {
		name      string
		tamper    func(t *testing.T, e *env)
		wantIndex int64
		wantText  string
	}{
		{"edit an event", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET data = replace(data, '"decision":"allow"', '"decision":"deny"') WHERE idx = 5`)
		}, 5, "does not match its stored leaf hash"},
		{"edit the JSON without changing its meaning", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET data = replace(data, '{"id"', '{ "id"') WHERE idx = 33`)
		}, 33, "does not match its stored leaf hash"},
		{"delete an event", func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_events WHERE idx = 7`)
		}, 7, "missing"},
		{"delete the last events", func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_events WHERE idx >= 30`)
		}, 30, "missing"},
		{"swap two events", func(t *testing.T, e *env) {
			data, _ := e.rows(t)
			e.exec(t, `UPDATE audit_events SET data = '{}' WHERE idx = 12`)
			e.exec(t, `UPDATE audit_events SET data = ? WHERE idx = 17`, data[12])
			e.exec(t, `UPDATE audit_events SET data = ? WHERE idx = 12`, data[17])
		}, 12, "does not match its stored leaf hash"},
		{"swap two rows with their hashes", func(t *testing.T, e *env) {
			data, hashes := e.rows(t)
			e.exec(t, `UPDATE audit_events SET data = '{}' WHERE idx = 3`)
			e.exec(t, `UPDATE audit_events SET data = ?, hashes = ? WHERE idx = 8`, data[3], hashes[3])
			e.exec(t, `UPDATE audit_events SET data = ?, hashes = ? WHERE idx = 3`, data[8], hashes[8])
		}, 3, "stored tree hashes"},
		{"insert an event", func(t *testing.T, e *env) {
			// Shift 14.. up by one and put a forged event at 14,
			// reusing the hashes of the event it displaced.
			_, hashes := e.rows(t)
			e.exec(t, `UPDATE audit_events SET idx = -idx - 1 WHERE idx >= 14`)
			e.exec(t, `UPDATE audit_events SET idx = -idx WHERE idx < 0`)
			e.exec(t, `INSERT INTO audit_events (idx, data, hashes, id) VALUES (14, ?, ?, 'evt_forged')`,
				forge(t, audit.Event{ID: "evt_forged", Type: audit.AccessAllowed, SpiffeID: "spiffe://writ.local/agent/x"}), hashes[14])
		}, 14, "does not match its stored leaf hash"},
		{"append an event", func(t *testing.T, e *env) {
			_, hashes := e.rows(t)
			e.exec(t, `INSERT INTO audit_events (idx, data, hashes, id) VALUES (?, ?, ?, 'evt_forged')`, len(hashes),
				forge(t, audit.Event{ID: "evt_forged", Type: audit.AccessAllowed}), hashes[len(hashes)-1])
		}, 42, "does not match its stored leaf hash"},
		{"edit an event and its leaf hash", func(t *testing.T, e *env) {
			data, hashes := e.rows(t)
			d := strings.Replace(data[24], `"action":"POST"`, `"action":"GET"`, 1)
			leaf := tlog.RecordHash([]byte(d))
			h := append(leaf[:], hashes[24][32:]...)
			e.exec(t, `UPDATE audit_events SET data = ?, hashes = ? WHERE idx = 24`, d, h)
		}, 24, "stored hash of events 24 to 25"},
		{"edit a stored tree hash", func(t *testing.T, e *env) {
			_, hashes := e.rows(t)
			h := append([]byte(nil), hashes[15]...)
			h[40] ^= 1
			e.exec(t, `UPDATE audit_events SET hashes = ? WHERE idx = 15`, h)
		}, 14, "stored hash of events 14 to 15"},
		{"rewrite history with consistent hashes", func(t *testing.T, e *env) {
			// A careful forger edits event 16 and recomputes every
			// stored hash; only the signed checkpoints catch it.
			data, _ := e.rows(t)
			data[16] = strings.Replace(data[16], `"decision":"allow"`, `"decision":"deny"`, 1)
			var stored []tlog.Hash
			r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
				out := make([]tlog.Hash, len(idx))
				for i, x := range idx {
					out[i] = stored[x]
				}
				return out, nil
			})
			for n, d := range data {
				h, err := tlog.StoredHashes(int64(n), []byte(d), r)
				if err != nil {
					t.Fatal(err)
				}
				stored = append(stored, h...)
				var b []byte
				for _, x := range h {
					b = append(b, x[:]...)
				}
				e.exec(t, `UPDATE audit_events SET data = ?, hashes = ? WHERE idx = ?`, d, b, n)
			}
		}, 10, "signed checkpoint for size 21 does not match"},
		{"edit a checkpoint", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_checkpoints SET note = replace(note, CAST(size AS TEXT) || char(10), CAST(size - 1 AS TEXT) || char(10)) WHERE size = 21`)
		}, -1, "invalid signature"},
		{"hide an event from search by editing its id", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET id = 'evt_elsewhere' WHERE idx = 6`)
		}, 6, "search column id"},
		{"hide an event from search by editing its task in the search index", func(t *testing.T, e *env) {
			e.execIndex(t, `UPDATE audit_keys SET task = 'task_elsewhere' WHERE idx = 11`)
		}, 11, "search column task"},
		{"hide an event from search by clearing its SPIFFE ID in the search index", func(t *testing.T, e *env) {
			e.execIndex(t, `UPDATE audit_keys SET spiffe_id = NULL WHERE idx = 19`)
		}, 19, "search column spiffe_id"},
		{"hide an event from search by deleting its search index row", func(t *testing.T, e *env) {
			e.execIndex(t, `DELETE FROM audit_keys WHERE idx = 23`)
		}, 23, "search column type"},
		{"overwrite a column with the wrong kind of value", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET hashes = x'0102' WHERE idx = 9`)
		}, 9, "not a multiple of 32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := tamperLog(t)
			c.tamper(t, e)
			_, err := e.verify(t)
			var ve *auditlog.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify after tampering = %v, want a *VerifyError", err)
			}
			if ve.Index != c.wantIndex || !strings.Contains(ve.Problem, c.wantText) {
				t.Errorf("Verify = %q (index %d), want index %d and %q", ve, ve.Index, c.wantIndex, c.wantText)
			}
		})
	}
}

// TestVerifyWithoutSearchIndex: with the search index file gone (writ
// rebuilds it at start), verify still checks every event and says how
// many had index rows to check.
func TestVerifyWithoutSearchIndex(t *testing.T) {
	e := tamperLog(t)
	e.db.Close() // brings the index up to date
	verifyRO := func() (*auditlog.VerifyReport, error) {
		ro, err := sqlite.OpenReadOnly(context.Background(), e.path)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		trusted, _, err := auditlog.StoredVerifiers(context.Background(), ro)
		if err != nil {
			t.Fatal(err)
		}
		return auditlog.Verify(context.Background(), ro.Audit(), auditlog.VerifyOptions{Trusted: trusted})
	}
	rep, err := verifyRO()
	if err != nil || rep.Indexed != rep.Size || rep.Size != 42 {
		t.Fatalf("verify with the index = %+v, %v; want every one of 42 events' keys checked", rep, err)
	}
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(sqlite.AuditIndexPath(e.path) + sfx)
	}
	rep, err = verifyRO()
	if err != nil || rep.Indexed != 0 || rep.Size != 42 {
		t.Fatalf("verify without the index = %+v, %v; want 42 events, none with index rows", rep, err)
	}
}

// slowPages is a backend whose reads after the first page wait until
// their context ends.
type slowPages struct {
	auditlog.Backend
	done atomic.Bool // a read after the first page has returned
}

func (s *slowPages) ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error) {
	if from == 0 {
		return s.Backend.ReadRecords(ctx, from, limit)
	}
	<-ctx.Done()
	defer s.done.Store(true)
	return nil, ctx.Err()
}

// TestVerifyWaitsForReadAhead: Verify reads the next page while it hashes
// one; when it stops early (here at an edited event in the first page) it
// waits for that read, so that nothing reads the store after Verify
// returned (the caller closes it: a late read reopened the search index
// file after the test's directory was removed).
func TestVerifyWaitsForReadAhead(t *testing.T) {
	e := tamperLog(t)
	e.exec(t, `UPDATE audit_events SET data = replace(data, 'POST', 'GET') WHERE idx = 3`)
	trusted, _, err := auditlog.StoredVerifiers(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	b := &slowPages{Backend: e.db.Audit()}
	_, err = auditlog.Verify(context.Background(), b, auditlog.VerifyOptions{Trusted: trusted, BatchSize: 10})
	if ve := (*auditlog.VerifyError)(nil); !errors.As(err, &ve) || ve.Index != 3 {
		t.Fatalf("Verify = %v, want the edit at index 3", err)
	}
	if !b.done.Load() {
		t.Error("Verify returned while its read of the next page was still running")
	}
}
