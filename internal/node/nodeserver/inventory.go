package nodeserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/store"
)

// Discovery is what the node API needs to serve the runtime sensors of
// nodes: the configuration they scan with, and where their inventories
// go (the server's inventory store).
type Discovery interface {
	DiscoveryConfig(ctx context.Context) (nodeapi.DiscoveryConfig, error)
	RecordNodeInventory(ctx context.Context, node string, items []store.InventoryItem) error
}

func (a *API) discoveryConfig(w http.ResponseWriter, r *http.Request, n nodeID) {
	if a.c.Discovery == nil {
		fail(w, http.StatusNotImplemented, "this server does not take node inventories")
		return
	}
	dc, err := a.c.Discovery.DiscoveryConfig(r.Context())
	if err != nil {
		a.c.Log.Error("discovery configuration for a node", "node", n.name, "error", err)
		fail(w, http.StatusServiceUnavailable, "discovery configuration unavailable; retry")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	reply(w, dc)
}

// maxInventoryBody bounds one inventory report (about 2 KiB per item of a
// busy host).
const maxInventoryBody = 64 << 20

func (a *API) inventory(w http.ResponseWriter, r *http.Request, n nodeID) {
	if a.c.Discovery == nil {
		fail(w, http.StatusNotImplemented, "this server does not take node inventories")
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxInventoryBody))
	dec.DisallowUnknownFields()
	var rep nodeapi.InventoryReport
	if err := dec.Decode(&rep); err != nil {
		fail(w, http.StatusBadRequest, "inventory: %v", err)
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		fail(w, http.StatusBadRequest, "inventory: data after the report")
		return
	}
	if err := CheckInventory(n.name, rep.Items); err != nil {
		fail(w, http.StatusBadRequest, "inventory of node %s: %v", n.name, err)
		return
	}
	if err := a.c.Discovery.RecordNodeInventory(r.Context(), n.name, rep.Items); err != nil {
		a.c.Log.Error("record a node's inventory", "node", n.name, "error", err)
		fail(w, http.StatusServiceUnavailable, "inventory not recorded; retry")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// CheckInventory checks that a report of node speaks only for node's own
// host: one host item named node, every item on host node, with a key
// under it (a node cannot overwrite what another host reported), of a
// known kind, within size bounds.
func CheckInventory(node string, items []store.InventoryItem) error {
	if len(items) > nodeapi.MaxInventoryItems {
		return fmt.Errorf("%d items: at most %d per report", len(items), nodeapi.MaxInventoryItems)
	}
	hosts := 0
	for i := range items {
		it := &items[i]
		if it.Host != node {
			return fmt.Errorf("item %d (%s %q) is on host %q: a node reports its own host only", i, it.Kind, it.Key, it.Host)
		}
		var under bool
		switch it.Kind {
		case store.InventoryHost:
			hosts++
			under = it.Key == node
		case store.InventoryProcess, store.InventoryAgent, store.InventoryMCPServer:
			under = strings.HasPrefix(it.Key, "process/"+node+"/")
		case store.InventoryCredential, store.InventoryDeclaredMCP:
			under = strings.HasPrefix(it.Key, node+"/")
		default:
			return fmt.Errorf("item %d: kind %q is not an inventory kind", i, it.Kind)
		}
		if !under {
			return fmt.Errorf("item %d (%s): key %q does not name host %s", i, it.Kind, it.Key, node)
		}
		if len(it.Key) > 4096 || len(it.Name) > 4096 || len(it.Identity) > 2048 || len(it.Data) > 1<<20 {
			return fmt.Errorf("item %d (%s %q): a field is too long", i, it.Kind, it.Key)
		}
		if strings.ContainsFunc(it.Key+it.Name+it.Identity, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) {
			return fmt.Errorf("item %d (%s): control characters or invalid UTF-8", i, it.Kind)
		}
		if it.Identity != "" && !strings.HasPrefix(it.Identity, "spiffe://") {
			return fmt.Errorf("item %d (%s %q): identity %q is not a SPIFFE ID", i, it.Kind, it.Key, it.Identity)
		}
		if len(it.Data) > 0 && !json.Valid(it.Data) {
			return fmt.Errorf("item %d (%s %q): data is not JSON", i, it.Kind, it.Key)
		}
	}
	if hosts != 1 {
		return fmt.Errorf("%d host items: a report is one scan of one host", hosts)
	}
	return nil
}
