package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// maxDoubleStars bounds "**" segments in one glob; matching cost grows with
// each one.
const maxDoubleStars = 4

// Glob is a compiled pattern over '/'-separated names such as HTTP paths,
// MCP resource URIs, tool names and service names. Within a segment, '*'
// matches any run of characters, '?' one character and '[...]' a class (as
// in [path.Match]); a segment that is exactly "**" matches zero or more
// whole segments. Everything else matches itself.
type Glob struct {
	src     string
	segs    []globSeg
	literal bool // no metacharacter: match by string equality
	all     bool // "**" alone: matches every name
}

type globSeg struct {
	pat     string
	literal bool
	dstar   bool
}

var errEmptyGlob = errors.New("empty pattern")

// ParseGlob compiles s.
func ParseGlob(s string) (Glob, error) {
	if s == "" {
		return Glob{}, errEmptyGlob
	}
	if len(s) > 1024 {
		return Glob{}, fmt.Errorf("pattern is %d bytes; at most 1024 are allowed", len(s))
	}
	g := Glob{src: s, literal: !strings.ContainsAny(s, `*?[\`)}
	if g.literal {
		return g, nil
	}
	g.all = s == "**"
	stars := 0
	for seg := range strings.SplitSeq(s, "/") {
		switch {
		case seg == "**":
			stars++
			if stars > maxDoubleStars {
				return Glob{}, fmt.Errorf("pattern %q has more than %d '**' segments", s, maxDoubleStars)
			}
			g.segs = append(g.segs, globSeg{pat: seg, dstar: true})
		case strings.Contains(seg, "**"):
			return Glob{}, fmt.Errorf("pattern %q: '**' must be a whole segment between slashes, as in /docs/**", s)
		default:
			if _, err := path.Match(seg, ""); err != nil {
				return Glob{}, fmt.Errorf("pattern %q: segment %q is malformed (unclosed '[' or trailing '\\')", s, seg)
			}
			g.segs = append(g.segs, globSeg{pat: seg, literal: !strings.ContainsAny(seg, `*?[\`)})
		}
	}
	return g, nil
}

// String returns the pattern as written.
func (g Glob) String() string { return g.src }

// IsLiteral reports whether g has no wildcard.
func (g Glob) IsLiteral() bool { return g.literal }

// Match reports whether name matches g. It does not allocate.
func (g Glob) Match(name string) bool {
	if g.literal {
		return name == g.src
	}
	if g.all {
		return true
	}
	// Segment-wise wildcard matching with one backtrack point at the last
	// "**" seen: linear in practice, O(len(segs)*len(name)) at worst.
	pi, si := 0, 0
	starP, starS := -1, 0
	for si <= len(name) {
		seg, next := segmentAt(name, si)
		if pi < len(g.segs) && g.segs[pi].dstar {
			starP, starS = pi, si
			pi++
			continue
		}
		if pi < len(g.segs) && g.segs[pi].match(seg) {
			pi++
			si = next
			continue
		}
		if starP >= 0 {
			// Let the last "**" swallow one more segment.
			_, starS = segmentAt(name, starS)
			pi, si = starP+1, starS
			continue
		}
		return false
	}
	for pi < len(g.segs) && g.segs[pi].dstar {
		pi++
	}
	return pi == len(g.segs)
}

func (s globSeg) match(seg string) bool {
	if s.literal {
		return s.pat == seg
	}
	ok, _ := path.Match(s.pat, seg)
	return ok
}

// segmentAt returns the segment of name starting at byte i and the start of
// the next one; after the last segment, next is len(name)+1.
func segmentAt(name string, i int) (seg string, next int) {
	if i > len(name) {
		return "", i
	}
	j := strings.IndexByte(name[i:], '/')
	if j < 0 {
		return name[i:], len(name) + 1
	}
	return name[i : i+j], i + j + 1
}

// covers reports, conservatively, whether every name r matches is also
// matched by g: false means "not known to cover".
func (g Glob) covers(r Glob) bool {
	switch {
	case g.src == r.src:
		return true
	case g.all:
		return true
	case g.src == "*":
		return !strings.Contains(r.src, "/")
	case r.literal:
		return g.Match(r.src)
	}
	// g = P/** covers anything written under P/.
	if prefix, ok := strings.CutSuffix(g.src, "/**"); ok && !strings.ContainsAny(prefix, `*?[\`) {
		return strings.HasPrefix(r.src, prefix+"/") || r.src == prefix
	}
	return false
}

// globList is a set of globs; a nil list means "any".
type globList []Glob

func (l globList) match(name string) bool {
	for _, g := range l {
		if g.Match(name) {
			return true
		}
	}
	return false
}

// coversAll reports whether every glob of r is covered by one of l.
func (l globList) coversAll(r globList) bool {
	for _, rg := range r {
		ok := false
		for _, g := range l {
			if g.covers(rg) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (l globList) String() string {
	s := make([]string, len(l))
	for i, g := range l {
		s[i] = g.src
	}
	return "[" + strings.Join(s, ", ") + "]"
}
