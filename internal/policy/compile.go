package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/strictyaml"
	"go.yaml.in/yaml/v3"
)

// Built-in flow labels. Documents may declare more in spec.labels.
const (
	LabelUntrustedContent = "untrusted_content"
	LabelPrivateData      = "private_data"
	LabelPublicSink       = "public_sink"
)

// BuiltinLabels are the flow labels every policy may use without
// declaring them.
var BuiltinLabels = []string{LabelPrivateData, LabelPublicSink, LabelUntrustedContent}

var labelRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// DefaultApprovalTimeout is the approval timeout when a rule gives none.
const DefaultApprovalTimeout = 15 * time.Minute

// maxErrors bounds the errors reported for one document.
const maxErrors = 50

// Rate limit keys: what a rule's rate is counted per.
const (
	PerInstance = "instance"
	PerSubject  = "subject"
	PerTask     = "task"
)

type ruleEffect uint8

const (
	effectAllow ruleEffect = iota + 1
	effectDeny
	effectEscalate
)

func (e ruleEffect) String() string {
	switch e {
	case effectAllow:
		return "allow"
	case effectDeny:
		return "deny"
	case effectEscalate:
		return "escalate"
	}
	return "?"
}

// Snapshot is a compiled, immutable set of policies: the unit an [Engine]
// swaps. It is safe for concurrent use.
type Snapshot struct {
	policies []*cpolicy // sorted by name
	subjects subjectIndex
	warnings []Warning
	rules    int
	pool     sync.Pool // *scratch

	// observed is the set deciding as if the observed policies were in
	// force (nil without any); observing lists those policies by name and
	// replacedBy maps an enforcing policy's name to the observed policy
	// replacing it.
	observed   *Snapshot
	observing  []*cpolicy
	replacedBy map[string]*cpolicy
}

// cpolicy is a compiled AccessPolicy.
type cpolicy struct {
	ord      int
	name     string
	version  int64
	ref      string // name@version, or name when unversioned
	file     string
	line     int
	subjects []subjectPattern
	labels   []string // declared user labels
	rules    []*crule
	idx      targetIndex
	observe  bool     // mode: observe
	replaces []string // observe only: the enforcing policies it stands in for
}

// crule is a compiled rule.
type crule struct {
	p        *cpolicy
	ord      int // global order: policies by name, then rules as written
	name     string
	desc     string
	line     int
	effect   ruleEffect
	targets  []*ctarget
	when     *condition
	flowAll  []string
	flowAny  []string
	rate     *crate
	approval *ApprovalObligation
	maxTTL   time.Duration
	budget   int

	reasons []string // precomputed: why this rule decided
}

type crate struct {
	limit  ratelimit.Limit
	per    string
	prefix string // "policy/rule|per="
	ref    string
}

// Warning is a problem that does not stop a policy from loading, such as a
// rule that can never apply.
type Warning struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Field  string `json:"field,omitempty"`
	Msg    string `json:"message"`
}

func (w Warning) String() string {
	e := strictyaml.Error{File: w.File, Line: w.Line, Column: w.Column, Field: w.Field, Msg: w.Msg}
	return e.Error()
}

// Warnings returns the warnings found while compiling s.
func (s *Snapshot) Warnings() []Warning { return s.warnings }

// PolicyInfo describes one compiled policy.
type PolicyInfo struct {
	Name    string `json:"name"`
	Version int64  `json:"version,omitempty"`
	Rules   int    `json:"rules"`
	File    string `json:"file,omitempty"`
	// Mode is "observe" for a policy in observe mode, empty otherwise.
	Mode     string   `json:"mode,omitempty"`
	Replaces []string `json:"replaces,omitempty"`
}

