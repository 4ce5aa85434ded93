package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/writ-dev/writ/internal/apitypes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/token"
)

const proxyTokenPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: me}
spec:
  subjects: [spiffe://writ.local/agent/me, "user:*"]
  rules:
    - name: tasks
      effect: allow
      targets: [{task: {}}]
    - name: api-token
      effect: allow
      targets: [{token: {audiences: [api]}}]
    - name: read
      effect: allow
      targets: [{http: {service: api, methods: [GET], paths: ["/allowed/**"]}}]
    - name: sensitive
      effect: allow
      targets: [{http: {service: api, methods: [GET], paths: ["/needs-approval/**"]}}]
      approval: {timeout: 20s}
    - name: internal
      effect: allow
      targets: [{http: {service: internal, methods: [GET]}}]
`

type tokenProxyEnv struct {
	a     *agent
	ev    *events
	up    *upstreamLog
	proxy string
}

func setupTokenProxy(t *testing.T) *tokenProxyEnv {
	t.Helper()
	cfg := tokenConfig(t)
	cfg.Proxy.ApprovalWait = 10 * time.Second
	in, ev := startLogged(t, cfg)
	ctx := context.Background()
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", agentID)); err != nil {
		t.Fatal(err)
	}
	up := &upstreamLog{}
	us := httptest.NewServer(http.HandlerFunc(up.handler))
	t.Cleanup(us.Close)
	if _, err := in.client.PutCredential(ctx, "upstream-key", "bearer", upstreamSecret); err != nil {
		t.Fatal(err)
	}
	apply(t, in.client, "all.yaml", proxyTokenPolicy+"---\n"+fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: api}
spec:
  upstream: %s
  match: {host: api.test.internal}
  credential: {name: upstream-key}
---
apiVersion: writ.dev/v1
kind: Service
metadata: {name: internal}
spec:
  upstream: %s
  match: {host: internal.test.internal}
  token: {audience: internal-api, scopes: [read], ttl: 2m}
`, us.URL, us.URL))
	return &tokenProxyEnv{a: &agent{in: in, issuer: in.srv.PublicURL(), http: &http.Client{Timeout: 10 * time.Second}}, ev: ev, up: up,
		proxy: "http://" + in.srv.ProxyAddr()}
}

