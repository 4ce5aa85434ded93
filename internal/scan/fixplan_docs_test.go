package scan_test

import (
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/scan"
)

// TestFixPlanDocumentsValid checks that the documents a fix plan prints are
// what writ apply accepts: the Service by the proxy's validation, the
// AccessPolicy by the policy compiler's.
func TestFixPlanDocumentsValid(t *testing.T) {
	fs := []scan.Finding{
		{RuleID: "github-pat", Path: "a.env", Line: 1, Column: 10, EndLine: 1, EndColumn: 49, Fingerprint: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{RuleID: "gitlab-pat", Path: "b.env", Line: 2, Column: 1, EndLine: 2, EndColumn: 20, Fingerprint: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"},
		{RuleID: "generic-api-key", Path: "c.yaml", Line: 3, Column: 1, EndLine: 4, EndColumn: 2, Fingerprint: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
	}
	for _, st := range scan.FixPlan(fs, "") {
		docs, err := resource.Parse(st.Credential+".yaml", []byte(st.Documents))
		if err != nil {
			t.Fatalf("%s: %v", st.Credential, err)
		}
		if len(docs) != 2 {
			t.Fatalf("%s: %d documents", st.Credential, len(docs))
		}
		if _, err := proxy.StoredSpec(docs[0]); err != nil {
			t.Errorf("%s: Service: %v", st.Credential, err)
		}
		if err := policy.ValidateDocument(docs[1]); err != nil {
			t.Errorf("%s: AccessPolicy: %v", st.Credential, err)
		}
	}
}

// A ranked plan keeps the rank order and names, in each AccessPolicy, the
// identities the blast radius found using or holding the secret (SPIFFE
// IDs only); the documents stay valid.
func TestFixPlanRankedNamesUsers(t *testing.T) {
	rs := []scan.Ranked{
		{Finding: scan.Finding{RuleID: "stripe-access-token", Path: "b.env", Line: 1, Column: 13, EndLine: 1, EndColumn: 50, Fingerprint: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"},
			Blast: scan.Blast{Score: 66, UsedBy: []string{"spiffe://writ.local/agent/b", "spiffe://writ.local/agent/a"}, Holders: []string{"host1/python3", "spiffe://writ.local/agent/a"}}},
		{Finding: scan.Finding{RuleID: "github-pat", Path: "a.env", Line: 1, Column: 10, EndLine: 1, EndColumn: 49, Fingerprint: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			Blast: scan.Blast{Score: 6}},
	}
	steps := scan.FixPlanRanked(rs, "")
	if len(steps) != 2 || steps[0].Finding.Path != "b.env" {
		t.Fatalf("order: %+v", steps)
	}
	if !strings.Contains(steps[0].Documents, "subjects: [spiffe://writ.local/agent/a, spiffe://writ.local/agent/b]") ||
		!strings.Contains(steps[1].Documents, "spiffe://writ.local/agent/CHANGE-ME") {
		t.Errorf("subjects:\n%s\n%s", steps[0].Documents, steps[1].Documents)
	}
	for _, st := range steps {
		docs, err := resource.Parse(st.Credential+".yaml", []byte(st.Documents))
		if err != nil || len(docs) != 2 {
			t.Fatalf("%s: %v", st.Credential, err)
		}
		if err := policy.ValidateDocument(docs[1]); err != nil {
			t.Errorf("%s: AccessPolicy: %v", st.Credential, err)
		}
	}
}
