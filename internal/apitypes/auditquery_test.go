package apitypes_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
)

func TestParseAuditQueryHostile(t *testing.T) {
	for _, raw := range []string{
		"limit=0", "limit=5000", "limit=-1", "limit=1e3", "since=yesterday", "until=2026-13-01T00:00:00Z",
		"bogus=1", "order=up", "after=-1", "before=x", "before=99999999999999999999",
		"type=a&type=b", "spiffe_id=a&spiffe_id=b",
	} {
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		if q, err := apitypes.ParseAuditQuery(v); err == nil {
			t.Errorf("ParseAuditQuery(%q) = %+v, want an error", raw, q)
		} else if !strings.Contains(err.Error(), strings.SplitN(raw, "=", 2)[0]) {
			t.Errorf("ParseAuditQuery(%q): %v does not name the parameter", raw, err)
		}
	}
	if _, err := apitypes.ParseAuditQuery(url.Values{"format": {"jsonl"}}, "format"); err != nil {
		t.Errorf("an allowed extra parameter is refused: %v", err)
	}
}

func TestAuditQueryRoundTrip(t *testing.T) {
	q := apitypes.AuditQuery{SpiffeID: "spiffe://writ.local/a", Instance: "i", Task: "t", Type: "access.denied", Decision: "deny",
		Since: time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC), Until: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		Before: 10, After: 2, Ascending: true, Limit: 7}
	back, err := apitypes.ParseAuditQuery(q.Values())
	if err != nil || back != q {
		t.Fatalf("round trip = %+v, %v; want %+v", back, err, q)
	}
}

// FuzzParseAuditQuery checks that API query parameters never panic the
// parser and that accepted queries round-trip.
func FuzzParseAuditQuery(f *testing.F) {
	f.Add("spiffe_id=spiffe%3A%2F%2Fwrit.local%2Fa&limit=5&order=asc&since=2026-01-01T00%3A00%3A00Z")
	f.Add("before=10&after=2&type=access.denied&decision=deny&task=t&instance=i")
	f.Add("limit=0&since=yesterday")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := apitypes.ParseAuditQuery(v)
		if err != nil {
			return
		}
		back, err := apitypes.ParseAuditQuery(q.Values())
		if err != nil {
			t.Fatalf("ParseAuditQuery(%q) = %+v, whose Values %q do not parse: %v", raw, q, q.Values().Encode(), err)
		}
		if back.Values().Encode() != q.Values().Encode() {
			t.Fatalf("query %q does not round-trip: %q", q.Values().Encode(), back.Values().Encode())
		}
	})
}
