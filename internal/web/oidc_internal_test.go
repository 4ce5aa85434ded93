package web

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/account"
)

// TestOIDCGroupsClaimHostile: whatever shape a provider's groups claim
// takes, the session gets only its string values that are group names,
// once each; anything else is no group (fewer rights, never more).
func TestOIDCGroupsClaimHostile(t *testing.T) {
	for _, tc := range []struct{ claim, want string }{
		{`{"groups": ["leads", "Leads", "leads"]}`, "Leads,leads"},
		{`{"groups": "leads"}`, "leads"},
		{`{"groups": ["ok", 7, null, true, {"a": "b"}, ["nested"], ""]}`, "ok"},
		{`{"groups": 42}`, ""},
		{`{"groups": {"leads": true}}`, ""},
		{`{"groups": null}`, ""},
		{`{}`, ""},
		{`{"groups": ["a,b", " leads", "leads ", "le*ds", "x\u0000y", "\u202eevil", "group:leads", "` + strings.Repeat("g", 129) + `"]}`, ""},
		{`{"groups": ["/team/ops", "Domain Admins", "運用"]}`, "/team/ops,Domain Admins,運用"},
	} {
		var claims map[string]any
		if err := json.Unmarshal([]byte(tc.claim), &claims); err != nil {
			t.Fatal(err)
		}
		got, _ := account.CleanGroups(claimValues(claims, "groups"))
		if want := strings.Split(tc.want, ","); !slices.Equal(got, want) && !(tc.want == "" && len(got) == 0) {
			t.Errorf("claim %s: groups %q, want %q", tc.claim, got, tc.want)
		}
	}
}
