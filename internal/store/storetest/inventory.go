package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// RunInventory runs the conformance tests of [store.Inventory].
func RunInventory(t *testing.T, open Opener) {
	t.Run("Inventory", func(t *testing.T) { testInventory(t, open(t)) })
}

func testInventory(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	t1 := t0.Add(30 * time.Second)
	agent := store.InventoryItem{Kind: store.InventoryAgent, Key: "process/h1/42/100", Host: "h1", Name: "claude",
		Shadow: true, Data: json.RawMessage(`{"pid":42}`)}
	cred := store.InventoryItem{Kind: store.InventoryCredential, Key: "cred_1", Host: "h1", Name: "OPENAI_API_KEY", Shadow: true}
	host := store.InventoryItem{Kind: store.InventoryHost, Key: "h1", Host: "h1", Name: "h1"}
	if err := s.RecordInventory(ctx, t0, []store.InventoryItem{agent, cred, host}); err != nil {
		t.Fatalf("RecordInventory: %v", err)
	}
	agent.Identity, agent.Shadow = "spiffe://writ.local/agent/claude", false
	if err := s.RecordInventory(ctx, t1, []store.InventoryItem{agent, host}); err != nil {
		t.Fatalf("RecordInventory again: %v", err)
	}
	// An older report arriving late moves nothing back.
	if err := s.RecordInventory(ctx, t0, []store.InventoryItem{host}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListInventory(ctx, store.InventoryFilter{})
	if err != nil {
		t.Fatalf("ListInventory: %v", err)
	}
	if len(all) != 3 || all[0].Kind != store.InventoryAgent || all[1].Kind != store.InventoryCredential || all[2].Kind != store.InventoryHost {
		t.Fatalf("ListInventory = %+v, want agent, credential, host", all)
	}
	a := all[0]
	if !a.FirstSeen.Equal(t0) || !a.LastSeen.Equal(t1) || a.Identity != agent.Identity || a.Shadow || string(a.Data) != `{"pid":42}` {
		t.Errorf("agent after two scans: %+v", a)
	}
	if c := all[1]; !c.FirstSeen.Equal(t0) || !c.LastSeen.Equal(t0) || !c.Shadow {
		t.Errorf("credential seen once: %+v", c)
	}
	if h := all[2]; !h.LastSeen.Equal(t1) {
		t.Errorf("host last seen %v after a late older report, want %v", h.LastSeen, t1)
	}
	yes, no := true, false
	for _, tc := range []struct {
		f    store.InventoryFilter
		want int
	}{
		{store.InventoryFilter{Kind: store.InventoryCredential}, 1},
		{store.InventoryFilter{Shadow: &yes}, 1},
		{store.InventoryFilter{Shadow: &no}, 2},
		{store.InventoryFilter{Identity: agent.Identity}, 1},
		{store.InventoryFilter{Host: "h2"}, 0},
		{store.InventoryFilter{SeenSince: t1}, 2},
		{store.InventoryFilter{Limit: 1}, 1},
	} {
		got, err := s.ListInventory(ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("ListInventory(%+v) = %d items, %v; want %d", tc.f, len(got), err, tc.want)
		}
	}
	if err := s.RecordInventory(ctx, t1, []store.InventoryItem{{Kind: store.InventoryAgent}}); err == nil {
		t.Error("RecordInventory accepted an item without a key")
	}
}
