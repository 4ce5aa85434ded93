package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	jwxjwk "github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/token"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const agentID = "spiffe://writ.local/agent/me"

const tokenPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata:
  name: me
spec:
  subjects: [spiffe://writ.local/agent/me, "user:*"]
  rules:
    - name: tasks
      effect: allow
      targets:
        - task: {}
    - name: mail-token
      effect: allow
      targets:
        - token: {audiences: [mail-api], scopes: [mail.read, mail.draft]}
      max_ttl: 2m
`

// tokenConfig listens on a free port chosen up front, so that the issuer
// URL (server.public_url) is the real address.
func tokenConfig(t *testing.T) config.Config {
	cfg := config.Config{DataDir: t.TempDir()}
	cfg.Server.Listen = "127.0.0.1:0" // the public URL follows the bound port
	cfg.Server.TLSListen = "127.0.0.1:0"
	cfg.Proxy.Listen = "127.0.0.1:0"
	cfg.Defaults()
	return cfg
}

// agent is the test process acting as an agent through the Workload API.
type agent struct {
	cfg    config.Config
	in     *instance
	issuer string
	http   *http.Client
}

func setupAgent(t *testing.T) *agent {
	t.Helper()
	cfg := tokenConfig(t)
	in := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", agentID)); err != nil {
		t.Fatal(err)
	}
	if _, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "me.yaml", Content: tokenPolicy}}}); err != nil {
		t.Fatal(err)
	}
	return &agent{cfg: cfg, in: in, issuer: in.srv.PublicURL(), http: &http.Client{Timeout: 10 * time.Second}}
}

func (a *agent) jwtSVID(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: a.issuer}, workloadapi.WithAddr(a.in.addr))
	if err != nil {
		t.Fatalf("FetchJWTSVID: %v", err)
	}
	return s.Marshal()
}

// openTask opens a task as the agent, authenticated by its JWT-SVID.
func (a *agent) openTask(t *testing.T, svid string, body apitypes.OpenTaskRequest) apitypes.Task {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, a.issuer+"/v1/tasks", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+svid)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("open task: %s %s", resp.Status, raw)
	}
	var tk apitypes.Task
	if err := json.NewDecoder(resp.Body).Decode(&tk); err != nil {
		t.Fatal(err)
	}
	return tk
}

type tokenAnswer struct {
	status int
	token.Response
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (a *agent) exchange(t *testing.T, hc *http.Client, base string, form url.Values, dpop string) tokenAnswer {
	t.Helper()
	form.Set("grant_type", token.GrantExchange)
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if dpop != "" {
		req.Header.Set("DPoP", dpop)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans tokenAnswer
	ans.status = resp.StatusCode
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &ans); err != nil {
		t.Fatalf("token endpoint answered %s with non-JSON %q", resp.Status, raw)
	}
	return ans
}

func svidForm(svid, task, audience, scope string) url.Values {
	v := url.Values{"subject_token": {svid}, "subject_token_type": {token.TypeJWT}, "audience": {audience}, "task": {task}}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

func (a *agent) introspect(t *testing.T, raw string) token.Introspection {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.issuer+"/oauth2/introspect", strings.NewReader(url.Values{"token": {raw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+a.jwtSVID(t))
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: %s", resp.Status)
	}
	var out token.Introspection
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// TestTokenExchangeEndToEnd: a workload fetches its JWT-SVID through the
// Workload API, opens a task, exchanges the SVID for an access token that
// a third-party JOSE library verifies against /jwks.json; scopes narrow;
// closing the task kills the token.
func TestTokenExchangeEndToEnd(t *testing.T) {
	a := setupAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svid := a.jwtSVID(t)
	tk := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "reply to customers", OnBehalfOf: "alice",
		Audiences: []string{"mail-api"}, Scopes: []string{"mail.read", "mail.draft"}, MaxDuration: "10m"})
	if tk.State != store.TaskOpen || tk.SpiffeID != agentID || !strings.HasPrefix(tk.Instance, "inst_") {
		t.Fatalf("task = %+v", tk)
	}

	ans := a.exchange(t, a.http, a.issuer, svidForm(svid, tk.ID, "mail-api", "mail.read"), "")
	if ans.status != 200 || ans.AccessToken == "" || ans.TokenType != "Bearer" || ans.IssuedTokenType != token.TypeAccessToken {
		t.Fatalf("exchange: %d %+v", ans.status, ans)
	}
	if ans.ExpiresIn <= 0 || ans.ExpiresIn > 120 {
		t.Errorf("expires_in %d, want capped at the policy's 2m", ans.ExpiresIn)
	}

	// A third-party library verifies it with the published JWKS.
	set, err := jwxjwk.Fetch(ctx, a.issuer+"/jwks.json")
	if err != nil {
		t.Fatalf("fetch JWKS: %v", err)
	}
	parsed, err := jwxjwt.Parse([]byte(ans.AccessToken), jwxjwt.WithKeySet(set), jwxjwt.WithIssuer(a.issuer), jwxjwt.WithAudience("mail-api"))
	if err != nil {
		t.Fatalf("jwx verification: %v", err)
	}
	var scope, task, inst, obo string
	parsed.Get("scope", &scope)
	parsed.Get("task", &task)
	parsed.Get("agent_instance", &inst)
	parsed.Get("on_behalf_of", &obo)
	if sub, _ := parsed.Subject(); sub != agentID || scope != "mail.read" || task != tk.ID || inst != tk.Instance || obo != "alice" {
		t.Errorf("claims sub=%s scope=%q task=%s instance=%s obo=%s", sub, scope, task, inst, obo)
	}
	if _, err := jwxjwt.Parse([]byte(ans.AccessToken), jwxjwt.WithKeySet(set), jwxjwt.WithIssuer(a.issuer), jwxjwt.WithAudience("billing")); err == nil {
		t.Error("jwx accepted the token for another audience")
	}
	hdr := strings.Split(ans.AccessToken, ".")[0]
	raw, _ := base64.RawURLEncoding.DecodeString(hdr)
	if !strings.Contains(string(raw), `"typ":"at+jwt"`) || !strings.Contains(string(raw), `"alg":"ES256"`) {
		t.Errorf("header %s, want typ at+jwt and ES256", raw)
	}

	// Discovery.
	resp, err := a.http.Get(a.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md token.Metadata
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md.Issuer != a.issuer || md.TokenEndpoint != a.issuer+"/oauth2/token" || md.JWKSURI != a.issuer+"/jwks.json" {
		t.Errorf("metadata = %+v", md)
	}

	// Never wider than the task; the right OAuth errors.
	for _, tc := range []struct {
		name string
		form url.Values
		code string
	}{
		{"scope outside the task", svidForm(svid, tk.ID, "mail-api", "mail.read mail.admin"), token.CodeInvalidScope},
		{"audience outside the task", svidForm(svid, tk.ID, "billing-api", ""), token.CodeInvalidTarget},
		{"unknown task", svidForm(svid, "task_nope", "mail-api", ""), token.CodeInvalidGrant},
		{"no identity", url.Values{"audience": {"mail-api"}, "task": {tk.ID}}, token.CodeInvalidClient},
		{"forged subject token", svidForm(svid[:len(svid)-4]+"AAAA", tk.ID, "mail-api", ""), token.CodeInvalidGrant},
		{"access token as subject token", svidForm(ans.AccessToken, tk.ID, "mail-api", ""), token.CodeInvalidGrant},
		{"alg none subject token", svidForm(noneToken(svid), tk.ID, "mail-api", ""), token.CodeInvalidGrant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := a.exchange(t, a.http, a.issuer, tc.form, "")
			if got.Error != tc.code || got.AccessToken != "" || got.status < 400 {
				t.Errorf("got %d %q (%s), want %s", got.status, got.Error, got.Description, tc.code)
			}
		})
	}

	v := a.in.srv.TokenVerifier()
	if _, err := v.Verify(ctx, ans.AccessToken, token.VerifyOptions{Audience: "mail-api"}); err != nil {
		t.Fatalf("in-process verifier: %v", err)
	}
	if got := a.introspect(t, ans.AccessToken); !got.Active || got.Task != tk.ID || got.Scope != "mail.read" {
		t.Fatalf("introspection before close = %+v", got)
	}

	// Closing the task kills the token at once.
	if _, err := a.in.client.CloseTask(ctx, tk.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if got := a.introspect(t, ans.AccessToken); got.Active {
		t.Errorf("introspection after close = %+v, want inactive", got)
	}
	if _, err := v.Verify(ctx, ans.AccessToken, token.VerifyOptions{Audience: "mail-api"}); !errors.Is(err, token.ErrRevoked) {
		t.Errorf("verifier after close: %v, want ErrRevoked", err)
	}
	if got := a.exchange(t, a.http, a.issuer, svidForm(svid, tk.ID, "mail-api", ""), ""); got.Error != token.CodeInvalidGrant {
		t.Errorf("exchange under a closed task: %+v, want invalid_grant", got)
	}
}

func noneToken(svid string) string {
	parts := strings.Split(svid, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

func TestSingleUseAndDPoP(t *testing.T) {
	a := setupAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svid := a.jwtSVID(t)
	tk := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "drafts", Audiences: []string{"mail-api"}, Scopes: []string{"mail.draft"}})
	v := a.in.srv.TokenVerifier()

	// Single use: the second presentation is a replay.
	f := svidForm(svid, tk.ID, "mail-api", "")
	f.Set("single_use", "true")
	su := a.exchange(t, a.http, a.issuer, f, "")
	if su.status != 200 {
		t.Fatalf("single-use exchange: %+v", su)
	}
	if _, err := v.Verify(ctx, su.AccessToken, token.VerifyOptions{Audience: "mail-api"}); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := v.Verify(ctx, su.AccessToken, token.VerifyOptions{Audience: "mail-api"}); !errors.Is(err, token.ErrReplayed) {
		t.Errorf("second use: %v, want ErrReplayed", err)
	}

	// DPoP: the token is bound to the proof key and useless without a proof.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	proof := dpopProof(t, key, "POST", a.issuer+"/oauth2/token", "")
	dp := a.exchange(t, a.http, a.issuer, svidForm(svid, tk.ID, "mail-api", ""), proof)
	if dp.status != 200 || dp.TokenType != "DPoP" {
		t.Fatalf("DPoP exchange: %+v", dp)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey}
	tp, _ := jwk.Thumbprint(crypto.SHA256)
	if got := a.introspect(t, dp.AccessToken); got.Cnf == nil || got.Cnf.JKT != base64.RawURLEncoding.EncodeToString(tp) {
		t.Errorf("cnf = %+v, want the proof key's thumbprint", got.Cnf)
	}
	const rs = "https://mail.example/v1/drafts"
	opts := token.VerifyOptions{Audience: "mail-api", HTTPMethod: "POST", HTTPURL: rs}
	if _, err := v.Verify(ctx, dp.AccessToken, opts); !errors.Is(err, token.ErrDPoP) {
		t.Errorf("without a proof: %v, want ErrDPoP", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	opts.DPoPProof = dpopProof(t, other, "POST", rs, dp.AccessToken)
	if _, err := v.Verify(ctx, dp.AccessToken, opts); !errors.Is(err, token.ErrDPoP) {
		t.Errorf("with another key's proof: %v, want ErrDPoP", err)
	}
	opts.DPoPProof = dpopProof(t, key, "POST", rs, dp.AccessToken)
	if _, err := v.Verify(ctx, dp.AccessToken, opts); err != nil {
		t.Errorf("with the matching proof: %v", err)
	}
	if _, err := v.Verify(ctx, dp.AccessToken, opts); !errors.Is(err, token.ErrDPoP) {
		t.Errorf("replayed proof: %v, want ErrDPoP", err)
	}
	// A replayed proof at the token endpoint is refused too.
	if got := a.exchange(t, a.http, a.issuer, svidForm(svid, tk.ID, "mail-api", ""), proof); got.Error != token.CodeInvalidDPoP {
		t.Errorf("replayed proof at the token endpoint: %+v, want invalid_dpop_proof", got)
	}
}

func dpopProof(t *testing.T, key *ecdsa.PrivateKey, method, u, accessToken string) string {
	t.Helper()
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		&jose.SignerOptions{EmbedJWK: true, ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: "dpop+jwt"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// TestMTLSAndRevocation: an agent authenticates with its X.509-SVID over
// mutual TLS and gets a certificate-bound token; revoking its instance
// withdraws its SVIDs, kills its tokens and refuses new exchanges.
func TestMTLSAndRevocation(t *testing.T) {
	a := setupAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(a.in.addr)))
	if err != nil {
		t.Fatalf("X509Source: %v", err)
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	serverID := spiffeid.RequireFromString("spiffe://writ.local/writ/server")
	mtls := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(serverID))}}
	base := "https://" + a.in.srv.TLSAddr()

	// Open a task over mTLS (no bearer), then exchange with no subject token.
	b, _ := json.Marshal(apitypes.OpenTaskRequest{Purpose: "triage", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}})
	resp, err := mtls.Post(base+"/v1/tasks", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("open task over mTLS: %v", err)
	}
	var tk apitypes.Task
	json.NewDecoder(resp.Body).Decode(&tk)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || tk.Instance != svid.Certificates[0].Subject.SerialNumber {
		t.Fatalf("open task over mTLS: %s %+v", resp.Status, tk)
	}
	ans := a.exchange(t, mtls, base, url.Values{"audience": {"mail-api"}, "task": {tk.ID}}, "")
	if ans.status != 200 {
		t.Fatalf("mTLS exchange: %+v", ans)
	}
	v := a.in.srv.TokenVerifier()
	if _, err := v.Verify(ctx, ans.AccessToken, token.VerifyOptions{Audience: "mail-api", PeerCert: svid.Certificates[0]}); err != nil {
		t.Fatalf("verify with the bound certificate: %v", err)
	}
	if _, err := v.Verify(ctx, ans.AccessToken, token.VerifyOptions{Audience: "mail-api"}); !errors.Is(err, token.ErrBinding) {
		t.Errorf("verify without the certificate: %v, want ErrBinding", err)
	}

	// Kill switch on the instance.
	rec := watch(t, a.in.addr)
	rec.waitFor(t, "first SVID", 10*time.Second, func(u []*workloadapi.X509Context) bool { return len(u) > 0 })
	start := time.Now()
	if _, err := a.in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: store.RevokeInstance, Value: tk.Instance, Reason: "compromised"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, ans.AccessToken, token.VerifyOptions{Audience: "mail-api", PeerCert: svid.Certificates[0]}); !errors.Is(err, token.ErrRevoked) {
		t.Errorf("verify after revocation: %v, want ErrRevoked", err)
	}
	t.Logf("revocation to in-process enforcement: %v (including the admin API round trip)", time.Since(start))
	// The stream withdraws the SVID: an error (no identity) or an update without it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		withdrawn := len(rec.errs) > 0 || (len(rec.updates) > 1 && len(rec.updates[len(rec.updates)-1].SVIDs) == 0)
		rec.mu.Unlock()
		if withdrawn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked instance's X.509-SVID stream was not withdrawn")
		}
		select {
		case <-rec.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(a.in.addr)); status.Code(err) != codes.PermissionDenied {
		t.Errorf("FetchX509SVID after revocation: %v, want PermissionDenied", err)
	}
	// New exchanges over mTLS with the (still unexpired) certificate fail.
	if got := a.exchange(t, mtls, base, url.Values{"audience": {"mail-api"}, "task": {tk.ID}}, ""); got.status == 200 {
		t.Errorf("exchange after revocation succeeded: %+v", got)
	}
	// The task is closed by the kill switch.
	deadline = time.Now().Add(3 * time.Second)
	for {
		got, err := a.in.client.GetTask(ctx, tk.ID, "")
		if err == nil && got.State == store.TaskClosed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task after instance revocation: %+v, %v; want closed", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTasksDefaultDenyAndApproval: without a policy a task is denied with
// a reason; a task whose policy needs approval waits for an operator.
func TestTasksDefaultDenyAndApproval(t *testing.T) {
	in := start(t, tokenConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := in.client.OpenTask(ctx, apitypes.OpenTaskRequest{SpiffeID: agentID, Purpose: "pay", Audiences: []string{"bank"}})
	var he *client.Error
	if !errors.As(err, &he) || he.Status != http.StatusForbidden || !strings.Contains(he.Msg, "default deny") {
		t.Fatalf("open without policy: %v, want 403 naming the default deny", err)
	}
	pol := strings.Replace(tokenPolicy, "        - task: {}\n", "        - task: {}\n      approval: {approvers: [group:finance], timeout: 5m}\n", 1)
	pol = strings.Replace(pol, "audiences: [mail-api]", "audiences: [mail-api, bank]", 1)
	if _, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "me.yaml", Content: pol}}}); err != nil {
		t.Fatal(err)
	}
	tk, err := in.client.OpenTask(ctx, apitypes.OpenTaskRequest{SpiffeID: agentID, Purpose: "pay", Audiences: []string{"bank"}})
	if err != nil || tk.State != store.TaskPending || tk.Approval == "" {
		t.Fatalf("open needing approval: %+v, %v", tk, err)
	}
	pending, err := in.client.ListApprovals(ctx, store.ApprovalPending)
	if err != nil || len(pending) != 1 || pending[0].Task != tk.ID || pending[0].Approvers[0] != "group:finance" {
		t.Fatalf("pending approvals = %+v, %v", pending, err)
	}
	waited := make(chan apitypes.Task, 1)
	go func() {
		got, err := in.client.GetTask(ctx, tk.ID, "20s")
		if err != nil {
			t.Error(err)
		}
		waited <- got
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := in.client.DecideApproval(ctx, tk.Approval, true, "looks fine"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-waited:
		if got.State != store.TaskOpen {
			t.Errorf("after approval the task is %s, want open", got.State)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting GET did not return after the approval")
	}
	if _, err := in.client.DecideApproval(ctx, tk.Approval, false, ""); !errors.As(err, &he) || he.Status != http.StatusConflict {
		t.Errorf("deciding twice: %v, want 409", err)
	}
}

// TestDelegation: an actor token produces the act claim, nested when the
// actor token is itself a delegated writ token; authorization_details are
// carried into the token.
func TestDelegation(t *testing.T) {
	a := setupAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.in.client.CreateEntry(ctx, selfEntry("orchestrator", "spiffe://writ.local/agent/orchestrator")); err != nil {
		t.Fatal(err)
	}
	orch, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: a.issuer,
		Subject: spiffeid.RequireFromString("spiffe://writ.local/agent/orchestrator")}, workloadapi.WithAddr(a.in.addr))
	if err != nil {
		t.Fatalf("FetchJWTSVID for the orchestrator: %v", err)
	}
	svid := a.jwtSVID(t)
	tk := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "delegated", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}})

	f := svidForm(svid, tk.ID, "mail-api", "")
	f.Set("actor_token", orch.Marshal())
	f.Set("actor_token_type", token.TypeJWT)
	f.Set("authorization_details", `[{"type":"mail","locations":["mail-api"],"actions":["read"]}]`)
	first := a.exchange(t, a.http, a.issuer, f, "")
	if first.status != 200 {
		t.Fatalf("delegated exchange: %+v", first)
	}
	got := a.introspect(t, first.AccessToken)
	if got.Act == nil || got.Act.Subject != "spiffe://writ.local/agent/orchestrator" || got.Act.Act != nil {
		t.Fatalf("act = %+v, want the orchestrator", got.Act)
	}
	claims, err := a.in.srv.TokenVerifier().Verify(ctx, first.AccessToken, token.VerifyOptions{Audience: "mail-api"})
	if err != nil || len(claims.AuthorizationDetails) != 1 || !strings.Contains(string(claims.AuthorizationDetails[0]), `"actions":["read"]`) {
		t.Errorf("authorization_details = %v, %v", claims, err)
	}

	// The delegated token as actor token: the chain nests.
	f = svidForm(svid, tk.ID, "mail-api", "")
	f.Set("actor_token", first.AccessToken)
	f.Set("actor_token_type", token.TypeAccessToken)
	second := a.exchange(t, a.http, a.issuer, f, "")
	if second.status != 200 {
		t.Fatalf("nested delegation: %+v", second)
	}
	got = a.introspect(t, second.AccessToken)
	if got.Act == nil || got.Act.Subject != agentID || got.Act.Act == nil || got.Act.Act.Subject != "spiffe://writ.local/agent/orchestrator" {
		t.Errorf("nested act = %+v, want {sub: me, act: {sub: orchestrator}}", got.Act)
	}

	// A forged actor token is refused.
	f.Set("actor_token", first.AccessToken[:len(first.AccessToken)-3]+"AAA")
	if bad := a.exchange(t, a.http, a.issuer, f, ""); bad.Error != token.CodeInvalidGrant {
		t.Errorf("forged actor token: %+v, want invalid_grant", bad)
	}
}

// TestTokenStateSurvivesRestart: open tasks, revocations and pending
// approvals are in the store; after a restart a task still mints, a
// closed task's token stays dead and a revoked instance stays revoked.
func TestTokenStateSurvivesRestart(t *testing.T) {
	a := setupAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svid := a.jwtSVID(t)
	open := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "stays open", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}})
	closing := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "closes", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}})
	dead := a.exchange(t, a.http, a.issuer, svidForm(svid, closing.ID, "mail-api", ""), "")
	if dead.status != 200 {
		t.Fatalf("exchange: %+v", dead)
	}
	if _, err := a.in.client.CloseTask(ctx, closing.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.in.client.Revoke(ctx, apitypes.RevokeRequest{Kind: store.RevokeInstance, Value: "inst_someone_else", Reason: "test", Force: true}); err != nil {
		t.Fatal(err)
	}
	// The restarted server keeps its address, and so its issuer.
	a.cfg.Server.Listen, a.cfg.Server.PublicURL = a.in.srv.HTTPAddr(), a.issuer
	a.in.stop()

	in := start(t, a.cfg)
	a.in = in
	if got := a.exchange(t, a.http, a.issuer, svidForm(svid, open.ID, "mail-api", ""), ""); got.status != 200 {
		t.Errorf("exchange under the open task after restart: %+v", got)
	}
	if _, err := in.srv.TokenVerifier().Verify(ctx, dead.AccessToken, token.VerifyOptions{Audience: "mail-api"}); !errors.Is(err, token.ErrRevoked) {
		t.Errorf("closed task's token after restart: %v, want ErrRevoked", err)
	}
	if !in.srv.Revocations().Revoked(store.RevokeInstance, "inst_someone_else") {
		t.Error("instance revocation lost across the restart")
	}
}

// TestLabelSubjects: an agent's registration labels reach policy, so
// label: subject selectors decide its tasks.
func TestLabelSubjects(t *testing.T) {
	cfg := tokenConfig(t)
	in := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := selfEntry("me", agentID)
	e.Labels = map[string]string{"team": "mail"}
	if _, err := in.client.CreateEntry(ctx, e); err != nil {
		t.Fatal(err)
	}
	pol := strings.Replace(tokenPolicy, `subjects: [spiffe://writ.local/agent/me, "user:*"]`, `subjects: ["label:team=mail"]`, 1)
	if _, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "me.yaml", Content: pol}}}); err != nil {
		t.Fatal(err)
	}
	a := &agent{cfg: cfg, in: in, issuer: in.srv.PublicURL(), http: &http.Client{Timeout: 10 * time.Second}}
	tk := a.openTask(t, a.jwtSVID(t), apitypes.OpenTaskRequest{Purpose: "by label", Audiences: []string{"mail-api"}})
	if tk.State != store.TaskOpen || tk.Rule != "tasks" {
		t.Errorf("task = %+v, want opened by the label policy", tk)
	}
}
