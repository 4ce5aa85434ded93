package auditlog_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// gatedSync is the SQLite backend with a sync that waits for a gate and
// can be made to fail.
type gatedSync struct {
	*sqlite.AuditStore
	gate chan struct{} // each sync takes one value (or waits)
	fail chan error    // a sync returns the value waiting here, if any
}

func (g *gatedSync) SyncRecords(ctx context.Context) error {
	<-g.gate
	select {
	case err := <-g.fail:
		return err
	default:
	}
	return g.AuditStore.SyncRecords(ctx)
}

func newGated(t *testing.T) (*env, *gatedSync, *auditlog.Log) {
	e := newEnv(t)
	g := &gatedSync{AuditStore: e.db.Audit(), gate: make(chan struct{}, 100), fail: make(chan error, 1)}
	cfg := e.config()
	cfg.Backend = g
	return e, g, e.open(t, cfg)
}

// TestWrittenReturnsBeforeSync: a Written append returns once its event
// is committed, while the fsync is still held back; a Synced append waits
// for the fsync. It runs in a synctest bubble so that "the Synced append
// is still waiting" is checked once every goroutine has gone as far as it
// can, not after a guessed delay.
func TestWrittenReturnsBeforeSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, g, l := newGated(t)
		ctx := context.Background()
		en, err := l.AppendWith(ctx, sampleEvent(0), audit.Written)
		if err != nil {
			t.Fatalf("Written append with the sync held back: %v", err)
		}
		if r, err := e.db.Audit().RecordByID(ctx, en.ID); err != nil || r.Index != en.Index {
			t.Fatalf("a Written append returned but its event is not committed: %v", err)
		}
		synced := make(chan error, 1)
		go func() {
			_, err := l.Append(ctx, sampleEvent(1))
			synced <- err
		}()
		synctest.Wait()
		select {
		case err := <-synced:
			t.Fatalf("a Synced append returned (%v) before the sync ran", err)
		default:
		}
		for range 10 {
			g.gate <- struct{}{}
		}
		if err := <-synced; err != nil {
			t.Fatalf("Synced append after the sync: %v", err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.verify(t); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFailedSyncFailsClosed: when the fsync fails, the appends waiting
// for it fail, and so does every later append, Written or Synced, until
// the log is reopened.
func TestFailedSyncFailsClosed(t *testing.T) {
	_, g, l := newGated(t)
	ctx := context.Background()
	if err := l.Failed(); err != nil {
		t.Fatalf("Failed() of a working log = %v", err)
	}
	g.fail <- errors.New("input/output error")
	g.gate <- struct{}{}
	if _, err := l.Append(ctx, sampleEvent(0)); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("Synced append whose sync failed: %v, want the sync error", err)
	}
	if err := l.Failed(); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("Failed() after a failed sync = %v, want the sync error (readiness reports it)", err)
	}
	for _, d := range []audit.Durability{audit.Written, audit.Synced} {
		g.gate <- struct{}{}
		_, err := l.AppendWith(ctx, sampleEvent(1), d)
		if err == nil || !strings.Contains(err.Error(), "until writ restarts") {
			t.Errorf("%v append after a failed sync: %v, want it refused", d, err)
		}
	}
	for range 10 {
		g.gate <- struct{}{}
	}
	l.Close(ctx)
}