// TestProxyDPoPToken: a DPoP-bound writ access token for the service's
// audience identifies the caller (and its task) only with a valid proof,
// and never reaches the upstream.
func TestProxyDPoPToken(t *testing.T) {
	env := setupTokenProxy(t)
	a := env.a
	svid := a.jwtSVID(t)
	tk := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "read things", Audiences: []string{"api"}, Budget: 3})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dp := a.exchange(t, a.http, a.issuer, svidForm(svid, tk.ID, "api", ""), dpopProof(t, key, "POST", a.issuer+"/oauth2/token", ""))
	if dp.status != 200 || dp.TokenType != "DPoP" {
		t.Fatalf("DPoP exchange: %+v", dp)
	}
	target := env.proxy + "/svc/api/allowed/dpop"
	call := func(proof string) (int, string) {
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "DPoP "+dp.AccessToken)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := call(""); code != http.StatusUnauthorized || !strings.Contains(body, "DPoP") {
		t.Errorf("bound token without a proof: %d %s", code, body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if code, _ := call(dpopProof(t, other, "GET", target, dp.AccessToken)); code != http.StatusUnauthorized {
		t.Errorf("proof by another key: %d", code)
	}
	before := env.up.count()
	if code, body := call(dpopProof(t, key, "GET", target, dp.AccessToken)); code != 200 {
		t.Fatalf("with a proof: %d %s", code, body)
	}
	if env.up.count() != before+1 {
		t.Fatal("refused calls reached the upstream")
	}
	s := env.up.last(t)
	checkInjected(t, s)
	if s.Header.Get("Dpop") != "" {
		t.Error("the DPoP proof reached the upstream")
	}
	e := env.ev.find("access.allowed", "/allowed/dpop")
	if e == nil || e["detail.via"] != "token" || e["task"] != tk.ID || e["spiffe_id"] != agentID {
		t.Errorf("event = %v", e)
	}
	// The task's budget is 3: the token exchange and two calls; a third
	// call is refused.
	if code, _ := call(dpopProof(t, key, "GET", target, dp.AccessToken)); code != 200 {
		t.Errorf("second call within budget: %d", code)
	}
	if code, body := call(dpopProof(t, key, "GET", target, dp.AccessToken)); code != 403 || !strings.Contains(body, "budget") {
		t.Errorf("call over the task budget: %d %s", code, body)
	}
}

// TestProxyApprovalHold: a call that policy escalates waits until a human
// decides through the admin API, then proceeds or is refused with the
// approval id.
func TestProxyApprovalHold(t *testing.T) {
	env := setupTokenProxy(t)
	pu, _ := url.Parse(env.proxy)
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	for _, approve := range []bool{true, false} {
		path := fmt.Sprintf("/needs-approval/%v", approve)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				list, err := env.a.in.client.ListApprovals(ctx, store.ApprovalPending)
				if err == nil && len(list) > 0 {
					if !strings.Contains(list[0].Target, path) {
						t.Errorf("approval target %q", list[0].Target)
					}
					if _, err := env.a.in.client.DecideApproval(ctx, list[0].ID, approve, "test"); err != nil {
						t.Errorf("decide: %v", err)
					}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		before := env.up.count()
		resp, err := hc.Get("http://api.test.internal" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if approve {
			if resp.StatusCode != 200 || env.up.count() != before+1 {
				t.Errorf("approved call: %d %s", resp.StatusCode, body)
			}
			if e := env.ev.find("access.allowed", path); e == nil || !strings.HasPrefix(e["detail.approval"], "apr_") {
				t.Errorf("event = %v", e)
			}
		} else {
			var eb map[string]string
			json.Unmarshal(body, &eb)
			if resp.StatusCode != 403 || !strings.HasPrefix(eb["approval"], "apr_") || env.up.count() != before {
				t.Errorf("denied call: %d %s", resp.StatusCode, body)
			}
		}
	}
}

// TestProxyRevocation: revoking the calling instance refuses its next
// request on the same connection within 100 ms.
func TestProxyRevocation(t *testing.T) {
	env := setupTokenProxy(t)
	pu, _ := url.Parse(env.proxy)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	get := func(path string) int {
		resp, err := hc.Get("http://api.test.internal" + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/allowed/before"); code != 200 {
		t.Fatalf("before revocation: %d", code)
	}
	e := env.ev.find("access.allowed", "/allowed/before")
	if e == nil || !strings.HasPrefix(e["instance"], "inst_") {
		t.Fatalf("event = %v", e)
	}
	if _, err := env.a.in.client.Revoke(context.Background(), apitypes.RevokeRequest{Kind: store.RevokeInstance, Value: e["instance"], Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	// The revocation is enforced by the very next request: Revoke has
	// returned, so nothing may still let the instance through.
	if code := get("/allowed/after"); code != 403 {
		t.Errorf("after revocation: %d, want 403", code)
	}
	if e := env.ev.find("access.denied", "/allowed/after"); e == nil || !strings.Contains(e["reason"], "revoked") {
		t.Errorf("event = %v", e)
	}
}

// TestProxyMintedToken: a Service with a token block gets a fresh writ
// access token for its audience, which writ's own verifier accepts.
func TestProxyMintedToken(t *testing.T) {
	env := setupTokenProxy(t)
	pu, _ := url.Parse(env.proxy)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	req, _ := http.NewRequest("GET", "http://internal.test.internal/reports", nil)
	req.Header.Set("Authorization", "Bearer agent-held-token")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	raw, ok := strings.CutPrefix(env.up.last(t).Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "agent-held-token" {
		t.Fatalf("upstream Authorization %q, want a minted token", env.up.last(t).Header.Get("Authorization"))
	}
	c, err := env.a.in.srv.TokenVerifier().Verify(context.Background(), raw, token.VerifyOptions{Audience: "internal-api"})
	if err != nil {
		t.Fatalf("the minted token does not verify: %v", err)
	}
	if c.Subject != agentID || c.Scope != "read" || !strings.HasPrefix(c.Instance, "inst_") || c.ExpiresAt().After(time.Now().Add(3*time.Minute)) {
		t.Errorf("claims = %+v", c)
	}
	if e := env.ev.find("access.allowed", "/reports"); e == nil || !strings.HasPrefix(e["credential"], "minted:internal-api:at_") {
		t.Errorf("event = %v", e)
	}
}

// TestProxyWritTokenInOtherHeaders (#12 item 9): the caller's writ access
// token never reaches the upstream, whatever header it is put in; other
// credentials in those headers do.
func TestProxyWritTokenInOtherHeaders(t *testing.T) {
	env := setupTokenProxy(t)
	a := env.a
	svid := a.jwtSVID(t)
	tk := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "read things", Audiences: []string{"api"}})
	at := a.exchange(t, a.http, a.issuer, svidForm(svid, tk.ID, "api", ""), "")
	if at.status != 200 || at.AccessToken == "" {
		t.Fatalf("exchange: %+v", at)
	}
	for _, withAuth := range []bool{true, false} {
		req, _ := http.NewRequest("GET", env.proxy+"/svc/api/allowed/elsewhere", nil)
		if withAuth {
			req.Header.Set("Authorization", "Bearer "+at.AccessToken)
		}
		req.Header.Set("Cookie", "session=1; writ="+at.AccessToken)
		req.Header.Set("X-Api-Token", at.AccessToken)
		req.Header.Set("X-Forward-Auth", "Bearer "+at.AccessToken)
		req.Header.Add("X-Kept", "other-credential")
		req.Header.Add("X-Kept", "token="+at.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("withAuth=%v: %d", withAuth, resp.StatusCode)
		}
		s := env.up.last(t)
		checkInjected(t, s)
		for k, vs := range s.Header {
			for _, v := range vs {
				if strings.Contains(v, at.AccessToken) || strings.Contains(v, at.AccessToken[:40]) {
					t.Errorf("withAuth=%v: the writ token reached the upstream in %s", withAuth, k)
				}
			}
		}
		if got := s.Header.Values("X-Kept"); len(got) != 1 || got[0] != "other-credential" {
			t.Errorf("withAuth=%v: X-Kept = %q, want the value without the token kept", withAuth, got)
		}
	}
}
