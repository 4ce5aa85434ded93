package secrets

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// MinKeySize is the least length of [Config.FingerprintKey].
const MinKeySize = 16

// Config configures a [Detector]. FingerprintKey is required.
type Config struct {
	// FingerprintKey keys the HMAC-SHA256 of each finding's fingerprint, so
	// that a fingerprint cannot be used to test a guessed secret without the
	// key. Use one key per deployment (fingerprints are then comparable
	// across scans and with broker values) and keep it secret. At least
	// MinKeySize bytes.
	FingerprintKey []byte
	// Disable lists rule ids not to run.
	Disable []string
}

// Finding is one secret found. It never holds the secret's value.
type Finding struct {
	RuleID      string   `json:"rule_id"`
	Description string   `json:"description"`
	Severity    Severity `json:"severity"`
	// Start and End are the byte span of the secret in the scanned input
	// (for [Detector.RedactJSON], in the decoded JSON string named by
	// Pointer).
	Start int `json:"start"`
	End   int `json:"end"`
	// Line and Column are 1-based; Column counts bytes.
	Line   int `json:"line"`
	Column int `json:"column"`
	// Pointer is the RFC 6901 JSON pointer of the string value that holds
	// the secret; set by RedactJSON only. An object key's pointer is the
	// object's, with Key set.
	Pointer string `json:"pointer,omitempty"`
	Key     bool   `json:"key,omitempty"`
	// Fingerprint is hex HMAC-SHA256 of the value under the detector's key.
	Fingerprint string `json:"fingerprint"`
}

// Detector finds secrets in bytes. It is safe for concurrent use; build one
// with [New] and share it. Detectors of one process with the same disabled
// rules share one compiled rule set (a few hundred regular expressions and
// their keyword matcher, about 1 MB), compiled by the first.
type Detector struct {
	*ruleSet
	key     []byte
	scratch sync.Pool
}

// ruleSet is the compiled rules, never changed after compiling.
type ruleSet struct {
	rules  []rule
	global []allowlist
	// trie finds every keyword; kwRules maps a keyword's index to the
	// rules it enables.
	trie      *keywordMatcher
	kwRules   [][]int
	alwaysRun []int
}

// ruleSets holds the compiled rule sets by their disabled rule ids.
var ruleSets struct {
	mu sync.Mutex
	m  map[string]*ruleSet
}

// New builds a detector from the embedded rules.
func New(cfg Config) (*Detector, error) {
	if len(cfg.FingerprintKey) < MinKeySize {
		return nil, fmt.Errorf("new secret detector: fingerprint key is %d bytes, want at least %d", len(cfg.FingerprintKey), MinKeySize)
	}
	disabled := slices.Clone(cfg.Disable)
	slices.Sort(disabled)
	disabled = slices.Compact(disabled)
	id := fmt.Sprintf("%q", disabled)
	ruleSets.mu.Lock()
	defer ruleSets.mu.Unlock()
	rs := ruleSets.m[id]
	if rs == nil {
		var err error
		if rs, err = compileRuleSet(disabled); err != nil {
			return nil, fmt.Errorf("new secret detector: %w", err)
		}
		if ruleSets.m == nil {
			ruleSets.m = map[string]*ruleSet{}
		}
		ruleSets.m[id] = rs
	}
	return &Detector{ruleSet: rs, key: bytes.Clone(cfg.FingerprintKey)}, nil
}

// compileRuleSet compiles the embedded rules but the disabled ones.
func compileRuleSet(disable []string) (*ruleSet, error) {
	disabled := map[string]bool{}
	for _, id := range disable {
		disabled[id] = true
	}
	rules, global, err := loadRules(disabled)
	if err != nil {
		return nil, err
	}
	d := &ruleSet{rules: rules, global: global}
	kwIndex := map[string]int{}
	var keywords []string
	for i, r := range rules {
		if len(r.keywords) == 0 {
			d.alwaysRun = append(d.alwaysRun, i)
			continue
		}
		for _, k := range r.keywords {
			j, ok := kwIndex[k]
			if !ok {
				j = len(keywords)
				kwIndex[k] = j
				keywords = append(keywords, k)
				d.kwRules = append(d.kwRules, nil)
			}
			d.kwRules[j] = append(d.kwRules[j], i)
		}
	}
	d.trie = newKeywordMatcher(keywords)
	return d, nil
}

