package learn

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
)

// Options tune a [Learner]. The zero value uses the defaults.
type Options struct {
	// Generalizer picks the path segments that become "*"; nil fields
	// mean none (use [DefaultGeneralizer]).
	Generalizer Generalizer
	// Headroom multiplies the observed peak calls per sliding minute to
	// give a rule's rate limit; default 2.
	Headroom float64
	// MinRate is the smallest rate limit per minute a rule gets; default 10.
	MinRate int
	// NoRate leaves rules without a rate limit.
	NoRate bool
	// Prefix starts every policy name; default "learned-".
	Prefix string
	// MaxValues is the most distinct values of an MCP argument that are
	// enumerated in a condition; default 8.
	MaxValues int
	// MaxValueLen is the longest argument value (bytes) enumerated;
	// default 128.
	MaxValueLen int
	// Collapse, when above 1, merges the rules of one service whose path
	// patterns differ in one segment only, when more than Collapse of them
	// do, into one rule with "*" in that segment (see [collapse]); 0 never
	// merges.
	Collapse int
	// Observe writes the policies with mode: observe, replacing the
	// policies named in Replaces.
	Observe  bool
	Replaces []string
}

// Learner accumulates accesses and renders the policy they support. Its
// memory grows with the distinct (identity, service, path pattern)
// triples seen and the calls of the busiest sliding minute, not with the
// number of events.
type Learner struct {
	o      Options
	ids    map[string]*identity
	denied map[deniedKey]*evidence
	events int64
	taskOf map[string]taskRef // open tasks seen, until closed
}

type identity struct {
	id     string
	ev     evidence
	rules  map[ruleKey]*ruleAcc
	mcp    map[mcpKey]*mcpAcc
	tokens map[string]*tokenAcc
	tasks  map[string]*taskAcc
}

// identity returns the accumulator of spiffeID.
func (l *Learner) identity(spiffeID string) *identity {
	id := l.ids[spiffeID]
	if id == nil {
		id = &identity{id: spiffeID, rules: map[ruleKey]*ruleAcc{}, mcp: map[mcpKey]*mcpAcc{},
			tokens: map[string]*tokenAcc{}, tasks: map[string]*taskAcc{}}
		l.ids[spiffeID] = id
	}
	return id
}

type ruleKey struct{ service, pattern string }

type ruleAcc struct {
	ev      evidence
	methods map[string]int64
	// recent holds the times (unix ns) of the calls in the last minute,
	// oldest first; peak is the most it ever held.
	recent []int64
	peak   int
}

type deniedKey struct{ id, service, method, pattern, rule string }

// evidence is what a rule's comment reports.
type evidence struct {
	count       int64
	first, last time.Time
	example     string
}

func (e *evidence) add(t time.Time, example string) {
	if e.count == 0 || t.Before(e.first) {
		e.first = t
	}
	if e.count == 0 || t.After(e.last) {
		e.last = t
	}
	if e.count == 0 {
		e.example = example
	}
	e.count++
}

// NewLearner returns a learner with o.
func NewLearner(o Options) *Learner {
	if o.Headroom <= 0 {
		o.Headroom = 2
	}
	if o.MinRate <= 0 {
		o.MinRate = 10
	}
	if o.Prefix == "" {
		o.Prefix = "learned-"
	}
	if o.MaxValues <= 0 {
		o.MaxValues = 8
	}
	if o.MaxValueLen <= 0 {
		o.MaxValueLen = 128
	}
	return &Learner{o: o, ids: map[string]*identity{}, denied: map[deniedKey]*evidence{}, taskOf: map[string]taskRef{}}
}

