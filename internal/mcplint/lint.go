package mcplint

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	ahocorasick "github.com/BobuSumisu/aho-corasick"

	"github.com/writ-dev/writ/internal/secrets"
)

// Options configures a [Linter].
type Options struct {
	// Secrets finds embedded credentials. Nil: New builds a detector with
	// a random fingerprint key (fingerprints are then comparable within
	// one Linter only). A gateway passes its own, shared detector.
	Secrets *secrets.Detector
}

// Linter lints tool descriptors. Build one with [New] and reuse it; it is
// safe for concurrent use.
type Linter struct {
	rules []textRule
	// patterns are the rules' alternatives, each gated by its own
	// keywords: a literal every match holds, else its rule's keywords.
	patterns []pattern
	trie     *ahocorasick.Trie
	kwPats   [][]int
	secrets  *secrets.Detector
}

// pattern is one alternative of a text rule's regular expression.
type pattern struct {
	rule int
	re   *regexp.Regexp
}

// New builds a linter.
func New(opts Options) (*Linter, error) {
	l := &Linter{rules: textRules(), secrets: opts.Secrets}
	if l.secrets == nil {
		d, err := secrets.New(secrets.Config{FingerprintKey: []byte(rand.Text())})
		if err != nil {
			return nil, fmt.Errorf("new mcp linter: %w", err)
		}
		l.secrets = d
	}
	index := map[string]int{}
	var keywords []string
	for i, r := range l.rules {
		for _, alt := range alternatives(r.re.String()) {
			p := len(l.patterns)
			l.patterns = append(l.patterns, pattern{rule: i, re: regexp.MustCompile(alt.src)})
			kws := r.keywords
			if alt.literals != nil {
				kws = alt.literals
			}
			for _, k := range kws {
				j, ok := index[k]
				if !ok {
					j = len(keywords)
					index[k] = j
					keywords = append(keywords, k)
					l.kwPats = append(l.kwPats, nil)
				}
				l.kwPats[j] = append(l.kwPats[j], p)
			}
		}
	}
	l.trie = ahocorasick.NewTrieBuilder().AddStrings(keywords).Build()
	return l, nil
}

// Finding is one problem in one tool. It never holds a secret: the evidence
// of a secret finding is its redaction marker.
type Finding struct {
	RuleID   string   `json:"rule_id"`
	Family   string   `json:"family"`
	Severity Severity `json:"severity"`
	Tool     string   `json:"tool"`
	// Field is the RFC 6901 pointer of the string inside the tool
	// ("/description", "/inputSchema/properties/notes/description"); for a
	// parameter's name, the pointer of the parameter.
	Field string `json:"field"`
	// Start and End are the byte span of the evidence in the field's text.
	Start int `json:"start"`
	End   int `json:"end"`
	// Evidence is the text found, with invisible and control characters
	// written as \u escapes and secrets redacted, cut at 160 bytes.
	Evidence string `json:"evidence"`
	Message  string `json:"message"`

	toolIndex int
	toolLine  int
}

// Report is the result of a lint.
type Report struct {
	Tools    int       `json:"tools"`
	Findings []Finding `json:"findings"`
}

