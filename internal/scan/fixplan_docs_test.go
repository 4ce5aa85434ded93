package scan_test

import (
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
