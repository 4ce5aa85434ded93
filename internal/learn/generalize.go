package learn

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/policy"
)

// Generalizer decides which path segments are values, to be matched by
// "*" in a learned rule instead of literally. The zero value generalizes
// nothing; [DefaultGeneralizer] is what `writ policy learn` uses.
type Generalizer struct {
	Numeric bool // digits only: 42, 2026
	UUID    bool // 8-4-4-4-12 hex digits
	Date    bool // YYYY-MM-DD
	// Hex is for strings of at least MinHex hex digits (commit ids,
	// digests, object ids); MinHex defaults to 16.
	Hex    bool
	MinHex int
}

// DefaultGeneralizer generalizes every class, hex from 16 digits.
func DefaultGeneralizer() Generalizer {
	return Generalizer{Numeric: true, UUID: true, Date: true, Hex: true, MinHex: 16}
}

// ParseClasses reads a comma-separated list of classes (numeric, uuid,
// date, hex; "all" or "none") as for --generalize.
func ParseClasses(s string, minHex int) (Generalizer, error) {
	g := Generalizer{MinHex: minHex}
	for c := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(c) {
		case "numeric":
			g.Numeric = true
		case "uuid":
			g.UUID = true
		case "date":
			g.Date = true
		case "hex":
			g.Hex = true
		case "all":
			g.Numeric, g.UUID, g.Date, g.Hex = true, true, true, true
		case "none", "":
		default:
			return g, fmt.Errorf("generalize %q: unknown class %q; use numeric, uuid, date, hex, all or none", s, c)
		}
	}
	if minHex < 1 {
		return g, fmt.Errorf("min-hex %d: must be at least 1", minHex)
	}
	return g, nil
}

// Variable reports whether seg is a value of one of g's classes.
func (g Generalizer) Variable(seg string) bool {
	switch {
	case seg == "":
		return false
	case g.Numeric && allOf(seg, isDigit):
		return true
	case g.UUID && isUUID(seg):
		return true
	case g.Date && isDate(seg):
		return true
	case g.Hex && len(seg) >= max(g.MinHex, 1) && allOf(seg, isHex):
		return true
	}
	return false
}

// Pattern returns the path pattern a learned rule allows for the path p:
// p in canonical form, each variable segment replaced by "*" and each
// other segment with its glob metacharacters escaped, so that it matches
// only itself. ok is false for a path that does not start with "/".
func (g Generalizer) Pattern(p string) (pattern string, ok bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	c := policy.CanonicalPath(p)
	if c == "/" {
		return c, true
	}
	segs := strings.Split(c[1:], "/")
	for i, s := range segs {
		if g.Variable(s) {
			segs[i] = "*"
		} else {
			segs[i] = escapeGlob(s)
		}
	}
	return "/" + strings.Join(segs, "/"), true
}

// escapeGlob escapes the characters policy globs treat specially.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ { // bytes: invalid UTF-8 stays as it is
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func allOf(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' || !allOf(s[:4]+s[5:7]+s[8:], isDigit) {
		return false
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// ParseSince reads a --since value: a duration before now ("30d", "12h",
// "90m", with d for days of 24 hours) or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return time.Time{}, fmt.Errorf("since %q: want a number of days such as 30d, a duration such as 12h or an RFC 3339 time", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("since %q: want a number of days such as 30d, a duration such as 12h or an RFC 3339 time", s)
		}
	}
	return now.Add(-d), nil
}

// collapse merges HTTP rules into patterns, by the one generalisation
// rule `--collapse N` states: rules of one service with the same methods
// whose path patterns have the same number of segments and differ only in
// one segment (not the first, and not already "*") are merged into one
// rule with "*" in that segment when more than n of them do. Each rule is
// merged at most once, at the first segment position (from the left)
// where such a group exists, so the result is never broader than one
// extra "*" per rule; "*" matches exactly one segment. It returns the
// rules and a line for the policy's header per merge.
func collapse(rules map[ruleKey]*ruleAcc, n int) (map[ruleKey]*ruleAcc, []string) {
	type group struct {
		service, methods, pattern string
	}
	keys := make([]ruleKey, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ruleKey) int {
		return strings.Compare(a.service+"\x00"+a.pattern, b.service+"\x00"+b.pattern)
	})
	methodsOf := func(r *ruleAcc) string { return strings.Join(sortedKeys(r.methods), ",") }
	done := map[ruleKey]bool{}
	out := map[ruleKey]*ruleAcc{}
	var notes []string
	maxSegs := 0
	for _, k := range keys {
		maxSegs = max(maxSegs, strings.Count(k.pattern, "/"))
	}
	for pos := 1; pos < maxSegs; pos++ {
		groups := map[group][]ruleKey{}
		var order []group
		for _, k := range keys {
			if done[k] {
				continue
			}
			segs := strings.Split(k.pattern, "/")[1:]
			if pos >= len(segs) || segs[pos] == "*" {
				continue
			}
			segs[pos] = "*"
			g := group{k.service, methodsOf(rules[k]), "/" + strings.Join(segs, "/")}
			if groups[g] == nil {
				order = append(order, g)
			}
			groups[g] = append(groups[g], k)
		}
		for _, g := range order {
			members := groups[g]
			if len(members) <= n {
				continue
			}
			m := &ruleAcc{methods: map[string]int64{}}
			for _, k := range members {
				r := rules[k]
				done[k] = true
				if m.ev.count == 0 || r.ev.first.Before(m.ev.first) {
					m.ev.first = r.ev.first
				}
				if r.ev.last.After(m.ev.last) {
					m.ev.last = r.ev.last
				}
				if m.ev.count == 0 {
					m.ev.example = r.ev.example
				}
				m.ev.count += r.ev.count
				for meth, c := range r.methods {
					m.methods[meth] += c
				}
				m.peak += r.peak // an upper bound of the merged busiest minute
			}
			k := ruleKey{g.service, g.pattern}
			if prev := out[k]; prev != nil { // another group (other methods) merged into the same pattern
				m.ev.count += prev.ev.count
				m.peak += prev.peak
				for meth, c := range prev.methods {
					m.methods[meth] += c
				}
				m.ev.first, m.ev.last = minTime(m.ev.first, prev.ev.first), maxTime(m.ev.last, prev.ev.last)
			}
			out[k] = m
			notes = append(notes, fmt.Sprintf("--collapse %d: %d paths of service %s (%s) merged into %s", n, len(members), g.service, g.methods, g.pattern))
		}
	}
	for _, k := range keys {
		if !done[k] {
			if prev := out[k]; prev != nil {
				// a merged pattern equals this rule's own: fold it in
				prev.ev.count += rules[k].ev.count
				for meth, c := range rules[k].methods {
					prev.methods[meth] += c
				}
				prev.peak += rules[k].peak
				continue
			}
			out[k] = rules[k]
		}
	}
	return out, notes
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
