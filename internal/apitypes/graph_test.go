package apitypes_test

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
)

func TestParseGraphQueryHostile(t *testing.T) {
	for _, raw := range []string{
		"since=yesterday", "until=2026-13-01T00:00:00Z", "bogus=1", "crown_jewels=maybe", "inventory=2",
		"identity=a&identity=b", "to=x&to=y",
	} {
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		if q, err := apitypes.ParseGraphQuery(v); err == nil {
			t.Errorf("ParseGraphQuery(%q) = %+v, want an error", raw, q)
		} else if !strings.Contains(err.Error(), strings.SplitN(raw, "=", 2)[0]) {
			t.Errorf("ParseGraphQuery(%q): %v does not name the parameter", raw, err)
		}
	}
}

func TestGraphQueryRoundTrip(t *testing.T) {
	since, until := time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	q := apitypes.GraphQuery{Since: &since, Until: &until, Identity: "spiffe://writ.local/a", Instance: "i", Task: "t", User: "u",
		Service: "s", Credential: "c", To: "service:s", CrownJewels: true, NoInventory: true}
	back, err := apitypes.ParseGraphQuery(q.Values())
	if err != nil || !reflect.DeepEqual(back, q) {
		t.Fatalf("round trip = %+v, %v; want %+v", back, err, q)
	}
}

// FuzzParseGraphQuery checks that /v1/graph's query parameters never
// panic the parser and that accepted queries round-trip.
func FuzzParseGraphQuery(f *testing.F) {
	f.Add("identity=spiffe%3A%2F%2Fwrit.local%2Fa&since=2026-01-01T00%3A00%3A00Z&crown_jewels=true")
	f.Add("to=service%3Apay&inventory=false&task=t&user=u&credential=c&service=s&instance=i")
	f.Add("since=yesterday&until=%00")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := apitypes.ParseGraphQuery(v)
		if err != nil {
			return
		}
		back, err := apitypes.ParseGraphQuery(q.Values())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", raw, err)
		}
		if !reflect.DeepEqual(back.Values(), q.Values()) {
			t.Fatalf("round trip of %q: %+v != %+v", raw, back, q)
		}
	})
}
