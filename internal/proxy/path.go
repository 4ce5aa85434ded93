package proxy

import (
	"fmt"
	"strings"

	"github.com/writ-dev/writ/internal/access"
)

// checkPath refuses a request path that an upstream could read as another
// path than the one policy decides on. Policy sees the decoded path
// (decoded); the upstream is sent the path as the client escaped it
// (escaped), and servers differ in what they make of it: Tomcat, Jetty and
// Spring drop ";params" from each segment (so "/a/..;/b" is "/b"), IIS,
// .NET and some Node servers take "\" for "/", most servers resolve dot
// segments, and some decode twice. So a path is refused, not normalised,
// when, decoded, it has
//
//   - a dot segment ("." or ".."), whether written as such, percent-encoded
//     (%2e) or made by an encoded slash (%2f);
//   - a backslash, raw or encoded (%5c);
//   - a semicolon, raw or encoded (%3b);
//   - a control character (%00-%1f, %7f);
//
// or when, decoded, it still holds a percent-encoded character (the client
// encoded it twice: %252e, %2500, ...), which a server that decodes twice
// reads as that character. No single normal form is read the same way by every
// server, so refusing is the only rule that holds for all of them; clients
// resolve dot segments before they send (RFC 3986 §5.2.4), so a client
// that sends these is not an ordinary one.
//
// An encoded slash alone (%2f) is allowed and forwarded as it came: policy
// sees it as a separator, i.e. more segments than an upstream that keeps
// it in the segment, which can only make a path rule match less.
func checkPath(decoded, escaped string) error {
	for i := 0; i < len(decoded); i++ {
		switch c := decoded[i]; {
		case c == '\\':
			return badPath(decoded, "a backslash, which some servers read as /")
		case c == ';':
			return badPath(decoded, "a semicolon, after which Java servers drop the rest of the segment")
		case c < 0x20 || c == 0x7f:
			return badPath(decoded, "a control character")
		case c == '.' && (i == 0 || decoded[i-1] == '/'):
			n := 1
			if i+1 < len(decoded) && decoded[i+1] == '.' {
				n = 2
			}
			if i+n == len(decoded) || decoded[i+n] == '/' {
				return badPath(decoded, "a dot segment (. or ..), which servers resolve")
			}
		}
	}
	for i := strings.IndexByte(decoded, '%'); i >= 0 && i+2 < len(decoded); i = strings.IndexByte(decoded, '%') {
		decoded = decoded[i+1:]
		if isHex(decoded[0]) && isHex(decoded[1]) {
			return badPath(escaped, "a doubly percent-encoded character (%25XX), which servers that decode twice read as another")
		}
	}
	return nil
}

func badPath(path, what string) error {
	return &access.Refusal{Class: access.Invalid, Message: fmt.Sprintf(
		"request path %q contains %s; the upstream could read it as another path than the one policy decides on, so the proxy refuses it: send the path with dot segments resolved and without \\ or ;", path, what)}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
