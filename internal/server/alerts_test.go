package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditfeed"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/store"
)

// countingFeed is the audit store as the alert engine reads it, counting
// the records read.
type countingFeed struct {
	auditfeed.Records
	n atomic.Int64
}

func (c *countingFeed) ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error) {
	recs, err := c.Records.ReadRecords(ctx, from, limit)
	c.n.Add(int64(len(recs)))
	return recs, err
}

// newQuietServer is a server whose loops the test drives: no discovery,
// alerts synced by the test.
func newQuietServer(t *testing.T) *Server {
	t.Helper()
	cfg := config.Config{DataDir: t.TempDir()}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Proxy.Listen = "127.0.0.1:0"
	cfg.Discovery.Disabled = true
	cfg.Defaults()
	cfg.Alerts.Interval = time.Hour // the test Syncs
	s, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestAlertsObserveTheLog: once the alerts have started, the engine
// evaluates the events the audit log commits as they come: a Sync after
// they were recorded raises their alert without reading the log back.
// Once stopped, it observes no more, and a Sync reads the log again.
func TestAlertsObserveTheLog(t *testing.T) {
	ctx := context.Background()
	s := newQuietServer(t)
	feed := &countingFeed{Records: s.alerts.engine.Log}
	s.alerts.engine.Log = feed
	stop := s.startAlerts(ctx)
	if _, err := s.syncAlerts(ctx); err != nil { // caught up
		t.Fatal(err)
	}
	fail := audit.Event{Type: audit.AdminAuthFailed, Source: "192.0.2.7:4000", Action: "GET /v1/entries", Reason: "invalid token"}
	for range 5 {
		if err := s.emit.Emit(ctx, fail); err != nil {
			t.Fatal(err)
		}
	}
	// The alert loop's first Sync may run before or after these:
	// neither reads.
	read := feed.n.Load()
	if _, err := s.syncAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := s.db.ListAlerts(ctx, store.AlertFilter{Rule: alert.RuleAdminAuthFailed})
	if err != nil || len(list) != 1 || list[0].Subject != "192.0.2.7" {
		t.Fatalf("alerts after five refused admin credentials: %+v, %v", list, err)
	}
	if n := feed.n.Load() - read; n != 0 {
		t.Errorf("the engine read %d audit records back; want it to have evaluated them as committed", n)
	}
	stop()
	if err := s.emit.Emit(ctx, fail); err != nil {
		t.Fatal(err)
	}
	read = feed.n.Load()
	if _, err := s.syncAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	if feed.n.Load() == read {
		t.Error("after the alerts stopped, the engine still observed the log")
	}
}

// TestLineageFollowsTheLog: once the server follows its log, the lineage
// builder folds the access events the log commits as they come: a Sync
// (a query, a discovery scan) stores them without reading them back, and
// the facts are the events'. Once stopped, a Sync reads the log again.
func TestLineageFollowsTheLog(t *testing.T) {
	ctx := context.Background()
	s := newQuietServer(t)
	feed := &countingFeed{Records: s.lineage.Builder.Log}
	s.lineage.Builder.Log = feed
	stop := s.startAlerts(ctx)
	if _, err := s.lineage.Builder.Sync(ctx); err != nil { // caught up
		t.Fatal(err)
	}
	access := audit.Event{Type: audit.AccessAllowed, Decision: "allow", SpiffeID: "spiffe://writ.local/agent/mail",
		Target: "Service/mail", Details: map[string]string{"service": "mail", "via": "process"}}
	for range 3 {
		if err := s.emit.Emit(ctx, access); err != nil {
			t.Fatal(err)
		}
	}
	read := feed.n.Load()
	if _, err := s.lineage.Builder.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := feed.n.Load() - read; n != 0 {
		t.Errorf("the lineage builder read %d audit records back; want it to have folded them as committed", n)
	}
	facts, err := s.db.ListLineage(ctx, store.LineageFilter{AllTime: true, Target: "mail"})
	if err != nil || len(facts) != 1 || facts[0].Allowed != 3 {
		t.Fatalf("lineage after three allowed accesses: %+v, %v", facts, err)
	}
	stop()
	if err := s.emit.Emit(ctx, access); err != nil {
		t.Fatal(err)
	}
	read = feed.n.Load()
	if _, err := s.lineage.Builder.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if feed.n.Load() == read {
		t.Error("after the server stopped following the log, the builder still folded live")
	}
}
