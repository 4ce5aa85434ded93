package discover

import (
	"encoding/json"
	"path"
	"strconv"

	"github.com/writ-dev/writ/internal/store"
)

// InventoryItems turns a report into the items the inventory keeps
// ([store.Inventory]): the host; every agent and MCP server; every other
// process that holds a credential or connects to a Service's upstream
// (plain processes come and go too often to be worth keeping); every
// credential; every MCP server a client configuration declares. Data is
// the report's own record of each, which holds no secret value.
func InventoryItems(rep *Report) []store.InventoryItem {
	shadowPID := map[int]bool{}
	shadowCred := map[string]bool{}
	for _, s := range rep.Shadows {
		if s.PID != 0 {
			shadowPID[s.PID] = true
		}
		if s.Credential != "" {
			shadowCred[s.Credential] = true
		}
	}
	hostData, _ := json.Marshal(struct {
		Scanned     string   `json:"scanned"`
		Processes   int      `json:"processes"`
		Credentials int      `json:"credentials"`
		Shadows     int      `json:"shadows"`
		Limits      []string `json:"limits,omitempty"`
	}{rep.Time.Format("2006-01-02T15:04:05Z07:00"), len(rep.Processes), len(rep.Credentials), len(rep.Shadows), rep.Limits})
	out := []store.InventoryItem{{Kind: store.InventoryHost, Key: rep.Host, Host: rep.Host, Name: rep.Host, Data: hostData}}
	for i := range rep.Processes {
		p := &rep.Processes[i]
		kind := store.InventoryProcess
		switch p.Kind {
		case KindAgent:
			kind = store.InventoryAgent
		case KindMCPServer:
			kind = store.InventoryMCPServer
		default:
			keep := len(p.Credentials) > 0
			for _, c := range p.Connections {
				keep = keep || c.Service != ""
			}
			if !keep {
				continue
			}
		}
		name := p.Name
		if name == "" {
			name = path.Base(p.Exe)
		}
		data, _ := json.Marshal(p)
		out = append(out, store.InventoryItem{Kind: kind, Key: ProcessKey(rep.Host, p), Host: rep.Host, Name: name,
			Identity: p.Identity, Shadow: shadowPID[p.PID], Data: data})
	}
	for i := range rep.Credentials {
		c := &rep.Credentials[i]
		name := c.Name
		if name == "" {
			name = c.Path
		}
		data, _ := json.Marshal(c)
		out = append(out, store.InventoryItem{Kind: store.InventoryCredential, Key: rep.Host + "/" + c.ID, Host: rep.Host, Name: name,
			Shadow: shadowCred[c.ID], Data: data})
	}
	for i := range rep.MCPConfigs {
		d := &rep.MCPConfigs[i]
		data, _ := json.Marshal(d)
		out = append(out, store.InventoryItem{Kind: store.InventoryDeclaredMCP, Key: rep.Host + "/" + strconv.Itoa(d.UID) + "/" + d.Path + "#" + d.Server,
			Host: rep.Host, Name: d.Server, Shadow: len(d.Credentials) > 0, Data: data})
	}
	return out
}
