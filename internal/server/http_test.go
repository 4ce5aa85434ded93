package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHTTPSurface(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	base := "http://" + in.srv.HTTPAddr()

	if resp, body := get(t, base+"/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, base+"/readyz"); resp.StatusCode != 200 {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}

	// The SPIFFE bundle endpoint parses with go-spiffe and has both uses.
	resp, body := get(t, base+"/bundle")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/bundle = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("writ.local"), []byte(body))
	if err != nil {
		t.Fatalf("parse bundle: %v", err)
	}
	if len(b.X509Authorities()) == 0 || len(b.JWTAuthorities()) == 0 {
		t.Errorf("bundle has %d X.509 and %d JWT authorities", len(b.X509Authorities()), len(b.JWTAuthorities()))
	}
	if seq, ok := b.SequenceNumber(); !ok || seq == 0 {
		t.Errorf("bundle sequence = %d, %v", seq, ok)
	}
	if _, ok := b.RefreshHint(); !ok {
		t.Error("bundle has no refresh hint")
	}
	var raw struct {
		Keys []struct {
			Use string `json:"use"`
		} `json:"keys"`
	}
	json.Unmarshal([]byte(body), &raw)
	uses := map[string]bool{}
	for _, k := range raw.Keys {
		uses[k.Use] = true
	}
	if !uses["x509-svid"] || !uses["jwt-svid"] {
		t.Errorf("bundle key uses = %v", uses)
	}

	// The admin API refuses missing and wrong credentials with 401 JSON.
	resp, body = get(t, base+"/v1/entries")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(body, "admin credential missing") {
		t.Errorf("no credential: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/v1/entries", "Authorization", "Bearer writ_admin_guess")
	if resp.StatusCode != 401 || !strings.Contains(body, "admin credential is wrong") {
		t.Errorf("wrong credential: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("security headers missing")
	}

	// Metrics count issued SVIDs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, selfEntry("m", "spiffe://writ.local/m")); err != nil {
		t.Fatal(err)
	}
	if _, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(in.addr)); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, base+"/metrics")
	if !strings.Contains(body, `writ_svids_issued_total{type="x509"} 1`) {
		t.Errorf("/metrics lacks the issued SVID: %s", grep(body, "writ_"))
	}
	for _, m := range []string{"writ_audit_events ", "writ_audit_index_lag_events ", "writ_audit_failed 0"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %q: %s", m, grep(body, "writ_audit"))
		}
	}
	if strings.Contains(body, "writ_audit_events 0\n") {
		t.Errorf("/metrics counts no audit events after an entry change and an SVID: %s", grep(body, "writ_audit"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
