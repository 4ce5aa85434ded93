package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

// TestSpec is the spec of a `kind: PolicyTest` document: requests and the
// decisions the policies must give them.
type TestSpec struct {
	// Policies names the AccessPolicies under test; empty means every
	// AccessPolicy loaded alongside the test.
	Policies []string `yaml:"policies,omitempty" json:"policies,omitempty"`
	// Now is the time of requests that give none; default: the time the
	// test runs.
	Now time.Time `yaml:"now,omitempty" json:"now,omitzero"`
	// Defaults fills every top-level request field (kind, subject,
	// instance, task, request, mcp, token, target_labels, source, now)
	// that a case leaves out.
	Defaults Request    `yaml:"defaults,omitempty" json:"defaults,omitzero"`
	Cases    []TestCase `yaml:"cases" json:"cases"`
}

// TestCase is one request and its expected decision.
type TestCase struct {
	Name    string  `yaml:"name" json:"name"`
	Request Request `yaml:"request" json:"request"`
	// Repeat sends the request this many times at the same instant through
	// an engine with a fresh rate limiter and checks the last decision
	// (default 1): repeat: 61 checks that the 61st call in a minute is
	// refused.
	Repeat int    `yaml:"repeat,omitempty" json:"repeat,omitempty"`
	Expect Expect `yaml:"expect" json:"expect"`
}

// Expect is what a case requires of the decision; empty fields are not
// checked.
type Expect struct {
	Effect string `yaml:"effect" json:"effect"` // allow, deny or approval_required
	Policy string `yaml:"policy,omitempty" json:"policy,omitempty"`
	Rule   string `yaml:"rule,omitempty" json:"rule,omitempty"`
	// Reason must be a substring of one of the decision's reasons.
	Reason string `yaml:"reason,omitempty" json:"reason,omitempty"`
	// Approvers, when set, must equal the approval obligation's approvers.
	Approvers []string `yaml:"approvers,omitempty" json:"approvers,omitempty"`
	// MaxTTL, when set, must equal the credential TTL cap (e.g. "10m").
	MaxTTL string `yaml:"max_ttl,omitempty" json:"max_ttl,omitempty"`
}