// Rules lists the detector's rules.
func (d *Detector) Rules() []RuleInfo {
	out := make([]RuleInfo, len(d.rules))
	for i, r := range d.rules {
		out[i] = r.RuleInfo
	}
	return out
}

// Fingerprint returns the keyed fingerprint of a value, as findings carry
// it: a store of known secrets (the broker) can tell which one a finding is
// without the finding holding it.
func (d *Detector) Fingerprint(value []byte) string {
	m := hmac.New(sha256.New, d.key)
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil))
}

// candidate is a match that passed its rule's checks.
type candidate struct {
	rule       int
	start, end int
}

// Find returns the secrets in data, ordered by position, their spans not
// overlapping (where rules overlap, one finding covers the union of their
// spans and is named after the most specific rule).
func (d *Detector) Find(data []byte) []Finding {
	cands := d.candidates(data)
	return d.findings(data, cands)
}

func (d *Detector) candidates(data []byte) []candidate {
	if len(data) == 0 {
		return nil
	}
	sc, _ := d.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{windows: make([][]span, len(d.rules))}
	}
	defer d.scratch.Put(sc)
	sc.lower = asciiLower(sc.lower[:0], data)
	d.windows(sc, data)
	var cands []candidate
	for _, i := range sc.touched {
		cands = d.runRule(cands, i, data, sc.windows[i])
		sc.windows[i] = sc.windows[i][:0]
	}
	sc.touched = sc.touched[:0]
	return cands
}

// scratch is the per-call working space of Find, pooled.
type scratch struct {
	lower []byte
	// windows holds, for each rule, the spans of the input to run it on;
	// touched lists the rules with windows, in rule order.
	windows [][]span
	touched []int
}

// windows fills sc with the spans of data to run each rule on.
func (d *Detector) windows(sc *scratch, data []byte) {
	// Each rule runs only on windows around its keywords' occurrences:
	// a match of at most maxLen bytes that holds a keyword lies within
	// maxLen bytes of it.
	d.trie.Walk(sc.lower, func(end, n, pattern int64) bool {
		ks, ke := int(end-n+1), int(end+1)
		for _, i := range d.kwRules[pattern] {
			ws := sc.windows[i]
			if len(ws) == 0 {
				sc.touched = append(sc.touched, i)
			}
			if d.rules[i].core != nil {
				// An anchored rule runs at the keyword itself.
				sc.windows[i] = append(ws, span{ks, ke})
				continue
			}
			w := span{max(0, ke-d.rules[i].maxLen), min(len(data), ks+d.rules[i].maxLen)}
			if k := len(ws) - 1; k >= 0 && w.start <= ws[k].end {
				ws[k].end = max(ws[k].end, w.end)
			} else {
				sc.windows[i] = append(ws, w)
			}
		}
		return true
	})
	for _, i := range d.alwaysRun {
		sc.touched = append(sc.touched, i)
		sc.windows[i] = append(sc.windows[i], span{0, len(data)})
	}
	slices.Sort(sc.touched)
}

// runRule runs rule i on the windows ws of data (keyword occurrences for a
// template rule) and appends its candidates to cands.
func (d *Detector) runRule(cands []candidate, i int, data []byte, ws []span) []candidate {
	r := &d.rules[i]
	if r.core != nil {
		return d.atKeywords(cands, i, data, ws)
	}
	for _, w := range ws {
		w = snapToLines(data, w)
		for _, m := range r.re.get().FindAllSubmatchIndex(data[w.start:w.end], -1) {
			for k := range m {
				if m[k] >= 0 {
					m[k] += w.start
				}
			}
			if c, ok := d.check(r, data, m); ok {
				c.rule = i
				cands = append(cands, c)
			}
		}
	}
	return cands
}