// Add learns from a: an allowed access widens the identity's policy, a
// denied one is kept for [Learner.Denied]. Accesses that do not name a
// caller, service, method and path are ignored.
func (l *Learner) Add(a *Access) {
	if !a.decidable() || !utf8.ValidString(a.Path) || !utf8.ValidString(a.Service) {
		return // YAML could not spell the path exactly
	}
	if a.isMCP() {
		if !utf8.ValidString(a.Tool + a.Resource + a.Prompt) {
			return
		}
		l.events++
		if !a.Allowed {
			k := deniedKey{a.SpiffeID, a.Service, a.Method, a.Tool + a.Resource + a.Prompt, a.Rule}
			e := l.denied[k]
			if e == nil {
				e = &evidence{}
				l.denied[k] = e
			}
			e.add(a.Time, a.Method+" "+a.Tool+a.Resource+a.Prompt)
			return
		}
		id := l.identity(a.SpiffeID)
		id.ev.add(a.Time, a.Method+" "+a.Tool+a.Resource+a.Prompt)
		l.addMCP(id, a)
		return
	}
	method, ok := policy.CanonicalMethod(a.Method)
	if !ok {
		return
	}
	pattern, ok := l.o.Generalizer.Pattern(a.Path)
	if !ok {
		return
	}
	l.events++
	example := method + " " + a.Path
	if !a.Allowed {
		k := deniedKey{a.SpiffeID, a.Service, method, pattern, a.Rule}
		e := l.denied[k]
		if e == nil {
			e = &evidence{}
			l.denied[k] = e
		}
		e.add(a.Time, example)
		return
	}
	id := l.identity(a.SpiffeID)
	id.ev.add(a.Time, example)
	k := ruleKey{a.Service, pattern}
	r := id.rules[k]
	if r == nil {
		r = &ruleAcc{methods: map[string]int64{}}
		id.rules[k] = r
	}
	r.ev.add(a.Time, example)
	r.methods[method]++
	r.observe(a.Time.UnixNano())
}

// observe counts a call at t in the sliding minute. Events come in log
// order, which follows time closely; a call older than the newest is
// counted as if it came at the newest time.
func (r *ruleAcc) observe(t int64) {
	if n := len(r.recent); n > 0 && t < r.recent[n-1] {
		t = r.recent[n-1]
	}
	cut := t - int64(time.Minute)
	i := 0
	for i < len(r.recent) && r.recent[i] <= cut {
		i++
	}
	if i > 0 {
		r.recent = append(r.recent[:0], r.recent[i:]...)
	}
	r.recent = append(r.recent, t)
	r.peak = max(r.peak, len(r.recent))
}

// File is one generated file.
type File struct {
	Name    string // base name, NAME.yaml
	Content []byte
}

// Files renders one AccessPolicy per identity with allowed traffic, in
// SPIFFE ID order. The bytes depend only on what was added.
func (l *Learner) Files() []File {
	ids := sortedKeys(l.ids)
	names := map[string]int{}
	for _, id := range ids {
		names[l.policyName(id)]++
	}
	files := make([]File, 0, len(ids))
	for _, id := range ids {
		name := l.policyName(id)
		if names[name] > 1 {
			sum := sha256.Sum256([]byte(id))
			name = name[:min(len(name), 100)] + "-" + hex.EncodeToString(sum[:4])
		}
		files = append(files, File{Name: name + ".yaml", Content: l.render(name, l.ids[id])})
	}
	return files
}

// policyName derives a resource name from a SPIFFE ID's path.
func (l *Learner) policyName(id string) string {
	_, p, _ := strings.Cut(strings.TrimPrefix(id, "spiffe://"), "/")
	var b strings.Builder
	b.WriteString(l.o.Prefix)
	dash := false
	for _, r := range strings.ToLower(p) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '.' || r == '_' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-._")
	if len(name) > 110 {
		name = strings.Trim(name[:110], "-._")
	}
	if !resource.ValidName(name) {
		sum := sha256.Sum256([]byte(id))
		name = "learned-" + hex.EncodeToString(sum[:8])
	}
	return name
}

