package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

// broad allows the agent everything on service gh; narrow, observed and
// replacing broad, allows only GET /repos/* and holds POSTs for approval.
const (
	broad = `subjects: [spiffe://writ.local/agent/drafter]
rules:
  - {name: all, effect: allow, targets: [{http: {service: gh}}]}
  - {name: no-delete, effect: deny, targets: [{http: {service: gh, methods: [DELETE]}}]}
`
	narrow = `subjects: [spiffe://writ.local/agent/drafter]
mode: observe
replaces: [broad]
rules:
  - {name: read, effect: allow, targets: [{http: {service: gh, methods: [GET], paths: ["/repos/*"]}}]}
  - {name: post, effect: allow, targets: [{http: {service: gh, methods: [POST], paths: ["/repos/*"]}}], approval: {approvers: [user:ann]}}
  - {name: deletes, effect: allow, targets: [{http: {service: gh, methods: [DELETE]}}]}
`
)

func TestObserveNeverChangesTheEffect(t *testing.T) {
	snap := compileSrc(t, policyDoc("broad", broad)+policyDoc("narrow", narrow))
	eng := NewEngine(Config{Now: func() time.Time { return tNow }, Limiter: ratelimit.New()}, snap)
	ctx := context.Background()
	for _, tc := range []struct {
		method, path string
		effect       Effect
		rule         string
		observed     ObserveEffect
		oRule        string
	}{
		{"GET", "/repos/a", Allow, "all", "", ""},
		{"GET", "/users/a", Allow, "all", WouldDeny, ""},
		{"POST", "/repos/a", Allow, "all", WouldHold, "post"},
		// The observed policy allows DELETE, the enforcing set denies it:
		// still denied.
		{"DELETE", "/repos/a", Deny, "no-delete", WouldAllow, "deletes"},
	} {
		d := eng.Decide(ctx, httpReq("gh", tc.method, tc.path))
		if d.Effect != tc.effect || d.Rule != tc.rule {
			t.Fatalf("%s %s: decided %s by %q, want %s by %q", tc.method, tc.path, d.Effect, d.Rule, tc.effect, tc.rule)
		}
		if tc.observed == "" {
			if d.Observed != nil {
				t.Fatalf("%s %s: observed %+v, want nothing", tc.method, tc.path, d.Observed)
			}
			continue
		}
		o := d.Observed
		if o == nil || o.Effect != tc.observed || o.Rule != tc.oRule || o.Observing != "narrow" || len(o.Reasons) == 0 {
			t.Fatalf("%s %s: observed %+v, want %s by rule %q counted for narrow", tc.method, tc.path, o, tc.observed, tc.oRule)
		}
	}
	st := eng.Observing()
	if len(st) != 1 {
		t.Fatalf("observing %+v", st)
	}
	if s := st[0]; s.Policy != "narrow" || s.Decisions != 4 || s.WouldDeny != 1 || s.WouldHold != 1 || s.WouldAllow != 1 || !s.Since.Equal(tNow) ||
		len(s.Replaces) != 1 || s.Replaces[0] != "broad" {
		t.Fatalf("stats %+v", s)
	}
	// A caller the observed policy does not name is not counted.
	other := httpReq("gh", "GET", "/users/a")
	other.Subject.SpiffeID = "spiffe://writ.local/agent/other"
	if d := eng.Decide(ctx, other); d.Effect != Deny || d.Observed != nil {
		t.Fatalf("other caller: %+v", d)
	}
	if s := eng.Observing()[0]; s.Decisions != 4 {
		t.Fatalf("other caller counted: %+v", s)
	}
}

// An observed policy alone, with nothing enforcing, allows nothing.
func TestObserveAloneAllowsNothing(t *testing.T) {
	snap := compileSrc(t, policyDoc("narrow", strings.Replace(narrow, "replaces: [broad]\n", "", 1)))
	eng := NewEngine(Config{Limiter: ratelimit.New()}, snap)
	d := eng.Decide(context.Background(), httpReq("gh", "GET", "/repos/a"))
	if d.Effect != Deny || d.Observed == nil || d.Observed.Effect != WouldAllow || d.Observed.Observing != "narrow" {
		t.Fatalf("decision %+v observed %+v", d, d.Observed)
	}
	if snap.Rules() != 0 || !snap.Observing() {
		t.Fatalf("enforcing rules %d, observing %v", snap.Rules(), snap.Observing())
	}
	if got := snap.AsPromoted().Decide(httpReq("gh", "GET", "/repos/a")); got.Effect != Allow {
		t.Fatalf("observed set: %+v", got)
	}
	info := snap.Policies()
	if len(info) != 1 || info[0].Mode != ModeObserve {
		t.Fatalf("policies %+v", info)
	}
}

// Observed rate limits count in windows of their own: observing cannot use
// up the enforcing limit, and the observed limit shows as would_deny.
func TestObserveRateWindowsApart(t *testing.T) {
	enforcing := `subjects: [spiffe://writ.local/agent/drafter]
rules:
  - {name: all, effect: allow, targets: [{http: {service: gh}}], rate: {limit: 3/1m}}
`
	observed := `subjects: [spiffe://writ.local/agent/drafter]
mode: observe
replaces: [wide]
rules:
  - {name: all, effect: allow, targets: [{http: {service: gh}}], rate: {limit: 1/1m}}
`
	snap := compileSrc(t, policyDoc("wide", enforcing)+policyDoc("tight", observed))
	eng := NewEngine(Config{Limiter: ratelimit.New()}, snap)
	var got []string
	for range 4 {
		d := eng.Decide(context.Background(), httpReq("gh", "GET", "/a"))
		s := string(d.Effect)
		if d.Observed != nil {
			s += "+" + string(d.Observed.Effect)
		}
		got = append(got, s)
	}
	want := "allow allow+would_deny allow+would_deny deny"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestObserveSwapKeepsCounts(t *testing.T) {
	src := policyDoc("broad", broad) + policyDoc("narrow", narrow)
	eng := NewEngine(Config{Limiter: ratelimit.New()}, compileSrc(t, src))
	eng.Decide(context.Background(), httpReq("gh", "GET", "/users/a"))
	eng.Swap(compileSrc(t, src)) // same versions: counts continue
	if s := eng.Observing()[0]; s.WouldDeny != 1 {
		t.Fatalf("after swap: %+v", s)
	}
	eng.Swap(compileSrc(t, policyDoc("broad", broad)))
	if len(eng.Observing()) != 0 {
		t.Fatal("stats of a removed policy remain")
	}
}

func TestObserveSpecErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"mode: shadow\n", `spec.mode: "shadow" is not a mode`},
		{"replaces: [broad]\n", "spec.replaces: only a policy in observe mode"},
		{"mode: observe\nreplaces: [p]\n", "spec.replaces[0]: a policy cannot replace itself"},
		{"mode: observe\nreplaces: [\"Bad Name\"]\n", `spec.replaces[0]: "Bad Name" is not a policy name`},
	} {
		docs, err := resource.Parse("t.yaml", []byte(policyDoc("p", "subjects: [spiffe://writ.local/a]\nrules: []\n"+tc.spec)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Compile(docs, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%q: error %v, want %q", tc.spec, err, tc.want)
		}
	}
	snap := compileSrc(t, policyDoc("p", "subjects: [spiffe://writ.local/a]\nmode: observe\nreplaces: [gone]\nrules: []\n"))
	var found bool
	for _, w := range snap.Warnings() {
		found = found || strings.Contains(w.Msg, "no enforcing policy gone exists")
	}
	if !found {
		t.Fatalf("warnings %v", snap.Warnings())
	}
}
