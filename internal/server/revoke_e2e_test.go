package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/store"
)

// TestRevokeFullToken: revoking a pasted access token (not its jti)
// revokes its jti: introspection says inactive and the proxy refuses it;
// lifting the revocation makes it good again (#12 item 6).
func TestRevokeFullToken(t *testing.T) {
	env := setupTokenProxy(t)
	a := env.a
	ctx := context.Background()
	svid := a.jwtSVID(t)
	tk := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "read things", Audiences: []string{"api"}})
	ans := a.exchange(t, a.http, a.issuer, svidForm(svid, tk.ID, "api", ""), "")
	if ans.status != 200 || ans.TokenType != "Bearer" {
		t.Fatalf("exchange: %+v", ans)
	}
	jti := a.introspect(t, ans.AccessToken).ID
	call := func(path string) int {
		req, _ := http.NewRequest("GET", env.proxy+"/svc/api/allowed/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+ans.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := call("before"); code != 200 {
		t.Fatalf("before revocation: %d", code)
	}

	r, err := a.in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: apitypes.RevokeToken, Value: ans.AccessToken, Reason: "leaked"})
	if err != nil {
		t.Fatalf("revoke the full token: %v", err)
	}
	if r.Value != jti || r.ExpiresAt.IsZero() {
		t.Errorf("revocation = %+v, want the token's jti %s with an expiry", r, jti)
	}
	if got := a.introspect(t, ans.AccessToken); got.Active {
		t.Errorf("introspection after revoking the token = %+v, want inactive", got)
	}
	before := env.up.count()
	if code := call("after"); code == 200 || env.up.count() != before {
		t.Errorf("proxy after revoking the token: %d, upstream reached %d times; want refused", code, env.up.count()-before)
	}

	// Lifted: honoured again everywhere, and audited.
	lifted, err := a.in.client.LiftRevocation(ctx, apitypes.LiftRequest{Kind: apitypes.RevokeToken, Value: jti, Reason: "false alarm"})
	if err != nil || lifted.Value != jti || lifted.Reason != "leaked" {
		t.Fatalf("lift = %+v, %v", lifted, err)
	}
	if got := a.introspect(t, ans.AccessToken); !got.Active {
		t.Errorf("introspection after the lift = %+v, want active", got)
	}
	if code := call("lifted"); code != 200 {
		t.Errorf("proxy after the lift: %d, want 200", code)
	}
	res, err := a.in.client.AuditSearch(ctx, apitypes.AuditQuery{Type: "revocation.lifted", Limit: 10})
	if err != nil || len(res.Events) != 1 || res.Events[0].Credential != jti || res.Events[0].Reason != "false alarm" ||
		res.Events[0].Actor != "admin:admin" {
		t.Errorf("revocation.lifted events = %+v, %v", res.Events, err)
	}
	if _, err := a.in.client.LiftRevocation(ctx, apitypes.LiftRequest{Kind: apitypes.RevokeToken, Value: jti}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("lifting twice: %v, want not found", err)
	}
}

// TestRevokeRefusesUnknown: a revocation that names nothing writ knows is
// refused with a message naming the input, unless forced; a JWT that
// writ did not issue is refused even when forced.
func TestRevokeRefusesUnknown(t *testing.T) {
	in := start(t, tokenConfig(t))
	ctx := context.Background()
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", agentID)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ kind, value string }{
		{apitypes.RevokeTask, "tsk_typo"},
		{apitypes.RevokeInstance, "12345"},
		{apitypes.RevokeSpiffeID, "spiffe://writ.local/agent/nobody"},
		{apitypes.RevokeToken, "jti_never_minted"},
	} {
		_, err := in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: tc.kind, Value: tc.value})
		if !errors.Is(err, client.ErrNotFound) || !strings.Contains(err.Error(), tc.value) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("revoke %s %s: %v, want not found naming the value and --force", tc.kind, tc.value, err)
		}
	}
	if list, err := in.client.ListRevocations(ctx); err != nil || len(list) != 0 {
		t.Fatalf("refused revocations are in force: %+v, %v", list, err)
	}
	// Known targets need no force.
	if r, err := in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: apitypes.RevokeSpiffeID, Value: agentID}); err != nil || r.Value != agentID {
		t.Errorf("revoke a registered SPIFFE ID: %+v, %v", r, err)
	}
	// --force revokes before the target exists.
	r, err := in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: apitypes.RevokeInstance, Value: "inst_future", Reason: "pre-emptive", Force: true})
	if err != nil || r.Value != "inst_future" || r.Actor != "admin:admin" {
		t.Errorf("forced revoke: %+v, %v", r, err)
	}
	if !in.srv.Revocations().Revoked(store.RevokeInstance, "inst_future") {
		t.Error("the forced revocation is not in force")
	}
	// A JWT that this server did not sign.
	fake := "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	for _, force := range []bool{false, true} {
		if _, err := in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: apitypes.RevokeToken, Value: fake, Force: force}); !errors.Is(err, client.ErrInvalid) ||
			!strings.Contains(err.Error(), "not an access token issued by this writ server") {
			t.Errorf("revoke a foreign JWT (force %v): %v", force, err)
		}
	}
	if _, err := in.client.LiftRevocation(ctx, apitypes.LiftRequest{Kind: apitypes.RevokeTask, Value: "tsk_typo"}); !errors.Is(err, client.ErrNotFound) ||
		!strings.Contains(err.Error(), "tsk_typo") {
		t.Errorf("lift of what is not revoked: %v", err)
	}
	if _, err := in.client.LiftRevocation(ctx, apitypes.LiftRequest{Kind: apitypes.RevokeInstance, Value: "inst_future"}); err != nil {
		t.Errorf("lift: %v", err)
	}
	if in.srv.Revocations().Revoked(store.RevokeInstance, "inst_future") {
		t.Error("a lifted revocation is still in force")
	}
}