// render writes the policy of one identity.
func (l *Learner) render(name string, id *identity) []byte {
	var b strings.Builder
	rules := id.rules
	var collapsed []string
	if l.o.Collapse > 1 {
		rules, collapsed = collapse(id.rules, l.o.Collapse)
	}
	keys := make([]ruleKey, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ruleKey) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		return strings.Compare(a.pattern, b.pattern)
	})
	fmt.Fprintf(&b, "# Learned by `writ policy learn` from %d allowed calls, token exchanges and tasks of %s\n", id.ev.count, id.id)
	fmt.Fprintf(&b, "# between %s and %s. It allows what was observed and nothing more:\n", stamp(id.ev.first), stamp(id.ev.last))
	b.WriteString("# review every rule before applying it (docs/policy-learning.md).\n")
	for _, c := range collapsed {
		fmt.Fprintf(&b, "# %s\n", c)
	}
	b.WriteString("apiVersion: writ.dev/v1\nkind: AccessPolicy\nmetadata:\n")
	fmt.Fprintf(&b, "  name: %s\nspec:\n", name)
	fmt.Fprintf(&b, "  description: %s\n", strconv.Quote("Learned from observed traffic of "+id.id))
	if l.o.Observe {
		b.WriteString("  mode: observe\n")
		if len(l.o.Replaces) > 0 {
			q := make([]string, len(l.o.Replaces))
			for i, r := range l.o.Replaces {
				q[i] = strconv.Quote(r)
			}
			fmt.Fprintf(&b, "  replaces: [%s]\n", strings.Join(q, ", "))
		}
	}
	fmt.Fprintf(&b, "  subjects:\n    - %s\n  rules:\n", strconv.Quote(id.id))
	seq := map[string]int{}
	ruleName := func(prefix string) string {
		seq[prefix]++
		return fmt.Sprintf("%s-%d", prefix, seq[prefix])
	}
	for _, k := range keys {
		r := rules[k]
		methods := sortedKeys(r.methods)
		var counts []string
		for _, m := range methods {
			counts = append(counts, fmt.Sprintf("%s %d", m, r.methods[m]))
		}
		fmt.Fprintf(&b, "    # %d calls (%s), first %s, last %s, peak %d per minute, e.g. %s\n",
			r.ev.count, strings.Join(counts, ", "), stamp(r.ev.first), stamp(r.ev.last), r.peak, strconv.Quote(r.ev.example))
		fmt.Fprintf(&b, "    - name: %s\n      effect: allow\n      targets:\n", ruleName(ruleService(k.service)))
		quoted := make([]string, len(methods))
		for i, m := range methods {
			quoted[i] = strconv.Quote(m)
		}
		fmt.Fprintf(&b, "        - http: {service: %s, methods: [%s], paths: [%s]}\n",
			strconv.Quote(k.service), strings.Join(quoted, ", "), strconv.Quote(k.pattern))
		l.writeRate(&b, r.peak)
	}
	mkeys := make([]mcpKey, 0, len(id.mcp))
	for k := range id.mcp {
		mkeys = append(mkeys, k)
	}
	slices.SortFunc(mkeys, func(a, b mcpKey) int {
		return strings.Compare(a.server+"\x00"+a.kind+"\x00"+a.name, b.server+"\x00"+b.kind+"\x00"+b.name)
	})
	for _, k := range mkeys {
		m := id.mcp[k]
		cond, notes := m.condition()
		note := ""
		if len(notes) > 0 {
			note = "; " + strings.Join(notes, "; ")
		}
		fmt.Fprintf(&b, "    # %d calls, first %s, last %s, peak %d per minute, e.g. %s%s\n",
			m.ev.count, stamp(m.ev.first), stamp(m.ev.last), m.rate.peak, strconv.Quote(m.ev.example), strings.ReplaceAll(note, "\n", " "))
		fmt.Fprintf(&b, "    - name: %s\n      effect: allow\n      targets:\n", ruleName("mcp-"+ruleService(k.server)))
		fmt.Fprintf(&b, "        - mcp: {server: %s, %s: [%s]}\n", strconv.Quote(k.server), k.kind, strconv.Quote(escapeGlob(k.name)))
		if cond != "" {
			fmt.Fprintf(&b, "      when: %s\n", strconv.Quote(cond))
		}
		l.writeRate(&b, m.rate.peak)
	}
	for _, aud := range sortedKeys(id.tokens) {
		t := id.tokens[aud]
		scopes := sortedKeys(t.scopes)
		var counts []string
		for _, sc := range scopes {
			counts = append(counts, fmt.Sprintf("%s %d", sc, t.scopes[sc]))
		}
		fmt.Fprintf(&b, "    # %d token exchanges (scopes: %s), first %s, last %s, peak %d per minute\n",
			t.ev.count, strings.Join(counts, ", "), stamp(t.ev.first), stamp(t.ev.last), t.rate.peak)
		fmt.Fprintf(&b, "    - name: %s\n      effect: allow\n      targets:\n", ruleName("token"))
		if len(scopes) == 0 {
			// Omitted scopes would mean any: none were asked for, so none
			// are allowed.
			fmt.Fprintf(&b, "        - token: {audiences: [%s]}\n      when: \"size(token.scopes) == 0\"\n", strconv.Quote(escapeGlob(aud)))
		} else {
			q := make([]string, len(scopes))
			for i, sc := range scopes {
				q[i] = strconv.Quote(sc)
			}
			fmt.Fprintf(&b, "        - token: {audiences: [%s], scopes: [%s]}\n", strconv.Quote(escapeGlob(aud)), strings.Join(q, ", "))
		}
		l.writeRate(&b, t.rate.peak)
	}
	for _, purpose := range sortedKeys(id.tasks) {
		t := id.tasks[purpose]
		calls := "none closed, so no budget"
		if t.closed > 0 {
			calls = fmt.Sprintf("%d closed, at most %d calls each", t.closed, t.maxCalls)
		}
		fmt.Fprintf(&b, "    # %d tasks opened (%s), first %s, last %s\n", t.ev.count, calls, stamp(t.ev.first), stamp(t.ev.last))
		fmt.Fprintf(&b, "    - name: %s\n      effect: allow\n      targets:\n", ruleName("task"))
		fmt.Fprintf(&b, "        - task: {purposes: [%s]}\n", strconv.Quote(escapeGlob(purpose)))
		if t.closed > 0 {
			fmt.Fprintf(&b, "      budget: %d\n", l.budget(t.maxCalls))
		}
	}
	return []byte(b.String())
}

