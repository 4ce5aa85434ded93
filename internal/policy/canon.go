package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Canonical forms. The engine decides on one spelling of each name a
// request carries, so that a rule written for one spelling also holds for
// every equivalent one: a deny on /v1/secret also denies /v1/secret/,
// /v1//secret and /v1/x/../secret; a deny on DELETE also denies delete; a
// deny on file:///secret/** also denies file:///pub/../secret/key and
// file:///%73ecret/key. [Snapshot.Decide] and [Snapshot.Explain] put every
// request in canonical form before matching, and conditions (CEL) see the
// canonical values. Patterns in rules are put in the same form when they
// are compiled. An enforcement point that forwards the request should
// forward the canonical form it was decided on (or refuse the request).

// CanonicalPath returns the canonical form of an HTTP request path: it
// starts with "/", has no empty segment (duplicate slashes collapse), no
// "." or ".." segment (resolved; ".." never climbs above the root) and no
// trailing slash, except the root "/" itself. The path is taken as
// decoded: percent signs are not interpreted. It allocates only when p is
// not canonical already.
func CanonicalPath(p string) string {
	if isCanonicalPath(p) {
		return p
	}
	return "/" + resolveSegments(p, true)
}

// isCanonicalPath reports whether p is in the form CanonicalPath returns.
func isCanonicalPath(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i <= len(p); {
		seg, next := segmentAt(p, i)
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		i = next
	}
	return true
}

// resolveSegments returns the segments of p joined by "/" after dropping
// empty and "." segments and resolving ".." (which, at the start, is
// dropped when rooted and kept otherwise, as in a relative reference).
func resolveSegments(p string, rooted bool) string {
	segs := make([]string, 0, strings.Count(p, "/")+1)
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "" || seg == ".":
		case seg == "..":
			if len(segs) > 0 && segs[len(segs)-1] != ".." {
				segs = segs[:len(segs)-1]
			} else if !rooted {
				segs = append(segs, seg)
			}
		default:
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, "/")
}

// CanonicalMethod returns an HTTP method in upper case. ok is false when m
// is not an HTTP token (RFC 9110): empty, or with a space, a control
// character or a separator; such a request is denied.
func CanonicalMethod(m string) (canon string, ok bool) {
	upper := true
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !isTokenChar(c) {
			return "", false
		}
		if 'a' <= c && c <= 'z' {
			upper = false
		}
	}
	if m == "" {
		return "", false
	}
	if upper {
		return m, true
	}
	return strings.ToUpper(m), true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// CanonicalURI returns the canonical form of an MCP resource URI, after
// RFC 3986 section 6.2.2 and what servers that map URIs to files do:
//
//   - the scheme and the host are lower case; file://localhost/ is file:///;
//   - percent-encoded unreserved characters (letters, digits, "-", ".",
//     "_", "~") and, in the path, "/" are decoded; other escapes get upper
//     case hex digits;
//   - in the path, duplicate slashes collapse, "." and ".." segments are
//     resolved, and a trailing slash is dropped (except for the root);
//   - the query and fragment keep their text, with escapes normalised.
//
// A name without a scheme (an opaque resource name) is treated as a path.
// It allocates only when u is not canonical already.
func CanonicalURI(u string) string {
	if isCanonicalURI(u) {
		return u
	}
	return canonicalURI(u)
}

func canonicalURI(u string) string {
	var b strings.Builder
	b.Grow(len(u))
	rest := u
	scheme, afterScheme, hasScheme := splitScheme(u)
	if hasScheme {
		scheme = asciiLower(scheme)
		b.WriteString(scheme)
		b.WriteByte(':')
		rest = afterScheme
	}
	if auth, ok := strings.CutPrefix(rest, "//"); ok {
		end := strings.IndexAny(auth, "/?#")
		if end < 0 {
			end = len(auth)
		}
		auth, rest = auth[:end], auth[end:]
		userinfo, host := "", auth
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			userinfo, host = auth[:at+1], auth[at+1:]
		}
		host = asciiLower(unescape(host, false))
		if scheme == "file" && userinfo == "" && host == "localhost" {
			host = ""
		}
		b.WriteString("//")
		b.WriteString(unescape(userinfo, false))
		b.WriteString(host)
	}
	path, tail := rest, ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		path, tail = rest[:i], rest[i:]
	}
	// After an authority the path is empty or starts with "/"; without
	// one it may be rootless ("inbox/x" in mail:inbox/x).
	path = unescape(path, true)
	if strings.HasPrefix(path, "/") {
		b.WriteByte('/')
		b.WriteString(resolveSegments(path, true))
	} else {
		rel := resolveSegments(path, false)
		// A relative name whose first segment has a ":" would read as a
		// scheme (RFC 3986 section 4.2).
		if first, _, _ := strings.Cut(rel, "/"); !hasScheme && b.Len() == 0 && strings.Contains(first, ":") {
			b.WriteString("./")
		}
		b.WriteString(rel)
	}
	b.WriteString(unescape(tail, false))
	return b.String()
}

