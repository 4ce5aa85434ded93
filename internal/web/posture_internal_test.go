package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/posture"
	"github.com/writ-dev/writ/internal/tier"
)

type manyFindings struct{ n, secrets int }

func (m manyFindings) Findings(context.Context, time.Duration) ([]posture.Finding, error) {
	var out []posture.Finding
	for i := range m.n {
		check := "unused_grant"
		if i < m.secrets {
			check = "static_credential"
		}
		out = append(out, posture.Finding{ID: fmt.Sprintf("%s/f-%04d", check, i), Check: check, Severity: "high", Title: fmt.Sprintf("finding %04d", i)})
	}
	return out, nil
}

func (manyFindings) Tier(context.Context) (tier.Report, error) { return tier.Report{}, nil }

// TestPosturePageCapped: with more findings, secrets and credentials than
// a page shows, Posture renders the first 500 of each and says how many
// more; with fewer it says nothing of the kind.
func TestPosturePageCapped(t *testing.T) {
	for _, tc := range []struct {
		findings, secrets, creds int
		want, not                []string
	}{
		{620, 560, 700, []string{"finding 0499", "The first 500 are shown; 120 more: <code>writ posture</code>",
			"The first 500 are shown; 60 more: <code>writ posture</code>", "The first 500 are shown; 200 more: <code>writ inventory</code>",
			"Every credential the inventory holds (700)"}, []string{"finding 0500<", "finding 0619"}},
		{30, 5, 10, []string{"finding 0029", "Every credential the inventory holds (10)"}, []string{"The first 500 are shown"}},
	} {
		c, _ := fakeConsole(t, nil)
		c.c.Posture = manyFindings{tc.findings, tc.secrets}
		c.c.Inventory = func(context.Context) (apitypes.Inventory, error) {
			var inv apitypes.Inventory
			for i := range tc.creds {
				inv.Credentials = append(inv.Credentials, apitypes.InventoryCredential{Name: fmt.Sprintf("cred-%04d", i)})
			}
			return inv, nil
		}
		req := httptest.NewRequest("GET", "/ui/posture", nil)
		req.AddCookie(&http.Cookie{Name: "writ_session", Value: "sess"})
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		page := string(body)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /ui/posture: %d %.300s", rec.Code, page)
		}
		for _, w := range tc.want {
			if !strings.Contains(page, w) {
				t.Errorf("%d findings: the page lacks %q", tc.findings, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(page, w) {
				t.Errorf("%d findings: the page has %q", tc.findings, w)
			}
		}
		if got := strings.Count(page, "<tr id=\"f-"); got != min(tc.findings, inventoryRows) {
			t.Errorf("%d findings: %d rows, want %d", tc.findings, got, min(tc.findings, inventoryRows))
		}
	}
}
