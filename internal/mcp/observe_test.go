package mcp

import (
	"context"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/audit"
)

// Resources and prompts on the aggregate endpoint: named SERVER__name and
// SERVER__URI like tools, listed only when policy lets the caller see
// them (resources by URI), and read or got through the same decisions.
func TestGatewayAggregateResourcesAndPrompts(t *testing.T) {
	up := newTestUpstream(t)
	f := newGateway(t, httpServer(t, "files", up.http.URL))
	ctx := context.Background()
	for _, v := range protocolVersions {
		t.Run(v, func(t *testing.T) {
			agg := connect(t, f.http.URL+"/mcp", v)
			waitTools(t, agg, "files__read_file")
			lr, err := agg.ListResources(ctx, nil)
			if err != nil || len(lr.Resources) != 1 || lr.Resources[0].URI != "files__file:///allowed/a.txt" {
				t.Fatalf("aggregate resources = %+v, %v; want files__file:///allowed/a.txt only", lr, err)
			}
			rr, err := agg.ReadResource(ctx, &sdk.ReadResourceParams{URI: "files__file:///allowed/a.txt"})
			if err != nil || len(rr.Contents) != 1 || rr.Contents[0].Text != "A" || rr.Contents[0].URI != "files__file:///allowed/a.txt" {
				t.Fatalf("aggregate read = %+v, %v", rr, err)
			}
			for _, uri := range []string{"files__file:///secret/b.txt"} {
				if _, err := agg.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri}); func() bool { c, _ := rpcCode(err); return c != CodeDenied }() {
					t.Errorf("aggregate read of %s: %v, want denied", uri, err)
				}
			}
			for _, uri := range []string{"file:///allowed/a.txt", "nope__file:///allowed/a.txt", "files__"} {
				if _, err := agg.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri}); err == nil {
					t.Errorf("aggregate read of %q succeeded", uri)
				}
			}
			pl, err := agg.ListPrompts(ctx, nil)
			if err != nil || len(pl.Prompts) != 1 || pl.Prompts[0].Name != "files__summarise" {
				t.Fatalf("aggregate prompts = %+v, %v", pl, err)
			}
			gp, err := agg.GetPrompt(ctx, &sdk.GetPromptParams{Name: "files__summarise"})
			if err != nil || len(gp.Messages) != 1 {
				t.Fatalf("aggregate prompt = %+v, %v", gp, err)
			}
			tl, err := agg.ListResourceTemplates(ctx, nil)
			if err != nil || len(tl.ResourceTemplates) != 0 {
				t.Errorf("templates = %+v, %v", tl, err)
			}

			// /mcp/NAME lists resources by policy too.
			one := connect(t, f.http.URL+"/mcp/files", v)
			waitTools(t, one, "read_file")
			lr, err = one.ListResources(ctx, nil)
			if err != nil || len(lr.Resources) != 1 || lr.Resources[0].URI != "file:///allowed/a.txt" {
				t.Fatalf("resources = %+v, %v", lr, err)
			}
		})
	}
}

// initialize, tools/list, resources/list and prompts/list are each one
// audit event with the caller, the server, the protocol revision and the
// digest of the pinned tools the agent was shown.
func TestGatewayAuditsListsAndInitialize(t *testing.T) {
	up := newTestUpstream(t)
	f := newGateway(t, httpServer(t, "files", up.http.URL))
	ctx := context.Background()
	for _, v := range protocolVersions {
		t.Run(v, func(t *testing.T) {
			f.events.Take()
			cs := connect(t, f.http.URL+"/mcp/files", v)
			waitTools(t, cs, "read_file")
			f.events.Take()
			toolNames(t, cs)
			if _, err := cs.ListResources(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.ListPrompts(ctx, nil); err != nil {
				t.Fatal(err)
			}
			pin, err := f.gw.cfg.Pins.GetPin(ctx, "files", "read_file")
			if err != nil {
				t.Fatal(err)
			}
			wpin, err := f.gw.cfg.Pins.GetPin(ctx, "files", "write_file")
			if err != nil {
				t.Fatal(err)
			}
			// tools/list: the tools this caller was shown; the other
			// lists: every usable tool of the server.
			want := pinsDigest(map[string]string{"read_file": pin.Digest})
			wantAll := pinsDigest(map[string]string{"read_file": pin.Digest, "write_file": wpin.Digest})
			got := map[string]audit.Event{}
			for _, e := range f.events.OfType(audit.MCPListed) {
				got[e.Action] = e
			}
			for _, m := range []string{"tools/list", "resources/list", "prompts/list"} {
				e, ok := got[m]
				if !ok {
					t.Errorf("no mcp.listed event for %s", m)
					continue
				}
				if e.Target != "MCPServer/files" || e.Actor != "agent" || e.Details["protocol"] != v || e.Details["mcp_server"] != "files" {
					t.Errorf("%s event = %+v", m, e)
				}
			}
			if e := got["tools/list"]; e.Details["pins_digest"] != want || e.Details["shown"] != "1" {
				t.Errorf("tools/list event pins_digest %s shown %s, want %s and 1", e.Details["pins_digest"], e.Details["shown"], want)
			}
			if e := got["resources/list"]; e.Details["pins_digest"] != wantAll || e.Details["shown"] != "1" || e.Details["tools"] != "2" {
				t.Errorf("resources/list event = %v", e.Details)
			}
		})
	}
	// The session's initialize was recorded (the SDK's stateless
	// revision opens no session and sends none).
	var revs []string
	for _, e := range f.events.OfType(audit.MCPInitialized) {
		revs = append(revs, e.Details["protocol"])
		if e.Target != "MCPServer/files" || !strings.HasPrefix(e.Details["pins_digest"], "sha256:") {
			t.Errorf("initialize event = %+v", e)
		}
	}
	if !strings.Contains(strings.Join(revs, ","), "2025-06-18") || !strings.Contains(strings.Join(revs, ","), "2025-11-25") {
		t.Errorf("initialize events for revisions %v", revs)
	}
}