func (l *Learner) writeRate(b *strings.Builder, peak int) {
	if !l.o.NoRate {
		fmt.Fprintf(b, "      rate: {limit: %d/1m}\n", l.rateLimit(peak))
	}
}

// rateLimit is the limit per minute for a rule whose busiest sliding
// minute held peak calls.
func (l *Learner) rateLimit(peak int) int {
	return max(l.o.MinRate, int(math.Ceil(float64(peak)*l.o.Headroom)))
}

// ruleService makes a service name usable in a rule name.
func ruleService(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	n := strings.Trim(b.String(), "-._")
	if len(n) > 100 {
		n = strings.Trim(n[:100], "-._")
	}
	if n == "" {
		n = "service"
	}
	return n
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Denial is denied traffic of one identity to one (service, method, path
// pattern), under one deciding rule.
type Denial struct {
	SpiffeID string `json:"spiffe_id"`
	Service  string `json:"service"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Rule     string `json:"rule,omitempty"`
	Count    int64  `json:"count"`
	First    string `json:"first"`
	Last     string `json:"last"`
	Example  string `json:"example"`
}

// Denied returns the denied traffic, which is never learned, in order.
func (l *Learner) Denied() []Denial {
	out := make([]Denial, 0, len(l.denied))
	for k, e := range l.denied {
		out = append(out, Denial{SpiffeID: k.id, Service: k.service, Method: k.method, Path: k.pattern, Rule: k.rule,
			Count: e.count, First: stamp(e.first), Last: stamp(e.last), Example: e.example})
	}
	slices.SortFunc(out, func(a, b Denial) int {
		return strings.Compare(a.SpiffeID+"\x00"+a.Service+"\x00"+a.Path+"\x00"+a.Method+"\x00"+a.Rule,
			b.SpiffeID+"\x00"+b.Service+"\x00"+b.Path+"\x00"+b.Method+"\x00"+b.Rule)
	})
	return out
}

// Events returns the number of accesses learned from (allowed and denied).
func (l *Learner) Events() int64 { return l.events }

// Report renders the review report: the digest of files and the denied
// traffic.
func Report(files []File, denied []Denial) []byte {
	var b strings.Builder
	b.WriteString("# writ policy learn: review report\n")
	for _, f := range files {
		sum := sha256.Sum256(f.Content)
		fmt.Fprintf(&b, "file %s sha256:%s\n", f.Name, hex.EncodeToString(sum[:]))
	}
	fmt.Fprintf(&b, "digest %s\n", Digest(files))
	fmt.Fprintf(&b, "\n# denied traffic (not learned): %d groups\n", len(denied))
	for _, d := range denied {
		rule := d.Rule
		if rule == "" {
			rule = "(no rule)"
		}
		fmt.Fprintf(&b, "%s %s %s %s rule %s: %d, first %s, last %s, e.g. %s\n",
			d.SpiffeID, d.Service, d.Method, strconv.Quote(d.Path), rule, d.Count, d.First, d.Last, strconv.Quote(d.Example))
	}
	return []byte(b.String())
}

// Digest is the digest of a set of policy files that `writ apply
// --expect-digest` compares: sha256 over the lines "HASH  NAME\n" of the
// files sorted by base name, where HASH is the hex sha256 of the content.
func Digest(files []File) string {
	fs := slices.Clone(files)
	slices.SortFunc(fs, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	for _, f := range fs {
		sum := sha256.Sum256(f.Content)
		fmt.Fprintf(h, "%x  %s\n", sum, f.Name)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
