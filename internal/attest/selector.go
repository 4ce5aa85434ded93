package attest

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/writ-dev/writ/internal/store"
)

// SelectorType is the type of every selector this package produces.
const SelectorType = "unix"

// Selector keys: the part of a selector value before the first colon.
const (
	KeyUID                = "uid"
	KeyUser               = "user"
	KeyGID                = "gid"
	KeyGroup              = "group"
	KeySupplementaryGID   = "supplementary_gid"
	KeySupplementaryGroup = "supplementary_group"
	KeyPath               = "path"
	KeySHA256             = "sha256"
)

// acceptedForms is the hint in every selector error.
const acceptedForms = "accepted: unix:uid:N, unix:user:NAME, unix:gid:N, unix:group:NAME, " +
	"unix:supplementary_gid:N, unix:supplementary_group:NAME, unix:path:/ABS/PATH, unix:sha256:HEX (64 lower-case hex digits)"

// maxNameLen bounds user and group names; real ones are far shorter.
const maxNameLen = 256

// ParseSelector parses a selector written "unix:KEY:VALUE", such as
// "unix:uid:1000" or "unix:path:/usr/bin/python3". Numbers must be plain
// decimal without leading zeros, paths absolute and clean, digests 64
// lower-case hex digits, so that every accepted selector has exactly one
// spelling and matches the selectors [Attestor.Attest] produces.
func ParseSelector(s string) (store.Selector, error) {
	typ, value, ok := strings.Cut(s, ":")
	if !ok {
		return store.Selector{}, fmt.Errorf("parse selector %q: want TYPE:KEY:VALUE; %s", s, acceptedForms)
	}
	sel := store.Selector{Type: typ, Value: value}
	if err := ValidateSelector(sel); err != nil {
		return store.Selector{}, fmt.Errorf("parse selector %q: %w", s, err)
	}
	return sel, nil
}

// FormatSelector returns s in the form ParseSelector reads.
func FormatSelector(s store.Selector) string { return s.Type + ":" + s.Value }

// ValidateSelector reports whether s is a selector this package can
// produce. The error names the problem and the accepted forms.
func ValidateSelector(s store.Selector) error {
	if s.Type != SelectorType {
		return fmt.Errorf("unknown selector type %q; %s", s.Type, acceptedForms)
	}
	key, val, ok := strings.Cut(s.Value, ":")
	if !ok {
		return fmt.Errorf("selector value %q has no KEY:VALUE; %s", s.Value, acceptedForms)
	}
	switch key {
	case KeyUID, KeyGID, KeySupplementaryGID:
		if !canonicalID(val) {
			return fmt.Errorf("unix:%s wants a decimal id from 0 to 4294967294 without leading zeros, got %q", key, val)
		}
	case KeyUser, KeyGroup, KeySupplementaryGroup:
		if err := checkName(val); err != nil {
			return fmt.Errorf("unix:%s: %w", key, err)
		}
	case KeyPath:
		if err := checkPath(val); err != nil {
			return fmt.Errorf("unix:%s: %w", key, err)
		}
	case KeySHA256:
		if !isSHA256Hex(val) {
			return fmt.Errorf("unix:%s wants 64 lower-case hex digits, got %q", key, val)
		}
	default:
		return fmt.Errorf("unknown unix selector key %q; %s", key, acceptedForms)
	}
	return nil
}

func canonicalID(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	_, err := parseID(s)
	return err == nil
}

func checkName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("name is empty")
	case len(s) > maxNameLen:
		return fmt.Errorf("name is %d bytes, longer than %d", len(s), maxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("name %q is not valid UTF-8", s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("name %q has leading or trailing space", s)
	case strings.ContainsRune(s, ':'):
		return fmt.Errorf("name %q contains ':'", s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("name %q contains a control character", s)
	}
	return nil
}

func checkPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", p)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q contains a NUL byte", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean; write %q", p, path.Clean(p))
	case !utf8.ValidString(p):
		return fmt.Errorf("path %q is not valid UTF-8", p)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func idSelector(key string, id int) store.Selector {
	return store.Selector{Type: SelectorType, Value: key + ":" + strconv.Itoa(id)}
}

func strSelector(key, val string) store.Selector {
	return store.Selector{Type: SelectorType, Value: key + ":" + val}
}
