package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// RunAlerts runs the conformance tests of [store.Alerts].
func RunAlerts(t *testing.T, open Opener) {
	t.Run("Alerts", func(t *testing.T) { testAlerts(t, open(t)) })
}

func testAlerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	a := store.Alert{ID: "alr_1", Rule: "shadow_agent", DedupKey: "shadow_agent/p1", Severity: "high", Title: "t", Subject: "p1",
		Evidence: []store.Evidence{{Event: "evt_1", Index: 3, Time: t0, Summary: "s"}}, Count: 1, FirstEvidence: t0, LastEvidence: t0, RaisedAt: t0.Add(time.Second)}
	hooks := func(store.Alert) []string { return []string{"ops", "slack"} }
	got, err := s.RaiseAlerts(ctx, 0, 4, []byte(`{"w":1}`), []store.Alert{a}, hooks)
	if err != nil || len(got) != 1 || !got[0].Created || got[0].State != store.AlertOpen {
		t.Fatalf("RaiseAlerts = %+v, %v", got, err)
	}
	// More evidence for the same key adds to the open alert; no new
	// deliveries.
	more := a
	more.ID, more.Count, more.LastEvidence = "alr_2", 2, t0.Add(time.Minute)
	more.Evidence = []store.Evidence{{Event: "evt_2", Index: 5, Time: t0.Add(time.Minute)}}
	got, err = s.RaiseAlerts(ctx, 4, 6, nil, []store.Alert{more}, hooks)
	if err != nil || len(got) != 1 || got[0].Created || got[0].ID != "alr_1" || got[0].Count != 3 || len(got[0].Evidence) != 2 {
		t.Fatalf("RaiseAlerts more = %+v, %v", got, err)
	}
	if _, err := s.RaiseAlerts(ctx, 4, 6, nil, nil, nil); !errors.Is(err, store.ErrCursorMoved) {
		t.Fatalf("RaiseAlerts from a stale cursor: %v", err)
	}
	c, err := s.GetCursor(ctx, store.CursorAlerts)
	if err != nil || c.Next != 6 || c.State != nil {
		t.Fatalf("alerts cursor = %+v, %v", c, err)
	}
	dl, err := s.DueDeliveries(ctx, t0.Add(time.Hour), 10)
	if err != nil || len(dl) != 2 || dl[0].Webhook != "ops" || dl[0].Alert != "alr_1" || len(dl[0].Body) == 0 {
		t.Fatalf("DueDeliveries = %+v, %v", dl, err)
	}
	if due, _ := s.DueDeliveries(ctx, t0, 10); len(due) != 0 {
		t.Errorf("deliveries due before the alert was raised: %+v", due)
	}
	dl[0].Attempts, dl[0].DeliveredAt = 1, t0.Add(2*time.Second)
	dl[1].Attempts, dl[1].NextAttempt, dl[1].LastError = 1, t0.Add(2*time.Hour), "503"
	for _, d := range dl {
		if err := s.UpdateDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if due, _ := s.DueDeliveries(ctx, t0.Add(time.Hour), 10); len(due) != 0 {
		t.Errorf("delivered or postponed deliveries still due: %+v", due)
	}
	if all, _ := s.ListDeliveries(ctx, "alr_1"); len(all) != 2 || all[1].LastError != "503" || all[0].DeliveredAt.IsZero() {
		t.Errorf("ListDeliveries = %+v", all)
	}
	if err := s.UpdateDelivery(ctx, store.Delivery{ID: 999}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateDelivery of nothing: %v", err)
	}

	ack, err := s.SetAlertState(ctx, "alr_1", store.AlertAcknowledged, "admin:ann", "looking", t0.Add(10*time.Minute))
	if err != nil || ack.State != store.AlertAcknowledged || ack.AckedBy != "admin:ann" || !ack.AckedAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("acknowledge = %+v, %v", ack, err)
	}
	if _, err := s.SetAlertState(ctx, "alr_1", store.AlertAcknowledged, "x", "", t0); !errors.Is(err, store.ErrExists) {
		t.Errorf("acknowledging twice: %v", err)
	}
	res, err := s.SetAlertState(ctx, "alr_1", store.AlertResolved, "admin:bob", "", t0.Add(20*time.Minute))
	if err != nil || res.ResolvedBy != "admin:bob" || res.AckedBy != "admin:ann" || res.Note != "looking" {
		t.Fatalf("resolve = %+v, %v", res, err)
	}
	if _, err := s.SetAlertState(ctx, "nope", store.AlertResolved, "x", "", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resolving no alert: %v", err)
	}
	// Once resolved, the same key raises a new alert.
	again := a
	again.ID = "alr_3"
	got, err = s.RaiseAlerts(ctx, 6, 7, nil, []store.Alert{again}, nil)
	if err != nil || !got[0].Created || got[0].ID != "alr_3" {
		t.Fatalf("raise after resolve = %+v, %v", got, err)
	}
	list, err := s.ListAlerts(ctx, store.AlertFilter{State: store.AlertOpen})
	if err != nil || len(list) != 1 || list[0].ID != "alr_3" {
		t.Errorf("open alerts = %+v, %v", list, err)
	}
	if list, _ := s.ListAlerts(ctx, store.AlertFilter{}); len(list) != 2 {
		t.Errorf("all alerts = %+v", list)
	}
	if list, _ := s.ListAlerts(ctx, store.AlertFilter{Rule: "x' OR 1=1 --"}); len(list) != 0 {
		t.Errorf("hostile rule filter = %+v", list)
	}
	if got, err := s.GetAlert(ctx, "alr_1"); err != nil || got.State != store.AlertResolved || len(got.Evidence) != 2 {
		t.Errorf("GetAlert = %+v, %v", got, err)
	}
}