// TestResult is the outcome of one case.
type TestResult struct {
	Suite    string   `json:"suite"` // the PolicyTest name
	Case     string   `json:"case"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
	Decision Decision `json:"decision"`
}

// Position returns "file:line" of the case.
func (r TestResult) Position() string { return r.File + ":" + strconv.Itoa(r.Line) }

// maxRepeat bounds TestCase.Repeat.
const maxRepeat = 100_000

type testDoc struct {
	d    resource.Document
	spec TestSpec
}

// decodeTest decodes and checks a PolicyTest document, reporting every
// problem with its position.
func decodeTest(d resource.Document) (*testDoc, error) {
	var spec TestSpec
	if err := d.DecodeSpec(&spec); err != nil {
		return nil, err
	}
	c := docCompiler(&d)
	if len(spec.Cases) == 0 {
		c.errorf(p("spec", "cases"), "missing; a PolicyTest needs at least one case")
	}
	names := map[string]bool{}
	for i := range spec.Cases {
		spec.Cases[i].Request = spec.Cases[i].Request.withDefaults(&spec.Defaults)
	}
	for i, tc := range spec.Cases {
		at := func(parts ...any) []any { return append(p("spec", "cases", i), parts...) }
		switch {
		case tc.Name == "":
			c.errorf(at("name"), "missing; name every case so failures can be found")
		case names[tc.Name]:
			c.errorf(at("name"), "case %q is defined twice", tc.Name)
		}
		names[tc.Name] = true
		if err := tc.Request.Validate(); err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			parts := at("request")
			for _, f := range strings.Split(field, ".") {
				parts = append(parts, f)
			}
			c.errorf(parts, "%s", msg)
		}
		switch Effect(tc.Expect.Effect) {
		case Allow, Deny, ApprovalRequired:
		case "":
			c.errorf(at("expect", "effect"), "missing; one of allow, deny, approval_required")
		default:
			c.errorf(at("expect", "effect"), "%q is not an effect; one of allow, deny, approval_required", tc.Expect.Effect)
		}
		if tc.Expect.MaxTTL != "" {
			if _, err := time.ParseDuration(tc.Expect.MaxTTL); err != nil {
				c.errorf(at("expect", "max_ttl"), "%q is not a duration", tc.Expect.MaxTTL)
			}
		}
		if tc.Repeat < 0 || tc.Repeat > maxRepeat {
			c.errorf(at("repeat"), "must be between 1 and %d", maxRepeat)
		}
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return &testDoc{d: d, spec: spec}, nil
}

// ValidateTestDocument checks a PolicyTest document without running it.
func ValidateTestDocument(d resource.Document) error {
	_, err := decodeTest(d)
	return err
}

// RunTests compiles the AccessPolicy documents in docs and runs every
// PolicyTest document in docs against them. now is the time of requests
// that give none (neither in the case nor in the test's spec.now). The
// error reports documents that do not compile or decode; failing cases
// are results with Pass false.
func RunTests(docs []resource.Document, now time.Time) ([]TestResult, error) {
	var tests []*testDoc
	var errs []error
	policies := map[string]resource.Document{}
	for _, d := range docs {
		switch d.Kind {
		case resource.KindPolicyTest:
			td, err := decodeTest(d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			tests = append(tests, td)
		case resource.KindAccessPolicy:
			policies[d.Name] = d
		}
	}
	all, err := Compile(docs, nil)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var results []TestResult
	for _, td := range tests {
		snap := all
		if len(td.spec.Policies) > 0 {
			var sub []resource.Document
			for i, name := range td.spec.Policies {
				pd, ok := policies[name]
				if !ok {
					c := docCompiler(&td.d)
					c.errorf(p("spec", "policies", i), "no AccessPolicy named %q was loaded; pass its file too", name)
					return nil, c.errs[0]
				}
				sub = append(sub, pd)
			}
			snap, err = Compile(sub, nil)
			if err != nil {
				return nil, err
			}
		}
		for i, tc := range td.spec.Cases {
			results = append(results, runCase(snap, td, i, tc, now))
		}
	}
	return results, nil
}

func runCase(snap *Snapshot, td *testDoc, i int, tc TestCase, now time.Time) TestResult {
	res := TestResult{Suite: td.d.Name, Case: tc.Name, File: td.d.File, Line: td.d.Line}
	if n := td.d.Find("spec", "cases", strconv.Itoa(i)); n != nil {
		res.Line = n.Line
	}
	req := tc.Request
	if req.Now.IsZero() {
		req.Now = td.spec.Now
	}
	if req.Now.IsZero() {
		req.Now = now
	}
	if tc.Repeat > 1 {
		e := NewEngine(Config{Limiter: ratelimit.New()}, snap)
		for range tc.Repeat - 1 {
			e.Decide(context.Background(), &req)
		}
		res.Decision = e.Decide(context.Background(), &req)
	} else {
		res.Decision = snap.Decide(&req)
	}
	d, want := res.Decision, tc.Expect
	fail := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	if string(d.Effect) != want.Effect {
		fail("effect: got %s, want %s", d.Effect, want.Effect)
	}
	if want.Policy != "" && d.Policy != want.Policy && !strings.HasPrefix(d.Policy, want.Policy+"@") {
		fail("policy: got %q, want %q", d.Policy, want.Policy)
	}
	if want.Rule != "" && d.Rule != want.Rule {
		fail("rule: got %q, want %q", d.Rule, want.Rule)
	}
	if want.Reason != "" && !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, want.Reason) }) {
		fail("reason: no reason contains %q", want.Reason)
	}
	if want.Approvers != nil {
		var got []string
		if d.Obligations.Approval != nil {
			got = d.Obligations.Approval.Approvers
		}
		if !slices.Equal(got, want.Approvers) {
			fail("approvers: got %v, want %v", got, want.Approvers)
		}
	}
	if want.MaxTTL != "" {
		w, _ := time.ParseDuration(want.MaxTTL)
		if time.Duration(d.Obligations.MaxTTL) != w {
			fail("max_ttl: got %v, want %v", time.Duration(d.Obligations.MaxTTL), w)
		}
	}
	if len(res.Failures) > 0 && len(d.Reasons) > 0 {
		res.Failures = append(res.Failures, "decision reasons: "+strings.Join(d.Reasons, "; "))
	}
	res.Pass = len(res.Failures) == 0
	return res
}

// withDefaults returns r with every zero top-level field taken from d.
func (r Request) withDefaults(d *Request) Request {
	if r.Kind == "" {
		r.Kind = d.Kind
	}
	if r.Subject.SpiffeID == "" && r.Subject.Labels == nil {
		r.Subject = d.Subject
	}
	if r.Instance == "" {
		r.Instance = d.Instance
	}
	if r.Task.ID == "" && r.Task.Purpose == "" && r.Task.OnBehalfOf == "" && r.Task.Groups == nil && r.Task.LabelsSeen == nil && r.Task.Calls == 0 {
		r.Task = d.Task
	}
	if r.HTTP.Service == "" && r.HTTP.Method == "" && r.HTTP.Path == "" && r.HTTP.Headers == nil && r.HTTP.Query == nil {
		r.HTTP = d.HTTP
	}
	if r.MCP.Server == "" && r.MCP.Tool == "" && r.MCP.Resource == "" && r.MCP.Prompt == "" && r.MCP.Args == nil {
		r.MCP = d.MCP
	}
	if r.Token.Audience == "" && r.Token.Scopes == nil {
		r.Token = d.Token
	}
	if r.TargetLabels == nil {
		r.TargetLabels = d.TargetLabels
	}
	if r.Source == (Source{}) {
		r.Source = d.Source
	}
	if r.Now.IsZero() {
		r.Now = d.Now
	}
	return r
}