// Count returns the number of findings of a severity.
func (r Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// HasHigh reports whether any finding is high: the lint fails.
func (r Report) HasHigh() bool { return r.Count(High) > 0 }

// Flagged returns the names of the tools with a high finding.
func (r Report) Flagged() map[string]bool {
	out := map[string]bool{}
	for _, f := range r.Findings {
		if f.Severity == High {
			out[f.Tool] = true
		}
	}
	return out
}

// Lint lints tools.
func (l *Linter) Lint(tools []Tool) Report {
	rep := Report{Tools: len(tools)}
	for i := range tools {
		rep.Findings = append(rep.Findings, l.lintTool(&tools[i], i)...)
	}
	sort.SliceStable(rep.Findings, func(a, b int) bool {
		fa, fb := rep.Findings[a], rep.Findings[b]
		if fa.toolIndex != fb.toolIndex {
			return fa.toolIndex < fb.toolIndex
		}
		if fa.Field != fb.Field {
			return fa.Field < fb.Field
		}
		return fa.Start < fb.Start
	})
	return rep
}

// LintTool lints one tool.
func (l *Linter) LintTool(t *Tool) []Finding { return l.lintTool(t, 0) }

func (l *Linter) lintTool(t *Tool, index int) []Finding {
	texts := t.texts()
	var out []Finding
	enabled := make([]bool, len(l.patterns))
	var lower []byte
	add := func(r Rule, tx text, start, end int, evidence string) {
		out = append(out, Finding{
			RuleID: r.ID, Family: r.Family, Severity: r.Severity, Tool: t.Name,
			Field: tx.pointer, Start: start, End: end, Evidence: evidence,
			Message: r.Description, toolIndex: index, toolLine: t.line,
		})
	}
	for _, tx := range texts {
		if tx.prop {
			if sev, ok := sensitiveParams[paramKey(tx.value)]; ok {
				r := ruleSensitiveParam
				r.Severity = sev
				add(r, tx, 0, len(tx.value), l.evidence(tx.value))
			}
			out = l.invisible(out, t, tx, index)
			continue
		}
		lower = l.enable(enabled, lower, tx.value)
		for i := range l.patterns {
			p := &l.patterns[i]
			r := &l.rules[p.rule]
			if !enabled[i] || (r.only != nil && !r.only(tx)) {
				continue
			}
			for _, m := range p.re.FindAllStringIndex(tx.value, -1) {
				add(r.Rule, tx, m[0], m[1], l.evidence(tx.value[m[0]:m[1]]))
			}
		}
		out = l.invisible(out, t, tx, index)
		for _, f := range l.secrets.Find([]byte(tx.value)) {
			r := ruleSecret
			r.Severity = Severity(f.Severity)
			r.Description = fmt.Sprintf("%s (secret rule %s, fingerprint %s)", f.Description, f.RuleID, f.Fingerprint[:16])
			add(r, tx, f.Start, f.End, secrets.Marker(f.RuleID))
		}
	}
	return out
}

// enable sets on[i] for the patterns that have a keyword in s (and
// clears the others), using buf for its lower-case copy.
func (l *Linter) enable(on []bool, buf []byte, s string) []byte {
	clear(on)
	buf = buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	l.trie.Walk(buf, func(_, _, p int64) bool {
		for _, i := range l.kwPats[p] {
			on[i] = true
		}
		return true
	})
	return buf
}

// minPadding is the shortest run of blank characters reported as padding.
const minPadding = 40

// invisible appends findings for invisible characters, control characters
// and padding in tx.
func (l *Linter) invisible(out []Finding, t *Tool, tx text, index int) []Finding {
	s := tx.value
	add := func(r Rule, start, end int, extra string) {
		ev := escape(s[start:end])
		if extra != "" {
			ev += " (" + extra + ")"
		}
		out = append(out, Finding{
			RuleID: r.ID, Family: r.Family, Severity: r.Severity, Tool: t.Name,
			Field: tx.pointer, Start: start, End: end, Evidence: cut(ev), Message: r.Description,
			toolIndex: index, toolLine: t.line,
		})
	}
	for i := 0; i < len(s); {
		c, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case isHidden(c):
			j := i
			var tagText strings.Builder
			for j < len(s) {
				d, m := utf8.DecodeRuneInString(s[j:])
				if !isHidden(d) {
					break
				}
				if d >= 0xE0020 && d <= 0xE007E {
					tagText.WriteRune(d - 0xE0000)
				}
				j += m
			}
			extra := ""
			if tagText.Len() > 0 {
				extra = "tag characters spell " + fmt.Sprintf("%q", tagText.String())
			}
			add(ruleInvisible, i, j, extra)
			i = j
		case isControl(c):
			j := i
			for j < len(s) {
				d, m := utf8.DecodeRuneInString(s[j:])
				if !isControl(d) {
					break
				}
				j += m
				if d == 0x1b && j < len(s) && s[j] == '[' {
					// A CSI sequence: ESC [ parameters final-byte.
					j++
					for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';' || s[j] == '?') {
						j++
					}
					if j < len(s) && s[j] >= 0x40 && s[j] <= 0x7e {
						j++
					}
				}
			}
			add(ruleControl, i, j, "")
			i = j
		case unicode.IsSpace(c) || c == 0x3164 || c == 0x2800:
			j, count := i, 0
			for j < len(s) {
				d, m := utf8.DecodeRuneInString(s[j:])
				if !(unicode.IsSpace(d) || d == 0x3164 || d == 0x2800) {
					break
				}
				count++
				j += m
			}
			if count >= minPadding {
				add(rulePadding, i, j, fmt.Sprintf("%d blank characters", count))
			}
			i = j
		default:
			i += n
		}
	}
	return out
}

