package secrets

import (
	"bytes"
	_ "embed"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// The rule files. gitleaks.toml is gitleaks v8.30.1's config/gitleaks.toml,
// unchanged (MIT licence, rules/LICENSE.gitleaks); writ.toml adds what it
// does not cover.
var (
	//go:embed rules/gitleaks.toml
	gitleaksRules []byte
	//go:embed rules/writ.toml
	writRules []byte
)

// GitleaksVersion is the gitleaks release whose default rule set is embedded.
const GitleaksVersion = "v8.30.1"

// Severity ranks a finding. Values are lower case words so that they can be
// written as they are in JSON and SARIF.
type Severity string

// The severities. A high finding is a credential that opens something on its
// own; a medium one is a likely credential recognised only by its context
// (a generic "password=" assignment) or one that is often short-lived (a JWT).
const (
	SeverityHigh   Severity = "high"
	SeverityMedium Severity = "medium"
	SeverityLow    Severity = "low"
)

// mediumRules are the rules whose findings are medium; every other rule's
// are high.
var mediumRules = map[string]bool{
	"generic-api-key":     true,
	"password-assignment": true,
	"jwt":                 true,
	"jwt-base64":          true,
}

// genericRules lose to a specific rule when both find the same bytes: the
// finding is named after the specific rule.
var genericRules = map[string]bool{
	"generic-api-key":      true,
	"password-assignment":  true,
	"authorization-bearer": true,
	"authorization-basic":  true,
	"curl-auth-header":     true,
	"curl-auth-user":       true,
}

// RuleInfo describes one rule of a [Detector].
type RuleInfo struct {
	ID          string
	Description string
	Severity    Severity
	// Source is "gitleaks" for a rule of gitleaks' default set and "writ"
	// for one of writ's own.
	Source string
}

// fileConfig is the gitleaks configuration format, as much of it as the
// embedded files use. Decoding is strict: a key not listed here is an error,
// so that a newer rule file cannot silently lose a feature.
type fileConfig struct {
	Title       string          `toml:"title"`
	Description string          `toml:"description"`
	MinVersion  string          `toml:"minVersion"`
	Allowlist   *fileAllowlist  `toml:"allowlist"`
	Allowlists  []fileAllowlist `toml:"allowlists"`
	Rules       []fileRule      `toml:"rules"`
}

type fileRule struct {
	ID          string          `toml:"id"`
	Description string          `toml:"description"`
	Regex       string          `toml:"regex"`
	Path        string          `toml:"path"`
	SecretGroup int             `toml:"secretGroup"`
	Entropy     float64         `toml:"entropy"`
	Keywords    []string        `toml:"keywords"`
	Tags        []string        `toml:"tags"`
	Allowlists  []fileAllowlist `toml:"allowlists"`
}

type fileAllowlist struct {
	Description string   `toml:"description"`
	Condition   string   `toml:"condition"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	StopWords   []string `toml:"stopwords"`
	Paths       []string `toml:"paths"`
	Commits     []string `toml:"commits"`
}

// rule is a compiled rule.
type rule struct {
	RuleInfo
	// re is the rule's regex, unused when core is set.
	re          *lazyRegexp
	secretGroup int
	entropy     float64
	keywords    []string // lower case
	allow       []allowlist
	generic     bool
	// maxLen bounds the length in bytes of a match (see maxMatchLen).
	maxLen int
	// core is set for a rule whose every match starts at one of its
	// keywords: gitleaks' template "an identifier holding a keyword, an
	// assignment, a value" (the regex without its leading [\w.-]{0,50}?,
	// with lookback 50) and a regex that starts with a keyword (ghp_,
	// -----BEGIN). It is the regex anchored, run at each occurrence of a
	// keyword instead of over the input.
	core *lazyRegexp
	// lookback is how many identifier bytes before the keyword the match
	// takes (template rules).
	lookback int
	// wordStart is set when the regex starts with \b, which core cannot
	// check without the byte before the keyword.
	wordStart bool
}

// anchorable reports whether every match of re starts with one of
// keywords (lower case), and whether re starts with \b.
func anchorable(re *syntax.Regexp, keywords []string) (ok, wordStart bool) {
	for re.Op == syntax.OpConcat && len(re.Sub) > 0 {
		first := re.Sub[0]
		if first.Op == syntax.OpWordBoundary {
			wordStart = true
			re = &syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[1:]}
			continue
		}
		if first.Op == syntax.OpBeginText || first.Op == syntax.OpEmptyMatch {
			return false, false
		}
		re = first
	}
	prefixes, ok := literalPrefixes(re)
	if !ok || len(prefixes) == 0 {
		return false, false
	}
	for _, p := range prefixes {
		found := false
		for _, k := range keywords {
			if strings.HasPrefix(p, k) {
				found = true
				break
			}
		}
		if !found {
			return false, false
		}
	}
	return true, wordStart
}

// literalPrefixes returns lower-case literals one of which starts every
// match of re, if re begins with a literal or an alternation of them.
func literalPrefixes(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{strings.ToLower(string(re.Rune))}, true
	case syntax.OpCapture:
		return literalPrefixes(re.Sub[0])
	case syntax.OpConcat:
		if len(re.Sub) == 0 || re.Sub[0].Op == syntax.OpWordBoundary {
			return nil, false
		}
		return literalPrefixes(re.Sub[0])
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			ps, ok := literalPrefixes(sub)
			if !ok {
				return nil, false
			}
			all = append(all, ps...)
		}
		return all, true
	}
	return nil, false
}

// templatePrefix starts the regex of gitleaks' keyword-assignment rules.
const templatePrefix = `(?i)[\w.-]{0,50}?`

// templateLookback is the most identifier bytes templatePrefix takes
// before the keyword.
const templateLookback = 50

// repeatLen is the length assumed for an unbounded repeat (x*, x+, x{n,})
// when bounding a match: a private key block, a JWT, a long value.
// maxLenCap caps a match's bound.
const (
	repeatLen = 8 << 10
	maxLenCap = 64 << 10
)

// maxMatchLen returns the greatest length in bytes of a match of re,
// taking repeatLen for each unbounded repeat, at most maxLenCap.
func maxMatchLen(re *syntax.Regexp) int {
	return min(maxLenOf(re), maxLenCap)
}

// maxLenOf returns the greatest length in bytes of a match.
func maxLenOf(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += runeBytes(r, re.Flags&syntax.FoldCase != 0)
		}
		return n
	case syntax.OpCharClass:
		hi := rune(0)
		if len(re.Rune) > 0 {
			hi = re.Rune[len(re.Rune)-1]
		}
		return runeBytes(hi, false)
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax
	case syntax.OpCapture, syntax.OpQuest:
		return maxLenOf(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		return min(repeatLen, maxLenCap)
	case syntax.OpRepeat:
		n := maxLenOf(re.Sub[0])
		if re.Max < 0 {
			return min(maxLenCap, re.Min*n+repeatLen)
		}
		return min(maxLenCap, n*re.Max)
	case syntax.OpConcat:
		t := 0
		for _, sub := range re.Sub {
			t = min(maxLenCap, t+maxLenOf(sub))
		}
		return t
	case syntax.OpAlternate:
		t := 0
		for _, sub := range re.Sub {
			t = max(t, maxLenOf(sub))
		}
		return t
	}
	return 0 // empty-width assertions, OpEmptyMatch, OpNoMatch
}

// runeBytes is the UTF-8 length of r, or of the longest of its case
// variants (the Kelvin sign K is three bytes).
func runeBytes(r rune, fold bool) int {
	n := utf8.RuneLen(r)
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			n = max(n, utf8.RuneLen(f))
		}
	}
	return max(n, 1)
}

// Allowlist targets.
const (
	targetSecret = iota
	targetMatch
	targetLine
)

type allowlist struct {
	and       bool
	target    int
	regexes   []*regexp.Regexp
	stopwords []string // lower case
	// needsPath is set for an AND allowlist that names paths or commits:
	// bytes have neither, so it never applies.
	needsPath bool
	// paths are the path regexes of an OR allowlist: a file whose path
	// matches one is not scanned ([Detector.PathAllowed]).
	paths []*regexp.Regexp
}

// writAllowlist applies to every rule: values that are redaction markers
// (so that redacting twice changes nothing) and documentation examples such
// as AWS's AKIAIOSFODNN7EXAMPLE.
var writAllowlist = fileAllowlist{
	Regexes: []string{`EXAMPLE`, `\[REDACTED:`},
}

// loadRules parses and compiles the embedded rule files. Rules that need a
// file path (gitleaks' path rules, such as a .p12 file or a password in a
// .tf file) are left out: a detector sees bytes, not files.
func loadRules(disabled map[string]bool) ([]rule, []allowlist, error) {
	var global []allowlist
	var rules []rule
	for _, src := range []struct {
		name, source string
		data         []byte
	}{
		{"rules/gitleaks.toml", "gitleaks", gitleaksRules},
		{"rules/writ.toml", "writ", writRules},
	} {
		var fc fileConfig
		md, err := toml.NewDecoder(bytes.NewReader(src.data)).Decode(&fc)
		if err != nil {
			return nil, nil, fmt.Errorf("parse %s: %w", src.name, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return nil, nil, fmt.Errorf("parse %s: unsupported key %s", src.name, und[0])
		}
		gl := fc.Allowlists
		if fc.Allowlist != nil {
			gl = append(gl, *fc.Allowlist)
		}
		for _, fa := range gl {
			a, err := compileAllowlist(fa)
			if err != nil {
				return nil, nil, fmt.Errorf("compile %s global allowlist: %w", src.name, err)
			}
			global = append(global, a)
		}
		for _, fr := range fc.Rules {
			if fr.Path != "" || fr.Regex == "" || disabled[fr.ID] {
				continue
			}
			r, err := compileRule(fr, src.source)
			if err != nil {
				return nil, nil, fmt.Errorf("compile %s rule %s: %w", src.name, fr.ID, err)
			}
			rules = append(rules, r)
		}
	}
	a, err := compileAllowlist(writAllowlist)
	if err != nil {
		return nil, nil, err
	}
	global = append(global, a)
	return rules, global, nil
}

func compileRule(fr fileRule, source string) (rule, error) {
	if strings.TrimSpace(fr.ID) == "" {
		return rule{}, fmt.Errorf("rule without id")
	}
	tree, err := syntax.Parse(fr.Regex, syntax.Perl)
	if err != nil {
		return rule{}, err
	}
	if fr.SecretGroup > tree.MaxCap() {
		return rule{}, fmt.Errorf("secretGroup %d: the regex has %d groups", fr.SecretGroup, tree.MaxCap())
	}
	sev := SeverityHigh
	if mediumRules[fr.ID] {
		sev = SeverityMedium
	}
	r := rule{
		RuleInfo: RuleInfo{
			ID:          fr.ID,
			Description: fr.Description,
			Severity:    sev,
			Source:      source,
		},
		secretGroup: fr.SecretGroup,
		entropy:     fr.Entropy,
		generic:     genericRules[fr.ID],
		maxLen:      maxMatchLen(tree),
	}
	for _, k := range fr.Keywords {
		r.keywords = append(r.keywords, strings.ToLower(k))
	}
	slices.Sort(r.keywords)
	r.keywords = slices.Compact(r.keywords)
	if rest, ok := strings.CutPrefix(fr.Regex, templatePrefix); ok && len(r.keywords) > 0 {
		if r.core, err = newLazyRegexp(`(?i)^` + rest); err != nil {
			return rule{}, err
		}
		r.lookback = templateLookback
	} else if ok, ws := anchorable(tree, r.keywords); ok {
		if r.core, err = newLazyRegexp(`^(?:` + fr.Regex + `)`); err != nil {
			return rule{}, err
		}
		r.wordStart = ws
	} else if r.re, err = newLazyRegexp(fr.Regex); err != nil {
		return rule{}, err
	}
	for _, fa := range fr.Allowlists {
		a, err := compileAllowlist(fa)
		if err != nil {
			return rule{}, err
		}
		r.allow = append(r.allow, a)
	}
	return r, nil
}

// lazyRegexp is a rule's regular expression, checked when the rules are
// loaded and compiled when the rule first runs. Most rules never run in a
// given process (their keywords never occur in what it scans), and the
// compiled programs of every rule are several MiB of heap held for the
// life of the process.
type lazyRegexp struct {
	src  string
	once sync.Once
	re   *regexp.Regexp
}

// newLazyRegexp checks src's syntax and returns it uncompiled. What the
// check cannot see (a program over regexp's size limit) is caught by
// TestEveryRuleCompiles, which compiles every embedded rule.
func newLazyRegexp(src string) (*lazyRegexp, error) {
	if _, err := syntax.Parse(src, syntax.Perl); err != nil {
		return nil, err
	}
	return &lazyRegexp{src: src}, nil
}

// get returns the compiled regular expression.
func (l *lazyRegexp) get() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.src) })
	return l.re
}

func compileAllowlist(fa fileAllowlist) (allowlist, error) {
	var a allowlist
	switch strings.ToUpper(fa.Condition) {
	case "", "OR":
	case "AND", "&&":
		a.and = true
	default:
		return a, fmt.Errorf("unknown allowlist condition %q", fa.Condition)
	}
	switch fa.RegexTarget {
	case "", "secret":
		a.target = targetSecret
	case "match":
		a.target = targetMatch
	case "line":
		a.target = targetLine
	default:
		return a, fmt.Errorf("unknown allowlist regexTarget %q", fa.RegexTarget)
	}
	a.needsPath = a.and && (len(fa.Paths) > 0 || len(fa.Commits) > 0)
	if !a.and {
		for _, s := range fa.Paths {
			re, err := regexp.Compile(s)
			if err != nil {
				return a, fmt.Errorf("allowlist path: %w", err)
			}
			a.paths = append(a.paths, re)
		}
	}
	for _, s := range fa.Regexes {
		re, err := regexp.Compile(s)
		if err != nil {
			return a, fmt.Errorf("allowlist regex: %w", err)
		}
		a.regexes = append(a.regexes, re)
	}
	for _, w := range fa.StopWords {
		a.stopwords = append(a.stopwords, strings.ToLower(w))
	}
	return a, nil
}

// allows reports whether the allowlist lets a candidate through as not a
// secret. secret, match and line are the candidate's value, the whole match
// of its rule and the line it is on.
func (a *allowlist) allows(secret, match, line []byte) bool {
	if a.needsPath {
		return false
	}
	target := secret
	switch a.target {
	case targetMatch:
		target = match
	case targetLine:
		target = line
	}
	regexOK := false
	for _, re := range a.regexes {
		if re.Match(target) {
			regexOK = true
			break
		}
	}
	stopOK := false
	if len(a.stopwords) > 0 {
		lower := bytes.ToLower(secret)
		for _, w := range a.stopwords {
			if bytes.Contains(lower, []byte(w)) {
				stopOK = true
				break
			}
		}
	}
	if a.and {
		if len(a.regexes) > 0 && !regexOK {
			return false
		}
		if len(a.stopwords) > 0 && !stopOK {
			return false
		}
		return len(a.regexes) > 0 || len(a.stopwords) > 0
	}
	return regexOK || stopOK
}
