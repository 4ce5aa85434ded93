package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

type subjectKind uint8

const (
	subjSPIFFE subjectKind = iota + 1
	subjLabels
	subjUser
	subjGroup
)

// subjectPattern is one parsed entry of a policy's subjects.
type subjectPattern struct {
	kind   subjectKind
	src    string
	td     string    // SPIFFE: trust domain
	segs   []string  // SPIFFE: path segments, each literal, "*" or "**" (last only)
	labels []labelKV // label selector: all must match
	name   string    // user or group name; "*" for any user
}

type labelKV struct{ k, v string }

const subjectHelp = "use a SPIFFE ID pattern (spiffe://writ.local/agent/*), user:NAME, group:NAME or label:KEY=VALUE[,KEY=VALUE]"

// parseSubject parses one subject string.
func parseSubject(s string) (subjectPattern, error) {
	p := subjectPattern{src: s}
	switch {
	case strings.HasPrefix(s, "spiffe://"):
		return parseSPIFFEPattern(s)
	case strings.HasPrefix(s, "user:"):
		p.kind, p.name = subjUser, s[len("user:"):]
		if p.name == "" {
			return p, fmt.Errorf("%q names no user; write user:alice, or user:* for every user", s)
		}
		if p.name != "*" && strings.ContainsAny(p.name, "*?[") {
			return p, fmt.Errorf("%q: user names match exactly; only user:* (every user) is a pattern", s)
		}
	case strings.HasPrefix(s, "group:"):
		p.kind, p.name = subjGroup, s[len("group:"):]
		if p.name == "" || strings.ContainsAny(p.name, "*?[") {
			return p, fmt.Errorf("%q: write group:NAME with an exact group name", s)
		}
	case strings.HasPrefix(s, "label:"):
		p.kind = subjLabels
		body := s[len("label:"):]
		if body == "" {
			return p, fmt.Errorf("%q names no label; write label:KEY=VALUE", s)
		}
		for pair := range strings.SplitSeq(body, ",") {
			k, v, ok := strings.Cut(pair, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" || v == "" {
				return p, fmt.Errorf("%q: %q is not KEY=VALUE", s, pair)
			}
			p.labels = append(p.labels, labelKV{k, v})
		}
		slices.SortFunc(p.labels, func(a, b labelKV) int { return strings.Compare(a.k, b.k) })
		for i := 1; i < len(p.labels); i++ {
			if p.labels[i].k == p.labels[i-1].k {
				return p, fmt.Errorf("%q names label %q twice; an identity has one value per label", s, p.labels[i].k)
			}
		}
	default:
		return p, fmt.Errorf("%q is not a subject: %s", s, subjectHelp)
	}
	return p, nil
}

func parseSPIFFEPattern(s string) (subjectPattern, error) {
	p := subjectPattern{kind: subjSPIFFE, src: s}
	rest := s[len("spiffe://"):]
	td, path, _ := strings.Cut(rest, "/")
	if _, err := spiffeid.TrustDomainFromString(td); err != nil || td == "" || strings.ContainsAny(td, "*?") {
		return p, fmt.Errorf("%q: trust domain %q is not valid (lower-case letters, digits, '.', '-', '_'; no wildcards)", s, td)
	}
	p.td = td
	if path == "" {
		return p, fmt.Errorf("%q names no workload path; use spiffe://%s/** for every workload in the trust domain", s, td)
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		switch {
		case seg == "*":
		case seg == "**":
			if i != len(segs)-1 {
				return p, fmt.Errorf("%q: '**' matches any suffix, so it must be the last segment", s)
			}
		case strings.ContainsAny(seg, "*?["):
			return p, fmt.Errorf("%q: segment %q: '*' must be a whole segment (one segment) and '**' the last one (any suffix)", s, seg)
		default:
			if err := spiffeid.ValidatePathSegment(seg); err != nil {
				return p, fmt.Errorf("%q: segment %q is not valid in a SPIFFE ID: %v", s, seg, err)
			}
		}
	}
	p.segs = segs
	return p, nil
}

// matchID reports whether the SPIFFE pattern p matches the ID with trust
// domain td and path (leading slash, no trailing one).
func (p subjectPattern) matchID(td, path string) bool {
	if p.kind != subjSPIFFE || td != p.td || path == "" {
		return false
	}
	i := 1 // skip the leading slash
	for n, seg := range p.segs {
		if i > len(path) {
			return false
		}
		if seg == "**" {
			return n == len(p.segs)-1
		}
		s, next := segmentAt(path, i)
		if seg != "*" && seg != s {
			return false
		}
		i = next
	}
	return i > len(path)
}

func (p subjectPattern) matchLabels(labels map[string]string) bool {
	if p.kind != subjLabels {
		return false
	}
	for _, kv := range p.labels {
		if v, ok := labels[kv.k]; !ok || v != kv.v {
			return false
		}
	}
	return true
}

func (p subjectPattern) matchUser(user string, groups []string) bool {
	if user == "" {
		return false
	}
	switch p.kind {
	case subjUser:
		return p.name == "*" || p.name == user
	case subjGroup:
		return slices.Contains(groups, p.name)
	}
	return false
}

func (p subjectPattern) isUser() bool { return p.kind == subjUser || p.kind == subjGroup }

// splitID splits a SPIFFE ID into trust domain and path without allocating.
// ok is false when id is not a valid SPIFFE ID.
func splitID(id string) (td, path string, ok bool) {
	rest, found := strings.CutPrefix(id, "spiffe://")
	if !found {
		return "", "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	td, path = rest[:i], rest[i:]
	if !validTD(td) || spiffeid.ValidatePath(path) != nil {
		return "", "", false
	}
	return td, path, true
}

func validTD(td string) bool {
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return td != ""
}
