package learn

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/policy"
)

func TestPattern(t *testing.T) {
	g := DefaultGeneralizer()
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/v1/items", "/v1/items"},
		{"/v1/items/42", "/v1/items/*"},
		{"/v1//items/42/", "/v1/items/*"},
		{"/v1/x/../items/7", "/v1/items/*"},
		{"/repos/0f8fad5b-d9cb-469f-a165-70867728950e/x", "/repos/*/x"},
		{"/days/2026-05-01", "/days/*"},
		{"/days/2026-13-01", "/days/2026-13-01"},
		{"/commits/0123456789abcdef0123", "/commits/*"},
		{"/commits/0123abcd", "/commits/0123abcd"}, // shorter than MinHex
		{"/v2/x", "/v2/x"},
		{"/a*b/[c]/d?/e\\f", `/a\*b/\[c]/d\?/e\\f`},
	} {
		got, ok := g.Pattern(tc.in)
		if !ok || got != tc.want {
			t.Errorf("Pattern(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	if _, ok := g.Pattern("relative"); ok {
		t.Error("Pattern accepted a path without /")
	}
	none := Generalizer{MinHex: 16}
	if got, _ := none.Pattern("/v1/items/42"); got != "/v1/items/42" {
		t.Errorf("zero Generalizer made %q", got)
	}
}

func TestParseClasses(t *testing.T) {
	g, err := ParseClasses("numeric,date", 8)
	if err != nil || !g.Numeric || !g.Date || g.UUID || g.Hex || g.MinHex != 8 {
		t.Errorf("ParseClasses = %+v, %v", g, err)
	}
	for _, bad := range []string{"numbers", "all,x"} {
		if _, err := ParseClasses(bad, 16); err == nil {
			t.Errorf("ParseClasses(%q) accepted", bad)
		}
	}
	if _, err := ParseClasses("all", 0); err == nil {
		t.Error("min-hex 0 accepted")
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"30d", now.Add(-30 * 24 * time.Hour), true},
		{"12h", now.Add(-12 * time.Hour), true},
		{"2026-05-01T00:00:00Z", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), true},
		{"", time.Time{}, true},
		{"-1h", time.Time{}, false},
		{"d", time.Time{}, false},
		{"1.5d", time.Time{}, false},
		{"99999999d", time.Time{}, false},
		{"yesterday", time.Time{}, false},
	} {
		got, err := ParseSince(tc.in, now)
		if (err == nil) != tc.ok || tc.ok && !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestMatchIdentity(t *testing.T) {
	for _, tc := range []struct {
		p, id string
		want  bool
	}{
		{"spiffe://writ.local/agent/mail", "spiffe://writ.local/agent/mail", true},
		{"spiffe://writ.local/agent/*", "spiffe://writ.local/agent/mail", true},
		{"spiffe://writ.local/agent/*", "spiffe://writ.local/agent/mail/x", false},
		{"spiffe://writ.local/agent/**", "spiffe://writ.local/agent/mail/x", true},
		{"spiffe://writ.local/agent/**", "spiffe://writ.local/agent", false},
		{"spiffe://writ.local/agent/**", "spiffe://writ.local/agentx/a", false},
		{"spiffe://writ.local/agent/**", "spiffe://writ.local/agent/", false},
	} {
		if got := MatchIdentity(tc.p, tc.id); got != tc.want {
			t.Errorf("MatchIdentity(%q, %q) = %v", tc.p, tc.id, got)
		}
	}
	if CheckIdentityPattern("spiffe://x/[") == nil {
		t.Error("a malformed pattern was accepted")
	}
}

// FuzzPattern: a learned path pattern is a valid policy glob that matches
// the path it came from (in canonical form), and only one segment count.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"/", "/v1/items/42", "/a*b/[c]", "/x\\", "//..//a/./b/", "/2026-05-01/0f8fad5b-d9cb-469f-a165-70867728950e"} {
		f.Add(s)
	}
	g := DefaultGeneralizer()
	f.Fuzz(func(t *testing.T, p string) {
		pat, ok := g.Pattern(p)
		if !ok {
			if strings.HasPrefix(p, "/") {
				t.Fatalf("Pattern(%q) refused a path starting with /", p)
			}
			return
		}
		if len(pat) > 1024 {
			return // longer than a policy pattern may be
		}
		gl, err := policy.ParseGlob(pat)
		if err != nil {
			t.Fatalf("Pattern(%q) = %q, not a glob: %v", p, pat, err)
		}
		c := policy.CanonicalPath(p)
		if !gl.Match(c) {
			t.Fatalf("Pattern(%q) = %q does not match %q", p, pat, c)
		}
		if !strings.Contains(pat, "*") && pat != escapeGlob(c) && gl.Match(c+"/x") {
			t.Fatalf("pattern %q matches a longer path", pat)
		}
	})
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"30d", "1h", "2026-05-01T00:00:00Z", "", "-1d", "1e9d"} {
		f.Add(s)
	}
	now := time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSince(s, now)
		if err == nil && s != "" && got.IsZero() {
			t.Fatalf("ParseSince(%q) = zero without error", s)
		}
	})
}

