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
}

type identity struct {
	id    string
	ev    evidence
	rules map[ruleKey]*ruleAcc
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
	return &Learner{o: o, ids: map[string]*identity{}, denied: map[deniedKey]*evidence{}}
}

// Add learns from a: an allowed access widens the identity's policy, a
// denied one is kept for [Learner.Denied]. Accesses that do not name a
// caller, service, method and path are ignored.
func (l *Learner) Add(a *Access) {
	if !a.decidable() || !utf8.ValidString(a.Path) || !utf8.ValidString(a.Service) {
		return // YAML could not spell the path exactly
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
	id := l.ids[a.SpiffeID]
	if id == nil {
		id = &identity{id: a.SpiffeID, rules: map[ruleKey]*ruleAcc{}}
		l.ids[a.SpiffeID] = id
	}
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
	keys := make([]ruleKey, 0, len(id.rules))
	for k := range id.rules {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ruleKey) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		return strings.Compare(a.pattern, b.pattern)
	})
	fmt.Fprintf(&b, "# Learned by `writ policy learn` from %d allowed accesses of %s\n", id.ev.count, id.id)
	fmt.Fprintf(&b, "# between %s and %s. It allows what was observed and nothing more:\n", stamp(id.ev.first), stamp(id.ev.last))
	b.WriteString("# review every rule before applying it (docs/policy-learning.md).\n")
	b.WriteString("apiVersion: writ.dev/v1\nkind: AccessPolicy\nmetadata:\n")
	fmt.Fprintf(&b, "  name: %s\nspec:\n", name)
	fmt.Fprintf(&b, "  description: %s\n", strconv.Quote("Learned from observed traffic of "+id.id))
	fmt.Fprintf(&b, "  subjects:\n    - %s\n  rules:\n", strconv.Quote(id.id))
	seq := map[string]int{}
	for _, k := range keys {
		r := id.rules[k]
		methods := sortedKeys(r.methods)
		var counts []string
		for _, m := range methods {
			counts = append(counts, fmt.Sprintf("%s %d", m, r.methods[m]))
		}
		fmt.Fprintf(&b, "    # %d calls (%s), first %s, last %s, peak %d per minute, e.g. %s\n",
			r.ev.count, strings.Join(counts, ", "), stamp(r.ev.first), stamp(r.ev.last), r.peak, strconv.Quote(r.ev.example))
		svc := ruleService(k.service)
		seq[svc]++
		fmt.Fprintf(&b, "    - name: %s-%d\n      effect: allow\n      targets:\n", svc, seq[svc])
		quoted := make([]string, len(methods))
		for i, m := range methods {
			quoted[i] = strconv.Quote(m)
		}
		fmt.Fprintf(&b, "        - http: {service: %s, methods: [%s], paths: [%s]}\n",
			strconv.Quote(k.service), strings.Join(quoted, ", "), strconv.Quote(k.pattern))
		if !l.o.NoRate {
			fmt.Fprintf(&b, "      rate: {limit: %d/1m}\n", l.rateLimit(r.peak))
		}
	}
	return []byte(b.String())
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
