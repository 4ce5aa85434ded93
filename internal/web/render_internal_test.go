package web

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// TestApprovalsTemplate renders the approvals page for a human who may
// approve, for the requester (Approve disabled) and for a viewer (no
// form), and checks that every value is escaped.
func TestApprovalsTemplate(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := store.Approval{ID: "apr_1", Kind: "http", SpiffeID: "spiffe://writ.local/agent/a", OnBehalfOf: "alice",
		Target: `GET api /pay?x=<script>alert(1)</script>`, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	for _, tc := range []struct {
		name              string
		can, own, notMine bool
		want, not         []string
	}{
		{"approver", true, false, false, []string{`class="approve">Approve`, `name="csrf" value="tok"`}, []string{"disabled"}},
		{"requester", true, true, false, []string{`class="approve" disabled`, `class="deny" disabled`, "made on your behalf"}, nil},
		{"not in the group", true, false, true, []string{`class="approve" disabled`, `class="deny" disabled`, "not among the approvers",
			"group:&lt;b&gt;leads&lt;/b&gt;"}, []string{"<b>leads"}},
		{"viewer", false, false, false, []string{"may look but not decide"}, []string{"form method=\"post\" class=\"decide\""}},
	} {
		var buf bytes.Buffer
		err := pages["approvals"].Execute(&buf, map[string]any{"Now": now, "Page": "approvals", "Title": "Approvals", "Nav": nav,
			"User": "u", "Role": "r", "CSRF": "tok", "CanApprove": tc.can,
			"Data": map[string]any{"Pending": []approvalRow{{a, tc.own, tc.notMine, "rule r of p@1 names approvers group:<b>leads</b>"}}}})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		html := buf.String()
		for _, w := range tc.want {
			if !strings.Contains(html, w) {
				t.Errorf("%s: page lacks %q", tc.name, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(html, w) {
				t.Errorf("%s: page has %q", tc.name, w)
			}
		}
		if strings.Contains(html, "<script>alert") {
			t.Errorf("%s: the target is not escaped", tc.name)
		}
	}
}
