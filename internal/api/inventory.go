package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/discover"
	"github.com/writ-dev/writ/internal/store"
)

// Discovery runs a scan of the runtime sensor now (`writ discover`).
type Discovery interface {
	Scan(ctx context.Context) (*discover.Report, error)
}

// InventoryStore lists what the runtime sensor recorded.
type InventoryStore interface {
	ListInventory(ctx context.Context, f store.InventoryFilter) ([]store.InventoryItem, error)
}

// instanceLive is how recently an attested instance must have been seen
// to count as live: attestation refreshes last-seen every five minutes
// while the process calls writ.
const instanceLive = 15 * time.Minute

// inventorySections are the values of the kind filter and the section
// each selects.
var inventorySections = []string{"identity", "instance", "agent", "mcp_server", "process", "credential", "mcp_config", "service", "host", "owner"}

// discover answers POST /v1/discover.
func (a *API) discover(w http.ResponseWriter, r *http.Request) {
	if a.c.Discovery == nil {
		WriteError(w, notFound("this server does not run the runtime sensor"))
		return
	}
	rep, err := a.c.Discovery.Scan(r.Context())
	if err != nil {
		a.fail(w, r, "discovery scan", err)
		return
	}
	WriteJSON(w, http.StatusOK, ReportToAPI(rep))
}

