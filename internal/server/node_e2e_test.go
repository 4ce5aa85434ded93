package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
)

// TestNodeName: node_name is the source.node policies see and the node of
// audit events, so a policy that pins an agent to its node (as
// examples/policy does) works against a running writ (#12 item 17).
func TestNodeName(t *testing.T) {
	for _, tc := range []struct {
		node string
		want int
	}{{"node-mail-1", 200}, {"", 403}} {
		t.Run("node="+tc.node, func(t *testing.T) {
			cfg := tokenConfig(t)
			cfg.NodeName = tc.node
			in := start(t, cfg)
			ctx := context.Background()
			if _, err := in.client.CreateEntry(ctx, selfEntry("me", agentID)); err != nil {
				t.Fatal(err)
			}
			up := &upstreamLog{}
			us := httptest.NewServer(http.HandlerFunc(up.handler))
			t.Cleanup(us.Close)
			apply(t, in.client, "node.yaml", fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: api}
spec:
  upstream: %s
  match: {host: api.test.internal}
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: pinned}
spec:
  subjects: [%s]
  rules:
    - name: read-on-its-node
      effect: allow
      targets: [{http: {service: api, methods: [GET]}}]
      when: source.node == "node-mail-1"
`, us.URL, agentID))
			pu, _ := url.Parse("http://" + in.srv.ProxyAddr())
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
			resp, err := hc.Get("http://api.test.internal/x")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET with node_name %q: %d, want %d", tc.node, resp.StatusCode, tc.want)
			}
			typ := map[int]string{200: "access.allowed", 403: "access.denied"}[tc.want]
			// The access event is recorded once the call is finished.
			var res apitypes.AuditSearchResult
			for deadline := time.Now().Add(10 * time.Second); len(res.Events) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if res, err = in.client.AuditSearch(ctx, apitypes.AuditQuery{Type: typ, Limit: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if len(res.Events) != 1 || res.Events[0].Node != tc.node {
				t.Errorf("%s events = %+v; want node %q", typ, res.Events, tc.node)
			}
		})
	}
}