// recs is an in-memory Records over raw record data.
type recs [][]byte

func (r recs) ReadRecords(_ context.Context, from int64, limit int) ([]auditlog.Record, error) {
	var out []auditlog.Record
	for i := from; i < int64(len(r)) && len(out) < limit; i++ {
		out = append(out, auditlog.Record{Index: i, Data: r[i]})
	}
	return out, nil
}

// FuzzScan feeds hostile stored events to Scan, the learner and the
// replayer: they may refuse a record but must not panic.
func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"id":"e1","time":"2026-05-01T00:00:00Z","type":"access.allowed","spiffe_id":"spiffe://writ.local/a","details":{"method":"GET","path":"/x/1","service":"s","subject_labels":"a=b,c","target_labels":"x,,y","task_calls":"9"}}`))
	f.Add([]byte(`{"id":"e2","time":"2026-05-01T00:00:00Z","type":"access.denied","spiffe_id":"spiffe://writ.local/a","details":{"method":"","path":"x"}}`))
	f.Add([]byte(`{"type":"access.allowed"`))
	snap, err := policy.Compile(nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := NewLearner(Options{Generalizer: DefaultGeneralizer()})
		rp := NewReplayer(snap, 2)
		_ = Scan(context.Background(), recs{data, data}, Filter{}, func(a *Access) error {
			l.Add(a)
			rp.Add(context.Background(), a)
			return nil
		})
		_ = Report(l.Files(), l.Denied())
		_ = rp.Report()
	})
}

// TestAccessRequest: the recorded details an access event carries since
// #16 come back as the policy request the decision saw.
func TestAccessRequest(t *testing.T) {
	ev := audit.Event{Time: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Type: audit.AccessAllowed, SpiffeID: "spiffe://writ.local/agent/a",
		Instance: "inst_1", Task: "task_1", OnBehalfOf: "alice", Source: "10.0.0.1:4000", Node: "n1",
		Details: map[string]string{"method": "GET", "path": "/x", "service": "s", "subject_labels": "env=prod%26test&team=mail",
			"target_labels": "private_data,public_sink", "task_purpose": "triage", "task_calls": "4"}}
	data, err := ev.MarshalCanonical()
	if err != nil {
		t.Fatal(err)
	}
	var ev2 event
	if ok, err := newDecoder().decode(data, &ev2, isAccess); !ok || err != nil {
		t.Fatal(ok, err)
	}
	a := accessOf(7, &ev2)
	r := a.Request()
	if r.Kind != policy.KindHTTP || r.Subject.Labels["env"] != "prod&test" || r.Subject.Labels["team"] != "mail" || len(r.Subject.Labels) != 2 ||
		strings.Join(r.TargetLabels, ",") != "private_data,public_sink" || !reflect.DeepEqual(r.Task, policy.Task{ID: "task_1", Purpose: "triage", OnBehalfOf: "alice", Calls: 4}) ||
		r.Source != (policy.Source{IP: "10.0.0.1", Node: "n1"}) || r.HTTP.Method != "GET" || r.HTTP.Path != "/x" || r.HTTP.Service != "s" ||
		!r.Now.Equal(ev.Time) || r.Instance != "inst_1" || a.Decision != "allow" {
		t.Errorf("request %+v from %+v", r, a)
	}
}
