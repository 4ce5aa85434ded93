package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/scan"
	"github.com/writ-dev/writ/internal/secrets"
)

// TestScanBlastRadius is #15's ranking on a scripted deployment: a
// Service "billing" injects a brokered key that three agents' traffic
// reached; a repository holds that key (it opens billing, used by three
// agents) and another secret that opens nothing. Reported with the
// deployment's fingerprint key, the first ranks above the second, both are
// posture findings (the first high, reaching billing) and credential
// nodes of the lineage graph (the first with an opens edge), and neither
// value is in any answer or in the store.
func TestScanBlastRadius(t *testing.T) {
	dir := t.TempDir()
	in := start(t, testConfig(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const (
		billingKey = "sk_live_4eC39HqLyjWDarjtT1zdp7dcQz8vRw2Kp0Xy"
		lonely     = "ghp_R7vY2mQ9xK4tL8wZ3nB6cF1hJ5sD0gA2pE7u"
	)
	if _, err := in.client.PutCredential(ctx, "billing-key", "bearer", billingKey); err != nil {
		t.Fatal(err)
	}
	apply(t, in.client, "billing.yaml", `apiVersion: writ.dev/v1
kind: Service
metadata: {name: billing}
spec:
  upstream: https://api.billing.example
  credential: {name: billing-key}
`)
	// Three agents reached billing (the scripted history).
	for _, a := range []string{"a", "b", "c"} {
		if err := in.srv.Emitter().Emit(ctx, audit.Event{Type: audit.AccessAllowed, Decision: "allow", SpiffeID: "spiffe://writ.local/agent/" + a,
			Instance: "inst_" + a, Action: "GET /v1/charges", Details: map[string]string{"service": "billing", "method": "GET", "path": "/v1/charges", "via": "mtls"}}); err != nil {
			t.Fatal(err)
		}
	}

	repo := t.TempDir()
	os.WriteFile(filepath.Join(repo, "billing.env"), []byte("BILLING_KEY="+billingKey+"\n"), 0o600)
	os.WriteFile(filepath.Join(repo, "ci.env"), []byte("GITHUB_TOKEN="+lonely+"\n"), 0o600)

	// As `writ scan --report` does: the deployment's key, then the report.
	k, err := in.client.FingerprintKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(k.Key)
	if k.KeyID != secrets.KeyID(key) {
		t.Fatalf("key id %s does not name the key", k.KeyID)
	}
	det, err := secrets.New(secrets.Config{FingerprintKey: key})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scan.New(scan.Config{Detector: det})
	if err != nil {
		t.Fatal(err)
	}
	findings, err := sc.Dir(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 2 {
		t.Fatalf("findings = %+v", findings)
	}
	if _, err := in.client.ReportScan(ctx, apitypes.ScanReportRequest{Target: "repo", KeyID: "fpk_other", Findings: findings}); err == nil ||
		!strings.Contains(err.Error(), "not this deployment's") {
		t.Errorf("a report under another key: %v", err)
	}
	resp, err := in.client.ReportScan(ctx, apitypes.ScanReportRequest{Target: "repo", KeyID: k.KeyID, Findings: findings})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Findings) != 2 {
		t.Fatalf("ranked = %+v", resp.Findings)
	}
	top, last := resp.Findings[0], resp.Findings[1]
	if top.Path != "billing.env" || last.Path != "ci.env" || top.Blast.Score <= last.Blast.Score {
		t.Fatalf("ranking: %s (%d) then %s (%d), want billing.env above ci.env", top.Path, top.Blast.Score, last.Path, last.Blast.Score)
	}
	if len(top.Blast.Opens) != 1 || top.Blast.Opens[0] != "billing" || len(top.Blast.UsedBy) != 3 || len(last.Blast.Opens) != 0 {
		t.Errorf("blast radius: top %+v, last %+v", top.Blast, last.Blast)
	}

	post, err := in.client.Posture(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []apitypes.PostureFinding
	for _, f := range post.Findings {
		if f.Check == "static_secret" {
			got = append(got, f)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0].Title, "billing.env") || got[0].Severity != "high" ||
		len(got[0].Reaches) != 1 || got[0].Reaches[0] != "service:billing" || !strings.Contains(got[1].Title, "ci.env") {
		t.Errorf("posture static_secret findings = %+v", got)
	}
	g, err := in.client.Graph(ctx, apitypes.GraphQuery{})
	if err != nil {
		t.Fatal(err)
	}
	creds, opens := 0, 0
	for _, n := range g.Nodes {
		if n.Kind == "credential" && strings.HasPrefix(n.Name, "scan:repo/") {
			creds++
		}
	}
	for _, e := range g.Edges {
		if e.Kind == "opens" && strings.HasPrefix(e.From, "credential:scan:repo/billing.env") && e.To == "service:billing" {
			opens++
		}
	}
	if creds != 2 || opens != 1 {
		t.Errorf("graph: %d scan credential nodes, %d opens edges; want 2 and 1", creds, opens)
	}

	// No value anywhere: answers, and every file of the data directory.
	var answers bytes.Buffer
	for _, v := range []any{resp, post, g} {
		json.NewEncoder(&answers).Encode(v)
	}
	files := map[string][]byte{"answers": answers.Bytes()}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			files[p] = b
		}
		return nil
	})
	for name, b := range files {
		for _, v := range []string{billingKey, lonely, billingKey[8:30], lonely[4:26]} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds (part of) a secret value", name)
			}
		}
	}
}
