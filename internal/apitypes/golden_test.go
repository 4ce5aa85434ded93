package apitypes_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/writ-dev/writ/internal/apitypes"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestRequestGolden pins the JSON of every request body a client sends.
// (The answers are pinned in internal/api, next to the mapping from the
// services' records.)
func TestRequestGolden(t *testing.T) {
	for name, v := range map[string]any{
		"open-task":         apitypes.OpenTaskRequest{SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_1", Purpose: "triage", OnBehalfOf: "alice", Groups: []string{"g"}, Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}, MaxDuration: "30m", Budget: 5},
		"open-task-minimal": apitypes.OpenTaskRequest{Purpose: "triage"},
		"close-task":        apitypes.CloseTaskRequest{Reason: "done"},
		"revoke":            apitypes.RevokeRequest{Kind: apitypes.RevokeToken, Value: "jti_1", Reason: "leaked"},
		"decide":            apitypes.DecideRequest{Comment: "ok"},
		"credential":        apitypes.CredentialRequest{Name: "github", Type: "bearer", Value: "s3cret"},
		"apply":             apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "a.yaml", Content: "kind: Service\n"}}, DryRun: true},
		"entry":             apitypes.Entry{Name: "agent.a", SpiffeID: "spiffe://writ.local/agent/a", Selectors: []string{"unix:uid:1000"}, X509TTL: "30m"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("the wire encoding changed:\n got %s\nwant %s", b, want)
			}
		})
	}
}

func TestCredentialRequestHidesValue(t *testing.T) {
	r := apitypes.CredentialRequest{Name: "github", Type: "bearer", Value: "s3cret-value"}
	for _, s := range []string{r.String(), r.GoString()} {
		if bytes.Contains([]byte(s), []byte("s3cret")) {
			t.Errorf("formatted request %q shows the value", s)
		}
	}
}