// isCanonicalURI is a fast, allocation-free check for the common case: a
// URI with a lower-case scheme and host, no escapes, and a clean path.
func isCanonicalURI(u string) bool {
	if strings.IndexByte(u, '%') >= 0 {
		return false
	}
	scheme, rest, hasScheme := splitScheme(u)
	if hasScheme && hasUpper(scheme) {
		return false
	}
	if auth, ok := strings.CutPrefix(rest, "//"); ok {
		end := strings.IndexAny(auth, "/?#")
		if end < 0 {
			end = len(auth)
		}
		userinfo, host := "", auth[:end]
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			userinfo, host = host[:at+1], host[at+1:]
		}
		if hasUpper(host) || (strings.EqualFold(scheme, "file") && userinfo == "" && host == "localhost") {
			return false
		}
		rest = auth[end:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	switch {
	case rest == "" || rest == "/":
		return true
	case rest[0] == '/':
		return isCanonicalPath(rest)
	}
	// A rootless path: no empty, "." or ".." segment, no trailing slash,
	// and no ":" in the first segment of a name without a scheme.
	if rest[len(rest)-1] == '/' {
		return false
	}
	if first, _, _ := strings.Cut(rest, "/"); !hasScheme && strings.Contains(first, ":") {
		return false
	}
	for i := 0; i <= len(rest); {
		seg, next := segmentAt(rest, i)
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		i = next
	}
	return true
}

// asciiLower lowers ASCII letters only: other bytes, valid UTF-8 or not,
// are kept (hosts are compared case-insensitively in ASCII alone).
func asciiLower(s string) string {
	if !hasUpper(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// splitScheme splits "scheme:rest" when u starts with a scheme (a letter,
// then letters, digits, "+", "-" or "."), as RFC 3986 defines it.
func splitScheme(u string) (scheme, rest string, ok bool) {
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return u[:i], u[i+1:], true
		default:
			return "", u, false
		}
	}
	return "", u, false
}

// unescape decodes percent-encoded unreserved characters (and "/" when
// slash is set) and writes the hex digits of other escapes in upper case.
// A "%" not followed by two hex digits is written %25, so that every "%"
// of the result starts an escape and a second pass changes nothing.
func unescape(s string, slash bool) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b.WriteString("%25") // a bare "%" stands for itself
			continue
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if isUnreserved(c) || (slash && c == '/') {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
		i += 2
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isUnreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~'
}

var errDotSegment = errors.New(`"." and ".." segments are not allowed: requests are matched in canonical form, where they are resolved`)

// canonicalPattern puts a path or URI pattern in the canonical form its
// requests are matched in (see [CanonicalPath], [CanonicalURI]): duplicate
// slashes collapse and a trailing slash is dropped. A "." or ".." segment
// is an error, since no canonical name has one.
func canonicalPattern(s string, uri bool) (string, error) {
	c := CanonicalPath(s)
	if uri {
		c = CanonicalURI(s)
	}
	if c == s {
		return s, nil
	}
	// Refuse dot segments rather than resolve them: /a/**/../b has no
	// meaning a reader could agree on.
	path := s
	if uri {
		if _, rest, ok := splitScheme(s); ok {
			path = rest
		}
	}
	for seg := range strings.SplitSeq(unescape(path, true), "/") {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("pattern %q: %w", s, errDotSegment)
		}
	}
	return c, nil
}

// canonicalRequest returns req with its HTTP method and path, or its MCP
// resource URI, in canonical form, and with source.node set to node when
// it has none: req itself when nothing changes, else a copy in buf. When
// the request cannot be put in canonical form (its method is not an HTTP
// token), it returns the reason to deny it.
func canonicalRequest(req *Request, buf *Request, node string) (*Request, string) {
	if node != "" && req.Source.Node == "" {
		*buf = *req
		buf.Source.Node = node
		req = buf
	}
	switch req.Kind {
	case KindHTTP:
		m, ok := CanonicalMethod(req.HTTP.Method)
		if !ok {
			return req, fmt.Sprintf("method %q is not an HTTP method token; the request is denied", req.HTTP.Method)
		}
		p := CanonicalPath(req.HTTP.Path)
		if m == req.HTTP.Method && p == req.HTTP.Path {
			return req, ""
		}
		if req != buf {
			*buf = *req
		}
		buf.HTTP.Method, buf.HTTP.Path = m, p
		return buf, ""
	case KindMCP:
		if req.MCP.Resource == "" {
			return req, ""
		}
		u := CanonicalURI(req.MCP.Resource)
		if u == req.MCP.Resource {
			return req, ""
		}
		if req != buf {
			*buf = *req
		}
		buf.MCP.Resource = u
		return buf, ""
	}
	return req, ""
}