// isHidden reports whether c is a character a reader does not see and a
// model does read: zero-width characters, bidirectional controls, tag
// characters, variation selectors of the supplement (used to smuggle
// bytes), fillers.
func isHidden(c rune) bool {
	switch {
	case c >= 0x200B && c <= 0x200F, c >= 0x202A && c <= 0x202E, c >= 0x2060 && c <= 0x2064,
		c >= 0x2066 && c <= 0x2069, c == 0xFEFF, c == 0x180E, c == 0x061C, c == 0x00AD,
		c == 0x115F, c == 0x1160, c == 0x034F, c == 0x17B4, c == 0x17B5,
		c >= 0xE0000 && c <= 0xE007F, c >= 0xE0100 && c <= 0xE01EF, c >= 0xFFF9 && c <= 0xFFFB:
		return true
	}
	return false
}

// isControl reports whether c is a control character other than tab,
// line feed and carriage return (ESC starts ANSI sequences).
func isControl(c rune) bool {
	return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || (c >= 0x7F && c <= 0x9F)
}

// evidence escapes and redacts matched text for output.
func (l *Linter) evidence(s string) string {
	red, _ := l.secrets.Redact([]byte(s))
	return cut(escape(string(red)))
}

// escape writes invisible, control and non-printable characters as \u
// escapes, and line breaks as \n.
func escape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == utf8.RuneError || isHidden(c) || isControl(c) || !unicode.IsPrint(c) && c != ' ':
			if c > 0xFFFF {
				fmt.Fprintf(&b, `\U%08X`, c)
			} else {
				fmt.Fprintf(&b, `\u%04X`, c)
			}
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// maxEvidence is the longest evidence, in bytes.
const maxEvidence = 160

func cut(s string) string {
	if len(s) <= maxEvidence {
		return s
	}
	i := maxEvidence
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// alternative is one top-level alternative of a regular expression, with
// literals (lower case, ASCII) one of which every match of it holds, if
// they are selective enough to gate it.
type alternative struct {
	src      string
	literals []string
}

// alternatives splits a regular expression at its top-level alternation,
// so that each part can be gated by its own literals.
func alternatives(src string) []alternative {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return []alternative{{src: src}}
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpAlternate {
		subs = re.Sub
	}
	var out []alternative
	for _, sub := range subs {
		a := alternative{src: sub.String()}
		if lits, ok := literalSet(sub); ok && selective(lits) {
			a.literals = lits
		}
		if len(subs) == 1 {
			a.src = src
		}
		out = append(out, a)
	}
	return out
}

// literalSet returns lower-case literals one of which every match of re
// holds.
func literalSet(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		s := strings.ToLower(string(re.Rune))
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return nil, false
			}
		}
		return []string{s}, true
	case syntax.OpCapture:
		return literalSet(re.Sub[0])
	case syntax.OpRepeat, syntax.OpPlus:
		if re.Op == syntax.OpRepeat && re.Min < 1 {
			return nil, false
		}
		return literalSet(re.Sub[0])
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			lits, ok := literalSet(sub)
			if !ok {
				return nil, false
			}
			all = append(all, lits...)
		}
		return all, true
	case syntax.OpConcat:
		// Every child's match is part of the concatenation's: take the
		// child whose literals gate best.
		var best []string
		for _, sub := range re.Sub {
			if lits, ok := literalSet(sub); ok && better(lits, best) {
				best = lits
			}
		}
		return best, best != nil
	}
	return nil, false
}

// selective reports whether literals are worth gating on: none shorter
// than 3 bytes or too common.
func selective(lits []string) bool {
	if len(lits) == 0 {
		return false
	}
	for _, l := range lits {
		switch t := strings.TrimSpace(l); t {
		case "the", "this", "that", "your", "you", "and", "for", "with", "any", "all", "not", "are":
			return false
		default:
			if len(t) < 3 {
				return false
			}
		}
	}
	return true
}

// better reports whether literal set a gates better than b: selective,
// then a longer shortest literal, then fewer literals.
func better(a, b []string) bool {
	if b == nil {
		return true
	}
	sa, sb := selective(a), selective(b)
	if sa != sb {
		return sa
	}
	ma, mb := minLen(a), minLen(b)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func minLen(lits []string) int {
	m := -1
	for _, l := range lits {
		if n := len(strings.TrimSpace(l)); m < 0 || n < m {
			m = n
		}
	}
	return m
}
