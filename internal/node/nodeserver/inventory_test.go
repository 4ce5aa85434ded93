package nodeserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// storeDiscovery serves the sensor paths over a real store, as the
// server does.
type storeDiscovery struct{ db *sqlite.DB }

func (d storeDiscovery) DiscoveryConfig(context.Context) (nodeapi.DiscoveryConfig, error) {
	return nodeapi.DiscoveryConfig{FingerprintKey: []byte("k"), Upstreams: []nodeapi.Upstream{{Service: "billing", Addr: "10.0.0.1:443"}}}, nil
}

func (d storeDiscovery) RecordNodeInventory(ctx context.Context, _ string, items []store.InventoryItem) error {
	return d.db.RecordInventory(ctx, time.Unix(1700000000, 0), items)
}

// withDiscovery mounts an API like e's with the sensor paths served.
func (e *env) withDiscovery(t *testing.T) {
	vs, _ := nodeattest.NewVerifiers(nodeattest.JoinTokens{Store: e.db})
	api, err := nodeserver.NewAPI(nodeserver.Config{TrustDomain: td, Registry: e.nodes, Verifiers: vs, Authority: e.ca,
		Publisher: e.pub, Store: e.db, Emitter: e.rec, Audit: e.rec, Heartbeat: time.Hour, Discovery: storeDiscovery{e.db}})
	if err != nil {
		t.Fatal(err)
	}
	e.mux = http.NewServeMux()
	api.Register(e.mux)
}

func report(node string) nodeapi.InventoryReport {
	return nodeapi.InventoryReport{Items: []store.InventoryItem{
		{Kind: store.InventoryHost, Key: node, Host: node, Name: node},
		{Kind: store.InventoryAgent, Key: "process/" + node + "/42/7", Host: node, Name: "claude", Data: json.RawMessage(`{"pid":42}`)},
		{Kind: store.InventoryCredential, Key: node + "/cred_1", Host: node, Name: "OPENAI_API_KEY", Shadow: true},
	}}
}

// TestInventory: a node reports its scan and the server's inventory holds
// it; a node without discovery on its server is told so; a node reporting
// for another host, or a malformed report, is refused and nothing is
// stored.
func TestInventory(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	chain := e.join(t, "n1")
	if w := e.do(ctx, "GET", nodeapi.PathDiscovery, nil, chain); w.Code != http.StatusNotImplemented {
		t.Errorf("discovery config without Discovery: %d", w.Code)
	}
	if w := e.do(ctx, "POST", nodeapi.PathInventory, report("n1"), chain); w.Code != http.StatusNotImplemented {
		t.Errorf("inventory without Discovery: %d", w.Code)
	}
	e.withDiscovery(t)
	if w := e.do(ctx, "GET", nodeapi.PathDiscovery, nil, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("discovery config without a node SVID: %d", w.Code)
	}
	w := e.do(ctx, "GET", nodeapi.PathDiscovery, nil, chain)
	var dc nodeapi.DiscoveryConfig
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &dc) != nil || len(dc.Upstreams) != 1 {
		t.Fatalf("discovery config: %d %s", w.Code, w.Body)
	}
	if w := e.do(ctx, "POST", nodeapi.PathInventory, report("n1"), chain); w.Code != http.StatusNoContent {
		t.Fatalf("inventory: %d %s", w.Code, w.Body)
	}
	items, err := e.db.ListInventory(ctx, store.InventoryFilter{Host: "n1"})
	if err != nil || len(items) != 3 {
		t.Fatalf("stored %d items (%v), want 3: %+v", len(items), err, items)
	}

	other := report("n2")
	spoofKey := report("n1")
	spoofKey.Items[1].Key = "process/n2/42/7"
	twoHosts := report("n1")
	twoHosts.Items = append(twoHosts.Items, twoHosts.Items[0])
	for name, body := range map[string]any{
		"another host":     other,
		"another's key":    spoofKey,
		"two hosts":        twoHosts,
		"no host":          nodeapi.InventoryReport{Items: report("n1").Items[1:]},
		"unknown field":    json.RawMessage(`{"items":[],"extra":1}`),
		"trailing data":    json.RawMessage(`{"items":[]} {}`),
		"not an object":    json.RawMessage(`[]`),
		"bad kind":         nodeapi.InventoryReport{Items: append(report("n1").Items, store.InventoryItem{Kind: "entry", Key: "n1/x", Host: "n1"})},
		"identity not ID":  nodeapi.InventoryReport{Items: append(report("n1").Items, store.InventoryItem{Kind: "agent", Key: "process/n1/1/1", Host: "n1", Identity: "root"})},
		"control in a key": nodeapi.InventoryReport{Items: append(report("n1").Items, store.InventoryItem{Kind: "agent", Key: "process/n1/1\n", Host: "n1"})},
	} {
		if w := e.do(ctx, "POST", nodeapi.PathInventory, body, chain); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	if items, _ := e.db.ListInventory(ctx, store.InventoryFilter{}); len(items) != 3 {
		t.Errorf("a refused report stored something: %+v", items)
	}
}

// FuzzCheckInventory: hostile reports never pass as another host's.
func FuzzCheckInventory(f *testing.F) {
	f.Add("n1", "host", "n1", "n1")
	f.Add("n1", "agent", "process/n1/1/2", "n1")
	f.Add("n1", "credential", "n2/cred", "n1")
	f.Add("n1", "process", "process/n1", "n2")
	f.Fuzz(func(t *testing.T, node, kind, key, host string) {
		items := []store.InventoryItem{{Kind: store.InventoryHost, Key: node, Host: node}, {Kind: kind, Key: key, Host: host}}
		if nodeserver.CheckInventory(node, items) != nil {
			return
		}
		if host != node || !strings.Contains(key, node) {
			t.Errorf("node %q may report %s %q on host %q", node, kind, key, host)
		}
	})
}