// atKeywords runs an anchored rule's core at each keyword occurrence
// (kws, in order) and appends the candidates to cands. A template rule's
// match starts, as the full regex's would, at the identifier bytes before
// the keyword.
func (d *Detector) atKeywords(cands []candidate, i int, data []byte, kws []span) []candidate {
	r := &d.rules[i]
	done := 0 // end of the last match
	for _, kw := range kws {
		if kw.start < done {
			continue
		}
		if r.wordStart && kw.start > 0 && isWordByte(data[kw.start-1]) == isWordByte(data[kw.start]) {
			continue
		}
		m := r.core.get().FindSubmatchIndex(data[kw.start:min(len(data), kw.start+r.maxLen)])
		if m == nil {
			continue
		}
		for k := range m {
			if m[k] >= 0 {
				m[k] += kw.start
			}
		}
		start := kw.start
		for start > 0 && kw.start-start < r.lookback && isIdentByte(data[start-1]) {
			start--
		}
		m[0] = start
		done = m[1]
		if c, ok := d.check(r, data, m); ok {
			c.rule = i
			cands = append(cands, c)
		}
	}
	return cands
}

// isWordByte reports whether c is in \w.
func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// isIdentByte reports whether c is in [\w.-].
func isIdentByte(c byte) bool {
	return c == '_' || c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// span is a byte range [start, end).
type span struct{ start, end int }

// snapSlack is how far a window's edges move to reach a line boundary, so
// that ^, $ and \b at its edges mean what they mean in the whole input.
const snapSlack = 256

func snapToLines(data []byte, w span) span {
	if w.start > 0 {
		lo := max(0, w.start-snapSlack)
		if i := bytes.LastIndexByte(data[lo:w.start], '\n'); i >= 0 {
			w.start = lo + i + 1
		}
	}
	if w.end < len(data) {
		hi := min(len(data), w.end+snapSlack)
		if i := bytes.IndexByte(data[w.end:hi], '\n'); i >= 0 {
			w.end += i + 1
		}
	}
	return w
}

// check applies a rule's secret group, entropy floor and allowlists to a
// match (submatch indexes in data).
func (d *Detector) check(r *rule, data []byte, m []int) (candidate, bool) {
	s, e := secretSpan(r, m)
	if s < 0 || s == e {
		return candidate{}, false
	}
	secret := data[s:e]
	if r.entropy > 0 && shannonEntropy(secret) <= r.entropy {
		return candidate{}, false
	}
	if d.allowed(r, secret, data[m[0]:m[1]], lineOf(data, m[0], m[1])) {
		return candidate{}, false
	}
	return candidate{start: s, end: e}, true
}

// secretSpan picks the secret out of a match: the rule's secret group, or
// else its first non-empty group, or else the whole match (gitleaks'
// semantics).
func secretSpan(r *rule, m []int) (int, int) {
	if r.secretGroup > 0 {
		return m[2*r.secretGroup], m[2*r.secretGroup+1]
	}
	for g := 1; 2*g+1 < len(m); g++ {
		if m[2*g] >= 0 && m[2*g+1] > m[2*g] {
			return m[2*g], m[2*g+1]
		}
	}
	return m[0], m[1]
}

func (d *Detector) allowed(r *rule, secret, match, line []byte) bool {
	for i := range d.global {
		if d.global[i].allows(secret, match, line) {
			return true
		}
	}
	for i := range r.allow {
		if r.allow[i].allows(secret, match, line) {
			return true
		}
	}
	return false
}

// findings merges overlapping candidates and turns them into findings: one
// per cluster of overlapping spans, named after its most specific rule, with
// the highest severity of its rules.
func (d *Detector) findings(data []byte, cands []candidate) []Finding {
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return b.end - a.end
	})
	var out []Finding
	line, lineStart, pos := 1, 0, 0
	for i := 0; i < len(cands); {
		best, start, end := cands[i], cands[i].start, cands[i].end
		sev := d.rules[best.rule].Severity
		j := i + 1
		for ; j < len(cands) && cands[j].start < end; j++ {
			end = max(end, cands[j].end)
			if d.better(cands[j], best) {
				best = cands[j]
			}
			if d.rules[cands[j].rule].Severity == SeverityHigh {
				sev = SeverityHigh
			}
		}
		i = j
		for ; pos < start; pos++ {
			if data[pos] == '\n' {
				line++
				lineStart = pos + 1
			}
		}
		r := &d.rules[best.rule]
		out = append(out, Finding{
			RuleID:      r.ID,
			Description: r.Description,
			Severity:    sev,
			Start:       start,
			End:         end,
			Line:        line,
			Column:      start - lineStart + 1,
			Fingerprint: d.Fingerprint(data[start:end]),
		})
	}
	return out
}