// inventory answers GET /v1/inventory.
func (a *API) inventory(w http.ResponseWriter, r *http.Request) {
	if a.c.Inventory == nil {
		WriteError(w, notFound("this server keeps no inventory"))
		return
	}
	q := r.URL.Query()
	iq := InventoryQuery{Kind: q.Get("kind"), Identity: q.Get("identity"), Host: q.Get("host")}
	switch q.Get("shadow") {
	case "":
	case "true":
		iq.Shadow = new(bool)
		*iq.Shadow = true
	case "false":
		iq.Shadow = new(bool)
	default:
		WriteError(w, badRequest("shadow %q: use true or false", q.Get("shadow")))
		return
	}
	out, err := a.Inventory(r.Context(), iq)
	if err != nil {
		a.fail(w, r, "inventory", err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

// InventoryQuery filters [API.Inventory]; the zero value is everything.
type InventoryQuery struct {
	// Kind is one section (identity, instance, agent, ...), or "" for all.
	Kind     string
	Identity string
	Host     string
	// Shadow keeps only shadow items (true) or only known ones (false).
	Shadow *bool
}

// Inventory assembles the inventory as GET /v1/inventory answers it
// (the console's Inventory page shows the same).
func (a *API) Inventory(ctx context.Context, iq InventoryQuery) (apitypes.Inventory, error) {
	if a.c.Inventory == nil {
		return apitypes.Inventory{}, notFound("this server keeps no inventory")
	}
	kind, shadow, identity, host := iq.Kind, iq.Shadow, iq.Identity, iq.Host
	if kind != "" && !slices.Contains(inventorySections, kind) {
		return apitypes.Inventory{}, badRequest("kind %q: use one of %v", kind, inventorySections)
	}
	want := func(k string) bool { return kind == "" || kind == k }
	now := a.c.Now()

	items, err := a.c.Inventory.ListInventory(ctx, store.InventoryFilter{Host: host})
	if err != nil {
		return apitypes.Inventory{}, fmt.Errorf("list inventory: %w", err)
	}
	lastScan := map[string]time.Time{}
	for _, it := range items {
		if it.Kind == store.InventoryHost && it.LastSeen.After(lastScan[it.Host]) {
			lastScan[it.Host] = it.LastSeen
		}
	}
	out := apitypes.Inventory{Identities: []apitypes.InventoryIdentity{}, Instances: []apitypes.InventoryInstance{},
		Discovered: []apitypes.InventoryItem{}, Credentials: []apitypes.InventoryCredential{}, Services: []apitypes.InventoryService{},
		MCPServers: []apitypes.InventoryService{}, Hosts: []apitypes.InventoryHost{}, Owners: []apitypes.InventoryOwner{}}
	shadowOK := func(s bool) bool { return shadow == nil || *shadow == s }

	owners := map[string][]string{}
	for _, e := range a.c.Entries.List() {
		owner := e.Labels["owner"]
		if owner == "" {
			owner = e.Labels["team"]
		}
		if owner != "" {
			owners[owner] = append(owners[owner], e.SpiffeID)
		}
		if !want("identity") || !shadowOK(false) || identity != "" && e.SpiffeID != identity {
			continue
		}
		id := apitypes.InventoryIdentity{Name: e.Name, SpiffeID: e.SpiffeID, Owner: owner, Labels: e.Labels, Selectors: []string{}}
		for _, s := range e.Selectors {
			id.Selectors = append(id.Selectors, s.String())
		}
		for _, it := range items {
			if it.Identity == e.SpiffeID && (it.Kind == store.InventoryAgent || it.Kind == store.InventoryMCPServer) {
				id.Discovered++
				if it.LastSeen.Equal(lastScan[it.Host]) {
					id.Live++
				}
			}
		}
		out.Identities = append(out.Identities, id)
	}
	if want("instance") && shadowOK(false) && identity == "" {
		insts, err := a.c.Instances.ListInstances(ctx)
		if err != nil {
			return apitypes.Inventory{}, fmt.Errorf("list instances: %w", err)
		}
		for _, in := range insts {
			out.Instances = append(out.Instances, apitypes.InventoryInstance{ID: in.ID, PID: in.PID, UID: in.UID, Exe: in.Exe,
				FirstSeen: in.FirstSeen, LastSeen: in.LastSeen, Live: now.Sub(in.LastSeen) < instanceLive})
		}
	}
	for _, it := range items {
		live := it.LastSeen.Equal(lastScan[it.Host])
		switch {
		case it.Kind == store.InventoryHost:
			if want("host") && shadowOK(false) && identity == "" {
				out.Hosts = append(out.Hosts, apitypes.InventoryHost{Name: it.Name, FirstSeen: it.FirstSeen, LastSeen: it.LastSeen})
			}
		case it.Kind == store.InventoryCredential:
			if want("credential") && shadowOK(it.Shadow) && identity == "" {
				var c apitypes.DiscoveredCredential
				json.Unmarshal(it.Data, &c)
				out.Credentials = append(out.Credentials, apitypes.InventoryCredential{Name: it.Name, Source: "discovered", Kind: c.Kind,
					Host: it.Host, Fingerprint: c.Fingerprint, Shadow: it.Shadow, FirstSeen: it.FirstSeen, LastSeen: it.LastSeen})
			}
		}
		if want(it.Kind) && it.Kind != store.InventoryHost && shadowOK(it.Shadow) && (identity == "" || it.Identity == identity) {
			out.Discovered = append(out.Discovered, apitypes.InventoryItem{Kind: it.Kind, Key: it.Key, Host: it.Host, Name: it.Name,
				Identity: it.Identity, Shadow: it.Shadow, Live: live, FirstSeen: it.FirstSeen, LastSeen: it.LastSeen, Data: it.Data})
		}
	}
	if want("credential") && shadowOK(false) && identity == "" {
		brokered, err := a.c.Credentials.List(ctx)
		if err != nil {
			return apitypes.Inventory{}, fmt.Errorf("list credentials: %w", err)
		}
		for _, c := range brokered {
			out.Credentials = append(out.Credentials, apitypes.InventoryCredential{Name: c.Name, Source: "brokered", Kind: string(c.Type),
				FirstSeen: c.CreatedAt, LastSeen: c.UpdatedAt})
		}
	}
	for _, k := range []struct {
		kind    string
		section string
		dst     *[]apitypes.InventoryService
	}{{"Service", "service", &out.Services}, {"MCPServer", "mcp_server", &out.MCPServers}} {
		if !want(k.section) || !shadowOK(false) || identity != "" || a.c.Resources.CheckKind(k.kind) != nil {
			continue
		}
		rs, err := a.c.Resources.ListResources(ctx, k.kind)
		if err != nil {
			return apitypes.Inventory{}, fmt.Errorf("list %s: %w", k.kind, err)
		}
		for _, res := range rs {
			var spec struct {
				Upstream string `json:"upstream"`
				URL      string `json:"url"`
			}
			json.Unmarshal(res.Spec, &spec)
			up := spec.Upstream
			if up == "" {
				up = spec.URL
			}
			owner := res.Labels["owner"]
			if owner == "" {
				owner = res.Labels["team"]
			}
			*k.dst = append(*k.dst, apitypes.InventoryService{Name: res.Name, Upstream: up, Owner: owner})
		}
	}
	if want("owner") && shadowOK(false) {
		names := make([]string, 0, len(owners))
		for o := range owners {
			names = append(names, o)
		}
		sort.Strings(names)
		for _, o := range names {
			if identity == "" || slices.Contains(owners[o], identity) {
				out.Owners = append(out.Owners, apitypes.InventoryOwner{Owner: o, Identities: owners[o]})
			}
		}
	}
	return out, nil
}

// ReportToAPI maps a scan's report to its wire form.
func ReportToAPI(rep *discover.Report) apitypes.DiscoveryReport {
	out := apitypes.DiscoveryReport{Time: rep.Time, Host: rep.Host, Limits: rep.Limits, Processes: []apitypes.DiscoveredProcess{},
		Credentials: []apitypes.DiscoveredCredential{}, MCPConfigs: []apitypes.DeclaredMCPServer{}, Shadows: []apitypes.Shadow{}}
	for _, p := range rep.Processes {
		ap := apitypes.DiscoveredProcess{PID: p.PID, PPID: p.PPID, UID: p.UID, User: p.User, Exe: p.Exe, SHA256: p.SHA256, Start: p.Start, StartTicks: p.StartTicks,
			Cgroup: p.Cgroup, Container: p.Container, Cmdline: p.Cmdline, Kind: string(p.Kind), Name: p.Name, Confidence: p.Confidence,
			Evidence: p.Evidence, Selectors: p.Selectors, Identity: p.Identity, Credentials: p.Credentials}
		if ap.Cmdline == nil {
			ap.Cmdline = []string{}
		}
		for _, c := range p.Connections {
			ap.Connections = append(ap.Connections, apitypes.Connection{Local: c.Local.String(), Remote: c.Remote.String(), Route: string(c.Route), Service: c.Service})
		}
		out.Processes = append(out.Processes, ap)
	}
	for _, c := range rep.Credentials {
		out.Credentials = append(out.Credentials, apitypes.DiscoveredCredential{ID: c.ID, Kind: c.Kind, Source: c.Source, Name: c.Name,
			Path: c.Path, Line: c.Line, Fingerprint: c.Fingerprint, UID: c.UID, PIDs: c.PIDs})
	}
	for _, d := range rep.MCPConfigs {
		out.MCPConfigs = append(out.MCPConfigs, apitypes.DeclaredMCPServer{Client: d.Client, Path: d.Path, Server: d.Server, Command: d.Command,
			Args: d.Args, URL: d.URL, Env: d.Env, Credentials: d.Credentials, UID: d.UID})
	}
	for _, s := range rep.Shadows {
		out.Shadows = append(out.Shadows, apitypes.Shadow{Kind: string(s.Kind), PID: s.PID, Process: s.Process, Credential: s.Credential,
			Service: s.Service, Remote: s.Remote, Detail: s.Detail})
	}
	return out
}
