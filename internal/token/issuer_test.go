package token_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"github.com/writ-dev/writ/internal/task"
	"github.com/writ-dev/writ/internal/token"
)

const issuerPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata:
  name: p
spec:
  subjects: [spiffe://writ.test/agent/a]
  rules:
    - name: tasks
      effect: allow
      targets: [{task: {}}]
    - name: mail
      effect: allow
      targets: [{token: {audiences: [mail-api], scopes: [mail.read, mail.draft]}}]
    - name: no-draft-tokens
      effect: deny
      targets: [{token: {scopes: [mail.draft]}}]
      when: task.calls >= 1
`

type issuerEnv struct {
	srv   *httptest.Server
	ca    *ca.Authority
	tasks *task.Service
	rec   *audittest.Recorder
	iss   string
}

func newIssuerEnv(t *testing.T) *issuerEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek := make([]byte, 32)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	td := spiffeid.RequireTrustDomainFromString("writ.test")
	authority, err := ca.New(ctx, ca.Config{TrustDomain: td, Keys: db, Resources: db, Sealer: sealer, Emitter: audit.Discard})
	if err != nil {
		t.Fatal(err)
	}
	docs, err := resource.Parse("p.yaml", []byte(issuerPolicy))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(policy.Config{}, snap)
	rec := &audittest.Recorder{}
	rev, _ := revoke.New(ctx, revoke.Config{Store: db, Emitter: rec})
	apr, _ := approval.New(ctx, approval.Config{Store: db, Emitter: rec})
	tasks, err := task.New(ctx, task.Config{Store: db, Policy: engine, Approvals: apr, Revoke: rev, Emitter: rec})
	if err != nil {
		t.Fatal(err)
	}
	e := &issuerEnv{ca: authority, tasks: tasks, rec: rec}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.iss = e.srv.URL
	bundle := &token.Bundle{}
	bundle.Set(authority.Bundle())
	auth := &token.Authenticator{Bundle: bundle, Audience: e.iss, Revocations: rev}
	ver, _ := token.NewVerifier(token.VerifierConfig{Issuer: e.iss, Keys: bundle, Revocations: rev})
	issuer, err := token.NewIssuer(token.IssuerConfig{Issuer: e.iss, Signer: authority, Tasks: tasks, Policy: engine, Auth: auth,
		Verifier: ver, Revoker: rev, Emitter: rec, JWKS: bundle.JWKS})
	if err != nil {
		t.Fatal(err)
	}
	issuer.Register(mux, func(r *http.Request) (string, bool) {
		return "admin:test", r.Header.Get("Authorization") == "Bearer letmein"
	})
	return e
}

func (e *issuerEnv) svid(t *testing.T, aud string, ttl time.Duration) string {
	t.Helper()
	s, _, err := e.ca.SignJWTSVID(context.Background(), ca.JWTSVIDParams{ID: spiffeid.RequireFromString("spiffe://writ.test/agent/a"),
		Audience: []string{aud}, TTL: ttl, Instance: "inst_a"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *issuerEnv) post(t *testing.T, path string, form url.Values, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestTokenEndpointAudit: every refusal answers with the right OAuth code
// and is audited as token.denied with its reason; a mint is audited with
// the task, the token id and the deciding rule.
func TestTokenEndpointAudit(t *testing.T) {
	e := newIssuerEnv(t)
	ctx := context.Background()
	tk, err := e.tasks.Open(ctx, task.Subject{SpiffeID: "spiffe://writ.test/agent/a", Instance: "inst_a"},
		task.OpenRequest{Purpose: "p", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read", "mail.draft"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	svid := e.svid(t, e.iss, 0)
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {token.GrantExchange}, "subject_token": {svid}, "subject_token_type": {token.TypeJWT},
			"audience": {"mail-api"}, "task": {tk.ID}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	status, body := e.post(t, "/oauth2/token", form("scope", "mail.read"), nil)
	if status != 200 {
		t.Fatalf("mint: %d %v", status, body)
	}
	minted, ok := e.rec.Last(audit.TokenMinted)
	if !ok || minted.Task != tk.ID || minted.Credential == "" || minted.Rule != "mail" || minted.Instance != "inst_a" {
		t.Errorf("token.minted = %+v", minted)
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"svid for another audience", form("subject_token", e.svid(t, "someone-else", 0)), 400, token.CodeInvalidGrant},
		{"alg none", form("subject_token", `eyJhbGciOiJub25lIn0.e30.`), 400, token.CodeInvalidGrant},
		{"oversized", form("subject_token", strings.Repeat("a", 9000)), 400, token.CodeInvalidRequest},
		{"policy deny after the first call", form("scope", "mail.draft"), 403, token.CodeAccessDenied},
		{"no audience", form("audience", ""), 400, token.CodeInvalidTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.post(t, "/oauth2/token", tc.form, nil)
			if status != tc.status || body["error"] != tc.code {
				t.Errorf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if strings.Contains(strings.ToLower(body["error_description"].(string)), "goroutine") {
				t.Errorf("description leaks internals: %v", body["error_description"])
			}
			denied, ok := e.rec.Last(audit.TokenDenied)
			if !ok || !strings.HasPrefix(denied.Reason, tc.code) {
				t.Errorf("token.denied = %+v, want reason starting %s", denied, tc.code)
			}
		})
	}
	var policyDenial audit.Event
	for _, ev := range e.rec.OfType(audit.TokenDenied) {
		if ev.Rule == "no-draft-tokens" {
			policyDenial = ev
		}
	}
	if policyDenial.Task != tk.ID || policyDenial.Policy == "" {
		t.Errorf("policy denial event = %+v, want the task and the deciding policy", policyDenial)
	}
}

// TestIntrospectionNeedsAuthentication: RFC 7662 for authenticated
// callers only.
func TestIntrospectionNeedsAuthentication(t *testing.T) {
	e := newIssuerEnv(t)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"anonymous", nil, 401},
		{"wrong admin credential", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"admin", map[string]string{"Authorization": "Bearer letmein"}, 200},
		{"agent JWT-SVID", map[string]string{"Authorization": "Bearer " + e.svid(t, e.iss, 0)}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.post(t, "/oauth2/introspect", url.Values{"token": {"garbage"}}, tc.hdr)
			if status != tc.want {
				t.Errorf("status %d (%v), want %d", status, body, tc.want)
			}
			if status == 200 && body["active"] != false {
				t.Errorf("garbage introspected as %v", body)
			}
		})
	}
}