// better reports whether a names an overlap better than b: a specific rule
// over a generic one, then the longer span, then the earlier rule.
func (d *Detector) better(a, b candidate) bool {
	ga, gb := d.rules[a.rule].generic, d.rules[b.rule].generic
	if ga != gb {
		return !ga
	}
	if la, lb := a.end-a.start, b.end-b.start; la != lb {
		return la > lb
	}
	return a.rule < b.rule
}

// Marker returns the text that replaces a secret found by a rule.
func Marker(ruleID string) string { return "[REDACTED:" + ruleID + "]" }

// maxRedactPasses bounds the passes of Redact: a pass may, in rare inputs,
// expose a secret that an allowlist hid while its line held another.
const maxRedactPasses = 4

// Redact returns data with every secret replaced by [Marker] of its rule,
// and the findings (spans in data). Other occurrences of a found value in
// data (an echo without the context that made it recognisable) are
// replaced too. Redacting the result again changes nothing.
func (d *Detector) Redact(data []byte) ([]byte, []Finding) {
	findings := d.Find(data)
	if len(findings) == 0 {
		return data, nil
	}
	out := data
	cur := findings
	for pass := 0; pass < maxRedactPasses && len(cur) > 0; pass++ {
		out = d.replace(out, cur)
		if pass > 0 {
			// Spans of a later pass are in redacted text; point them at
			// the whole input rather than at wrong bytes.
			for i := range cur {
				cur[i].Start, cur[i].End, cur[i].Line, cur[i].Column = 0, len(data), 1, 1
			}
			findings = append(findings, cur...)
		}
		cur = d.Find(out)
	}
	return out, findings
}

// replace replaces the findings' spans of data, then every other occurrence
// of their values.
func (d *Detector) replace(data []byte, fs []Finding) []byte {
	var b bytes.Buffer
	b.Grow(len(data))
	last := 0
	values := make([][]byte, 0, len(fs))
	for _, f := range fs {
		b.Write(data[last:f.Start])
		b.WriteString(Marker(f.RuleID))
		values = append(values, data[f.Start:f.End])
		last = f.End
	}
	b.Write(data[last:])
	out := b.Bytes()
	for i, v := range values {
		if len(v) >= minEchoLen && bytes.Contains(out, v) {
			out = bytes.ReplaceAll(out, v, []byte(Marker(fs[i].RuleID)))
		}
	}
	return out
}

// minEchoLen is the least length of a found value whose other occurrences
// are redacted too; shorter ones would hit ordinary text.
const minEchoLen = 8

// ErrNotJSON is returned by RedactJSON for input that is not one JSON value.
var ErrNotJSON = errors.New("not a JSON value")

func asciiLower(dst, src []byte) []byte {
	dst = slices.Grow(dst, len(src))[:len(src)]
	for i, c := range src {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}

// lineOf returns the line(s) of data holding [start, end).
func lineOf(data []byte, start, end int) []byte {
	s := bytes.LastIndexByte(data[:start], '\n') + 1
	e := bytes.IndexByte(data[end:], '\n')
	if e < 0 {
		e = len(data)
	} else {
		e += end
	}
	return data[s:e]
}

// shannonEntropy is the Shannon entropy of b in bits per byte, as gitleaks
// computes it for its entropy thresholds.
func shannonEntropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	n := float64(len(b))
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
