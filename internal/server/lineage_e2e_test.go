package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
)

// TestLineageAfterScriptedRun: after allowed, denied and approved (and
// refused after a hold) calls through the proxy, /v1/graph holds the
// identity, its instance, the service and the injected credential with
// the counts of each, and who approved.
func TestLineageAfterScriptedRun(t *testing.T) {
	env := setupTokenProxy(t)
	applied := time.Now() // the policy was applied before this
	ctx := context.Background()
	c := env.a.in.client
	pu, _ := url.Parse(env.proxy)
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	get := func(path string) int {
		resp, err := hc.Get("http://api.test.internal" + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range []string{"/allowed/1", "/allowed/2"} {
		if code := get(p); code != 200 {
			t.Fatalf("GET %s: %d", p, code)
		}
	}
	if code := get("/forbidden"); code != 403 {
		t.Fatalf("GET /forbidden: %d", code)
	}
	for _, approve := range []bool{true, false} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				if list, err := c.ListApprovals(ctx, store.ApprovalPending); err == nil && len(list) > 0 {
					if _, err := c.DecideApproval(ctx, list[0].ID, approve, "scripted"); err != nil {
						t.Errorf("decide: %v", err)
					}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		want := 403
		if approve {
			want = 200
		}
		if code := get(fmt.Sprintf("/needs-approval/%v", approve)); code != want {
			t.Errorf("held call, approve %v: %d", approve, code)
		}
		<-done
	}

	// The access events are recorded in batches a few milliseconds
	// after the answers: wait until the graph holds all five.
	var g apitypes.Graph
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		g, err = c.Graph(ctx, apitypes.GraphQuery{Identity: agentID})
		if err != nil {
			t.Fatalf("Graph: %v", err)
		}
		var n int64
		for _, e := range g.Edges {
			if e.Kind == "reached" {
				n += e.Allowed + e.Denied
			}
		}
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var reached, injected, instance *apitypes.GraphEdge
	for i, e := range g.Edges {
		switch {
		case e.Kind == "reached" && e.To == "service:api":
			reached = &g.Edges[i]
		case e.Kind == "injected" && e.From == "service:api":
			injected = &g.Edges[i]
		case e.Kind == "instance" && e.From == "identity:"+agentID:
			instance = &g.Edges[i]
		}
	}
	if reached == nil || injected == nil || instance == nil {
		t.Fatalf("graph lacks the identity → instance → service → credential path: %+v", g.Edges)
	}
	if reached.Allowed != 3 || reached.Denied != 2 || reached.Held != 2 || !slices.Equal(reached.ApprovedBy, []string{"admin:admin"}) ||
		!strings.HasPrefix(reached.From, "instance:inst_") {
		t.Errorf("instance → service = %+v", *reached)
	}
	if injected.To != "credential:upstream-key" || injected.Allowed != 3 {
		t.Errorf("service → credential = %+v", *injected)
	}
	if instance.Allowed != 3 || instance.Denied != 2 {
		t.Errorf("identity → instance = %+v", *instance)
	}
	// The same graph again: nothing is folded twice.
	g2, err := c.Graph(ctx, apitypes.GraphQuery{Identity: agentID, To: "credential:upstream-key"})
	if err != nil {
		t.Fatal(err)
	}
	if g2.Built < g.Built || len(g2.Paths) != 1 || g2.Paths[0][0] != "identity:"+agentID {
		t.Errorf("paths into the credential = %q (built %d, before %d)", g2.Paths, g2.Built, g.Built)
	}
	for _, e := range g2.Edges {
		if e.To == "service:api" && (e.Allowed != 3 || e.Denied != 2) {
			t.Errorf("counts changed on a second query: %+v", e)
		}
	}
	// Posture: the policy is younger than the default 30 days, so no
	// grant is judged unused; with a 1s window (once the policy is older
	// than that), the rule no request used is; every access named its
	// instance, so none is unattested.
	p, err := c.Posture(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Findings {
		if f.Check == "unused_grant" || f.Check == "unattested_instance" {
			t.Errorf("young policy or attested accesses: %+v", f)
		}
	}
	time.Sleep(time.Until(applied.Add(1100 * time.Millisecond)))
	if p, err = c.Posture(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	var unused []string
	for _, f := range p.Findings {
		if f.Check == "unused_grant" {
			unused = append(unused, f.ID)
		}
	}
	if !slices.Contains(unused, "unused_grant/me/internal") {
		t.Errorf("unused grants with a 1s window = %v, want me/internal among them", unused)
	}
	for _, q := range []string{"unused_after=0s", "unused_after=bogus", "unused_after=100000h", "since=1h", "unused_after=1h&unused_after=2h"} {
		if err := c.Do(ctx, http.MethodGet, "/v1/posture?"+q, nil, new(apitypes.Posture)); err == nil || !strings.Contains(err.Error(), "unused_after") {
			t.Errorf("posture?%s: %v", q, err)
		}
	}
	// Hostile query parameters are refused with the parameter named.
	for _, q := range []apitypes.GraphQuery{{To: "planet:x"}, {To: "service:a", CrownJewels: true}, {Task: "a\x00b"}} {
		if _, err := c.Graph(ctx, q); err == nil {
			t.Errorf("Graph(%+v) accepted", q)
		}
	}
}