// Policies lists the compiled policies by name, the observed ones
// included.
func (s *Snapshot) Policies() []PolicyInfo {
	out := make([]PolicyInfo, 0, len(s.policies)+len(s.observing))
	for _, p := range append(slices.Clip(s.policies), s.observing...) {
		info := PolicyInfo{Name: p.name, Version: p.version, Rules: len(p.rules), File: p.file}
		if p.observe {
			info.Mode, info.Replaces = ModeObserve, slices.Clone(p.replaces)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PolicyInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Rules returns the number of rules in s.
func (s *Snapshot) Rules() int { return s.rules }

// Empty returns a snapshot without policies: it denies everything.
func Empty() *Snapshot {
	s, _ := Compile(nil, nil)
	return s
}

// Compile compiles the AccessPolicy documents among docs (other kinds are
// skipped) into a snapshot. versions gives each policy's stored version by
// name; a missing name means unversioned (offline use). The error joins
// every problem found, each naming file, line, column and field.
func Compile(docs []resource.Document, versions map[string]int64) (*Snapshot, error) {
	srcs := make([]Input, 0, len(docs))
	for _, d := range docs {
		if d.Kind == resource.KindAccessPolicy {
			srcs = append(srcs, FromDocument(d, versions[d.Name]))
		}
	}
	return CompileAll(srcs)
}

// CompileAll compiles policies from files and from the store together
// into one snapshot, each exactly once. Policy names must be unique. The
// error joins every problem found: a file's name FILE:LINE:COLUMN and the
// field, a stored spec's name@version and the field.
func CompileAll(srcs []Input) (*Snapshot, error) {
	s := &Snapshot{}
	var (
		errs      []error
		enforcing []Input
		observed  []*cpolicy
	)
	seen := map[string]Input{}
	for _, src := range srcs {
		name := src.Name()
		if prev, dup := seen[name]; dup {
			errs = append(errs, src.duplicate(prev))
			continue
		}
		seen[name] = src
		p, warns, err := src.compile()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.warnings = append(s.warnings, warns...)
		if p.observe {
			observed = append(observed, p)
			continue
		}
		enforcing = append(enforcing, src)
		s.policies = append(s.policies, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.index()
	if len(observed) > 0 {
		if err := s.observedSet(enforcing, observed); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// index orders s's policies by name and their rules, and builds the
// indexes.
func (s *Snapshot) index() {
	slices.SortFunc(s.policies, func(a, b *cpolicy) int { return strings.Compare(a.name, b.name) })
	ord := 0
	for i, p := range s.policies {
		p.ord = i
		for _, r := range p.rules {
			r.ord = ord
			ord++
		}
		p.idx = buildTargetIndex(p)
	}
	s.rules = ord
	s.subjects = buildSubjectIndex(s.policies)
}

// ValidateDocument checks one AccessPolicy document completely (schema,
// patterns, CEL conditions, labels). Warnings are not errors; see
// [CheckDocument].
func ValidateDocument(d resource.Document) error {
	_, err := CheckDocument(d)
	return err
}

// CheckDocument is ValidateDocument that also returns the warnings.
func CheckDocument(d resource.Document) ([]Warning, error) {
	if d.Kind != resource.KindAccessPolicy {
		return nil, d.Errorf(d.Find("kind"), "kind", "%q is not an AccessPolicy", d.Kind)
	}
	_, warns, err := FromDocument(d, 0).compile()
	return warns, err
}

// DecodeSpec decodes an AccessPolicy document's spec strictly, without the
// semantic checks of [ValidateDocument].
func DecodeSpec(d resource.Document) (*Spec, error) {
	var spec Spec
	if err := d.DecodeSpec(&spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

// compiler holds the state of compiling one policy.
type compiler struct {
	// doc is the document compiled, for positions; nil for a stored spec.
	doc *resource.Document
	// file begins every message: the file name of a document, name@version
	// of a stored spec.
	file    string
	errs    []error
	warns   []Warning
	labels  map[string]bool
	buckets map[string]bucketDef
}

type bucketDef struct {
	rule  string
	limit ratelimit.Limit
	per   string
}

func docCompiler(d *resource.Document) *compiler {
	return &compiler{doc: d, file: d.File, labels: map[string]bool{}, buckets: map[string]bucketDef{}}
}

// compileSpec compiles the spec of policy name (at line of file, for a
// document) under version.
func (c *compiler) compileSpec(spec *Spec, name string, version int64, line int) (*cpolicy, []Warning, error) {
	p := c.policy(spec, name, version, line)
	if len(c.errs) > 0 {
		return nil, nil, errors.Join(c.errs...)
	}
	c.lint(p)
	return p, c.warns, nil
}

// at returns the YAML node at path (strings and ints below the document
// root), or the nearest ancestor that exists (nil for a stored spec), and
// the dotted field name.
func (c *compiler) at(path []any) (*yaml.Node, string) {
	var keys []string
	if c.doc != nil {
		keys = make([]string, len(path))
	}
	var field strings.Builder
	for i, p := range path {
		switch v := p.(type) {
		case int:
			if keys != nil {
				keys[i] = strconv.Itoa(v)
			}
			fmt.Fprintf(&field, "[%d]", v)
		case string:
			if keys != nil {
				keys[i] = v
			}
			if i > 0 {
				field.WriteByte('.')
			}
			field.WriteString(v)
		}
	}
	if c.doc == nil {
		return nil, field.String()
	}
	for n := len(keys); n >= 0; n-- {
		if node := c.doc.Find(keys[:n]...); node != nil {
			return node, field.String()
		}
	}
	return nil, field.String()
}

func (c *compiler) errorf(path []any, format string, args ...any) {
	if len(c.errs) >= maxErrors {
		return
	}
	node, field := c.at(path)
	c.errs = append(c.errs, strictyaml.At(c.file, node, field, format, args...))
}

func (c *compiler) warnf(path []any, format string, args ...any) {
	node, field := c.at(path)
	w := Warning{File: c.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if node != nil {
		w.Line, w.Column = node.Line, node.Column
	}
	c.warns = append(c.warns, w)
}

func p(parts ...any) []any { return parts }

func (c *compiler) policy(spec *Spec, name string, version int64, line int) *cpolicy {
	pol := &cpolicy{name: name, version: version, ref: policyRef(name, version), file: c.file, line: line}
	for _, l := range BuiltinLabels {
		c.labels[l] = true
	}
	for i, l := range spec.Labels {
		switch {
		case !labelRE.MatchString(l):
			c.errorf(p("spec", "labels", i), "%q is not a valid label name: use lower-case letters, digits and '_', starting with a letter", l)
		case slices.Contains(BuiltinLabels, l):
			c.warnf(p("spec", "labels", i), "%q is built in; it need not be declared", l)
		case c.labels[l]:
			c.errorf(p("spec", "labels", i), "label %q is declared twice", l)
		}
		c.labels[l] = true
		pol.labels = append(pol.labels, l)
	}
	if len(spec.Subjects) == 0 {
		c.errorf(p("spec", "subjects"), "missing; name who the policy applies to: %s", subjectHelp)
	}
	seenSubj := map[string]bool{}
	for i, s := range spec.Subjects {
		sp, err := parseSubject(s)
		if err != nil {
			c.errorf(p("spec", "subjects", i), "%v", err)
			continue
		}
		if seenSubj[s] {
			c.warnf(p("spec", "subjects", i), "subject %q is listed twice", s)
		}
		seenSubj[s] = true
		pol.subjects = append(pol.subjects, sp)
	}
	if len(spec.Rules) == 0 {
		c.warnf(p("spec", "rules"), "the policy has no rules, so it allows nothing")
	}
	c.mode(pol, spec)
	names := map[string]int{}
	for i := range spec.Rules {
		r := c.rule(pol, &spec.Rules[i], i)
		if r == nil {
			continue
		}
		if prev, dup := names[r.name]; dup {
			c.errorf(p("spec", "rules", i, "name"), "rule %q is already defined at spec.rules[%d]; rule names must be unique in a policy", r.name, prev)
			continue
		}
		names[r.name] = i
		pol.rules = append(pol.rules, r)
	}
	return pol
}

func (c *compiler) rule(pol *cpolicy, rs *RuleSpec, i int) *crule {
	at := func(parts ...any) []any { return append(p("spec", "rules", i), parts...) }
	node, _ := c.at(at())
	r := &crule{p: pol, name: rs.Name, desc: strings.TrimSpace(rs.Description)}
	if node != nil {
		r.line = node.Line
	}
	nerr := len(c.errs)
	switch {
	case rs.Name == "":
		c.errorf(at("name"), "missing; every rule needs a name (it appears in decisions and audit events)")
	case !resource.ValidName(rs.Name):
		c.errorf(at("name"), "%q is not a valid rule name: use 1-128 lower-case letters, digits, '.', '_' or '-'", rs.Name)
	}
	switch rs.Effect {
	case "allow":
		r.effect = effectAllow
	case "deny":
		r.effect = effectDeny
	case "escalate":
		r.effect = effectEscalate
	case "":
		c.errorf(at("effect"), "missing; one of allow, deny, escalate")
	default:
		c.errorf(at("effect"), "%q is not an effect; one of allow, deny, escalate", rs.Effect)
	}
	if len(rs.Targets) == 0 {
		c.errorf(at("targets"), "missing; a rule names the targets it covers (http, mcp, token, task or labels)")
	}
	for j := range rs.Targets {
		if t := c.target(r, &rs.Targets[j], at("targets", j)); t != nil {
			r.targets = append(r.targets, t)
		}
	}
	if rs.When != "" {
		cond, err := compileCondition(rs.When)
		if err != nil {
			c.celError(at("when"), rs.When, err)
		} else {
			r.when = cond
		}
	}
	if rs.Flow != nil {
		if len(rs.Flow.TouchedAll) == 0 && len(rs.Flow.TouchedAny) == 0 {
			c.errorf(at("flow"), "empty; list the labels the task must have touched in touched_all or touched_any")
		}
		r.flowAll = c.labelList(rs.Flow.TouchedAll, at("flow", "touched_all"))
		r.flowAny = c.labelList(rs.Flow.TouchedAny, at("flow", "touched_any"))
	}
	c.obligations(r, rs, at)
	if len(c.errs) > nerr {
		return nil
	}
	r.reasons = []string{r.reason()}
	return r
}

func (r *crule) reason() string {
	var verb string
	switch {
	case r.effect == effectDeny:
		verb = "denied by"
	case r.approval != nil:
		verb = "approval required by"
	default:
		verb = "allowed by"
	}
	s := fmt.Sprintf("%s rule %q of policy %s", verb, r.name, r.p.ref)
	if r.desc != "" {
		s += ": " + r.desc
	}
	return s
}

func (c *compiler) obligations(r *crule, rs *RuleSpec, at func(...any) []any) {
	if r.effect == effectDeny {
		for _, f := range []struct {
			name string
			set  bool
		}{{"rate", rs.Rate != nil}, {"approval", rs.Approval != nil}, {"max_ttl", rs.MaxTTL != ""}, {"budget", rs.Budget != 0}} {
			if f.set {
				c.errorf(at(f.name), "a deny rule grants nothing, so it takes no %s; move it to an allow rule", f.name)
			}
		}
		return
	}
	if r.effect == effectEscalate {
		for _, f := range []struct {
			name string
			set  bool
		}{{"rate", rs.Rate != nil}, {"max_ttl", rs.MaxTTL != ""}, {"budget", rs.Budget != 0}} {
			if f.set {
				c.errorf(at(f.name), "an escalate rule grants nothing, so it takes no %s; move it to an allow rule", f.name)
			}
		}
	}
	if rs.Rate != nil {
		lim, err := ratelimit.ParseLimit(rs.Rate.Limit)
		if err != nil {
			c.errorf(at("rate", "limit"), "%v", err)
		}
		per := rs.Rate.Per
		switch per {
		case "":
			per = PerSubject // see RateSpec: every process of an agent shares it
		case PerInstance, PerSubject, PerTask:
		default:
			c.errorf(at("rate", "per"), "%q: a rate is counted per instance, subject or task", per)
		}
		ref := r.p.name + "/" + r.name
		if b := rs.Rate.Bucket; b != "" {
			if !resource.ValidName(b) {
				c.errorf(at("rate", "bucket"), "%q is not a valid bucket name: use lower-case letters, digits, '.', '_' or '-'", b)
			}
			ref = r.p.name + "/" + b
			if prev, ok := c.buckets[b]; ok && (prev.limit != lim || prev.per != per) {
				c.errorf(at("rate"), "bucket %q is %v per %s in rule %q; every rule sharing a bucket must give the same limit and per",
					b, prev.limit, prev.per, prev.rule)
			} else if !ok {
				c.buckets[b] = bucketDef{rule: r.name, limit: lim, per: per}
			}
		}
		r.rate = &crate{limit: lim, per: per, prefix: ref + "|" + per + "=", ref: ref}
	}
	if a := rs.Approval; a != nil || r.effect == effectEscalate {
		required := true
		var spec ApprovalSpec
		if a != nil {
			spec = *a
			if a.Required != nil {
				required = *a.Required
			}
		}
		if !required && r.effect == effectEscalate {
			c.errorf(at("approval", "required"), "an escalate rule always requires approval; use effect: allow for a rule without approval")
		}
		if required {
			ob := &ApprovalObligation{Policy: r.p.ref, Rule: r.name, Timeout: Duration(DefaultApprovalTimeout)}
			for k, who := range spec.Approvers {
				if id, err := spiffeid.FromString(who); err == nil && id.String() == who {
					// A workload may approve (a supervising agent); the
					// one that asked never may (internal/approval).
					ob.Approvers = append(ob.Approvers, who)
					continue
				}
				sp, err := parseSubject(who)
				if err != nil || !sp.isUser() || sp.name == "*" {
					c.errorf(at("approval", "approvers", k), "%q: an approver is user:NAME, group:NAME or an exact SPIFFE ID", who)
					continue
				}
				ob.Approvers = append(ob.Approvers, who)
			}
			if spec.Timeout != "" {
				d, err := time.ParseDuration(spec.Timeout)
				switch {
				case err != nil:
					c.errorf(at("approval", "timeout"), "%q is not a duration; write it like 15m or 1h", spec.Timeout)
				case d <= 0 || d > 7*24*time.Hour:
					c.errorf(at("approval", "timeout"), "%s is out of range: an approval waits more than 0 and at most 168h", spec.Timeout)
				default:
					ob.Timeout = Duration(d)
				}
			}
			r.approval = ob
		}
	}
	if rs.MaxTTL != "" {
		d, err := time.ParseDuration(rs.MaxTTL)
		switch {
		case err != nil:
			c.errorf(at("max_ttl"), "%q is not a duration; write it like 5m or 1h", rs.MaxTTL)
		case d <= 0:
			c.errorf(at("max_ttl"), "must be positive")
		default:
			r.maxTTL = d
		}
	}
	if rs.Budget < 0 {
		c.errorf(at("budget"), "must not be negative (0 means no budget)")
	}
	r.budget = rs.Budget
}

func (c *compiler) labelList(in []string, at []any) []string {
	if in == nil {
		return nil
	}
	if len(in) == 0 {
		c.errorf(at, "empty list; omit it or name at least one label")
		return nil
	}
	out := make([]string, 0, len(in))
	for i, l := range in {
		if !c.labels[l] {
			c.errorf(append(slices.Clone(at), i), "unknown label %q: use one of %s, or declare it in spec.labels", l, strings.Join(c.knownLabels(), ", "))
			continue
		}
		out = append(out, l)
	}
	return out
}

func (c *compiler) knownLabels() []string {
	var out []string
	for l := range c.labels {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// What a list of globs matches, for the canonical form of its patterns.
type globKind uint8

const (
	globName globKind = iota // tool, prompt, audience, purpose: as written
	globPath                 // HTTP paths: see CanonicalPath
	globURI                  // MCP resource URIs: see CanonicalURI
)

func (c *compiler) globs(in []string, at []any, what string, kind globKind) globList {
	if in == nil {
		return nil
	}
	if len(in) == 0 {
		c.errorf(at, "empty list; omit it to mean every %s, or name at least one", what)
		return nil
	}
	out := make(globList, 0, len(in))
	for i, s := range in {
		if kind == globPath && !strings.HasPrefix(s, "/") && s != "**" {
			c.errorf(append(slices.Clone(at), i), "%q: paths start with /; use /** for every path", s)
			continue
		}
		if kind != globName && s != "**" {
			canon, err := canonicalPattern(s, kind == globURI)
			if err != nil {
				c.errorf(append(slices.Clone(at), i), "bad %s pattern: %v", what, err)
				continue
			}
			s = canon
		}
		g, err := ParseGlob(s)
		if err != nil {
			c.errorf(append(slices.Clone(at), i), "bad %s pattern: %v", what, err)
			continue
		}
		out = append(out, g)
	}
	return out
}

func (c *compiler) name(s string, at []any, what string) Glob {
	if s == "" {
		c.errorf(at, "missing; name the %s (a pattern such as * is allowed)", what)
		return Glob{}
	}
	g, err := ParseGlob(s)
	if err != nil {
		c.errorf(at, "bad %s pattern: %v", what, err)
	}
	return g
}

func (c *compiler) target(r *crule, ts *TargetSpec, at []any) *ctarget {
	t := &ctarget{rule: r}
	_, t.field = c.at(at)
	n := 0
	for _, set := range []bool{ts.HTTP != nil, ts.MCP != nil, ts.Token != nil, ts.Task != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		c.errorf(at, "names more than one of http, mcp, token and task; write one target for each")
		return nil
	}
	if n == 0 && ts.Labels == nil {
		c.errorf(at, "empty; name one of http, mcp, token, task or labels")
		return nil
	}
	if ts.Labels != nil {
		t.labels = c.labelList(ts.Labels, append(slices.Clone(at), "labels"))
	}
	sub := func(parts ...any) []any { return append(slices.Clone(at), parts...) }
	switch {
	case ts.HTTP != nil:
		h := ts.HTTP
		t.kind = KindHTTP
		t.name = c.name(h.Service, sub("http", "service"), "service")
		if h.Methods != nil {
			if len(h.Methods) == 0 {
				c.errorf(sub("http", "methods"), "empty list; omit it to mean every method, or name at least one")
			}
			for i, m := range h.Methods {
				switch {
				case m == "*" || slices.Contains(httpMethods, m):
					t.methods = append(t.methods, m)
				case slices.Contains(httpMethods, strings.ToUpper(m)):
					c.errorf(sub("http", "methods", i), "%q: write HTTP methods in upper case (%s)", m, strings.ToUpper(m))
				default:
					c.errorf(sub("http", "methods", i), "%q is not an HTTP method; one of %s or *", m, strings.Join(httpMethods, ", "))
				}
			}
		}
		t.paths = c.globs(h.Paths, sub("http", "paths"), "path", globPath)
	case ts.MCP != nil:
		m := ts.MCP
		t.kind = KindMCP
		t.name = c.name(m.Server, sub("mcp", "server"), "MCP server")
		t.tools = c.globs(m.Tools, sub("mcp", "tools"), "tool", globName)
		t.resources = c.globs(m.Resources, sub("mcp", "resources"), "resource", globURI)
		t.prompt = c.globs(m.Prompts, sub("mcp", "prompts"), "prompt", globName)
		t.mcpAll = m.Tools == nil && m.Resources == nil && m.Prompts == nil
	case ts.Token != nil:
		t.kind = KindToken
		t.audiences = c.globs(ts.Token.Audiences, sub("token", "audiences"), "audience", globName)
		if ts.Token.Scopes != nil && len(ts.Token.Scopes) == 0 {
			c.errorf(sub("token", "scopes"), "empty list; omit it to mean any scopes, or name at least one")
		}
		for i, s := range ts.Token.Scopes {
			if s == "" || strings.ContainsAny(s, " *?[") {
				c.errorf(sub("token", "scopes", i), "%q: scopes are exact names without spaces or wildcards", s)
				continue
			}
			t.scopes = append(t.scopes, s)
		}
	case ts.Task != nil:
		t.kind = KindTask
		t.purposes = c.globs(ts.Task.Purposes, sub("task", "purposes"), "purpose", globName)
	}
	return t
}

// celError reports a CEL compile error at its position inside the `when`
// value when it can be computed (single-line values), else at the value.
func (c *compiler) celError(path []any, src string, err error) {
	node, field := c.at(path)
	line, col := 0, 0
	if node != nil {
		line, col = node.Line, node.Column
	}
	msg := err.Error()
	var ce *condError
	if errors.As(err, &ce) {
		msg = ce.msg
		if node != nil {
			switch node.Style {
			case yaml.LiteralStyle, yaml.FoldedStyle:
				line, col = node.Line+ce.line, 0
			case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
				if ce.line == 1 {
					col = node.Column + 1 + ce.col
				}
			default:
				if ce.line == 1 {
					col = node.Column + ce.col
				}
			}
		}
	}
	if len(c.errs) < maxErrors {
		c.errs = append(c.errs, &strictyaml.Error{File: c.file, Line: line, Column: col, Field: field,
			Msg: "condition does not compile: " + msg})
	}
}
