package learn

import (
	"fmt"
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
