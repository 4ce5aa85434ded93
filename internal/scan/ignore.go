package scan

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
)

// IgnoreFile is the allowlist file's name at the root of a scanned tree.
const IgnoreFile = ".writscanignore"

// Ignore is a parsed .writscanignore: findings it names are not reported.
// Each line is a comment (#), blank, or one of
//
//	fingerprint:HEX   a secret, by its keyed fingerprint (as findings print it)
//	rule:ID           every finding of a rule
//	PATTERN           files: a pattern without a slash matches a file or
//	                  directory name at any depth; one with a slash matches
//	                  the path from the root (path.Match syntax); a
//	                  trailing slash matches everything under a directory
type Ignore struct {
	fingerprints map[string]bool
	rules        map[string]bool
	patterns     []string
}

// ParseIgnore parses an ignore file. name is used in errors only.
func ParseIgnore(name string, src []byte) (*Ignore, error) {
	ig := &Ignore{fingerprints: map[string]bool{}, rules: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(nil, 64*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "fingerprint:"):
			fp := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "fingerprint:")))
			if b, err := hex.DecodeString(fp); err != nil || len(b) != 32 {
				return nil, fmt.Errorf("parse %s:%d: fingerprint must be 64 hex digits as a finding prints it", name, n)
			}
			ig.fingerprints[fp] = true
		case strings.HasPrefix(line, "rule:"):
			id := strings.TrimSpace(strings.TrimPrefix(line, "rule:"))
			if id == "" {
				return nil, fmt.Errorf("parse %s:%d: rule: needs a rule id", name, n)
			}
			ig.rules[id] = true
		default:
			p := strings.TrimPrefix(line, "/")
			if _, err := path.Match(strings.TrimSuffix(p, "/"), ""); err != nil || p == "" {
				return nil, fmt.Errorf("parse %s:%d: bad pattern %q: use path.Match syntax (*, ?, [a-z])", name, n, line)
			}
			ig.patterns = append(ig.patterns, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse %s:%d: %w", name, n+1, err)
	}
	return ig, nil
}

// IgnoresPath reports whether the file at p (slash-separated, relative to
// the root) is ignored.
func (ig *Ignore) IgnoresPath(p string) bool {
	if ig == nil {
		return false
	}
	for _, pat := range ig.patterns {
		dirOnly := strings.HasSuffix(pat, "/")
		pat = strings.TrimSuffix(pat, "/")
		if !strings.Contains(pat, "/") {
			parts := strings.Split(p, "/")
			for i, part := range parts {
				if dirOnly && i == len(parts)-1 {
					break
				}
				if ok, _ := path.Match(pat, part); ok {
					return true
				}
			}
			continue
		}
		// A pattern with a slash matches the path or one of its parent
		// directories.
		for q := p; q != "." && q != "/" && q != ""; q = path.Dir(q) {
			if dirOnly && q == p {
				continue
			}
			if ok, _ := path.Match(pat, q); ok {
				return true
			}
		}
	}
	return false
}

// Ignores reports whether f is ignored by its rule or fingerprint.
func (ig *Ignore) Ignores(f Finding) bool {
	if ig == nil {
		return false
	}
	return ig.rules[f.RuleID] || ig.fingerprints[f.Fingerprint]
}
