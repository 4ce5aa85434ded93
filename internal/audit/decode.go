package audit

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// UnmarshalCanonical sets e from data, an event as the audit log stores it.
// The result is always what json.Unmarshal into a zero Event gives (the
// property FuzzUnmarshalCanonical checks): data in exactly the form
// MarshalCanonical writes (fields in its order, no white space) is decoded
// by a parser for that form, several times faster and with fewer
// allocations, and anything else is left to encoding/json. Readers of the
// whole log (the lineage graph, the alert engine) decode every event, so
// this is their main cost.
func (e *Event) UnmarshalCanonical(data []byte) error {
	var fast Event
	if fast.parseCanonical(data) {
		*e = fast
		return nil
	}
	var slow Event
	if err := json.Unmarshal(data, &slow); err != nil {
		return err
	}
	*e = slow
	return nil
}

// canonicalKeys are the optional string fields' keys in the order
// appendCanonical writes them: textFields from the third on.
var canonicalKeys = func() (k [15]string) {
	for i := range k {
		k[i] = `,"` + textFieldName(i+2) + `":`
	}
	return k
}()

// parseCanonical decodes the canonical form into e, a zero Event, and
// reports false for anything else (e is then garbage).
func (e *Event) parseCanonical(p []byte) bool {
	var ok bool
	var s string
	if p, ok = cut(p, `{"id":`); !ok {
		return false
	}
	if e.ID, p, ok = canonString(p); !ok {
		return false
	}
	if p, ok = cut(p, `,"time":`); !ok {
		return false
	}
	if s, p, ok = canonString(p); !ok {
		return false
	}
	if e.Time.UnmarshalText([]byte(s)) != nil { // as encoding/json parses it
		return false
	}
	if p, ok = cut(p, `,"type":`); !ok {
		return false
	}
	if s, p, ok = canonString(p); !ok {
		return false
	}
	e.Type = Type(s)
	fields := textFields(e)
	for i, key := range canonicalKeys {
		rest, ok := cut(p, key)
		if !ok {
			continue
		}
		v, rest, ok := canonString(rest)
		if !ok || v == "" { // the canonical form leaves empty fields out
			return false
		}
		*fields[i+2] = v
		p = rest
	}
	if rest, ok := cut(p, `,"latency_us":`); ok {
		n := 0
		for n < len(rest) && (rest[n] == '-' && n == 0 || rest[n] >= '0' && rest[n] <= '9') {
			n++
		}
		v, err := strconv.ParseInt(string(rest[:n]), 10, 64)
		if err != nil || v == 0 || strconv.FormatInt(v, 10) != string(rest[:n]) {
			return false
		}
		e.LatencyUS = v
		p = rest[n:]
	}
	if rest, ok := cut(p, `,"details":{`); ok {
		p = rest
		e.Details = map[string]string{}
		prev := ""
		for i := 0; ; i++ {
			if len(p) > 0 && p[0] == '}' && i > 0 {
				p = p[1:]
				break
			}
			if i > 0 {
				if p, ok = cut(p, ","); !ok {
					return false
				}
			}
			var k, v string
			if k, p, ok = canonString(p); !ok {
				return false
			}
			if i > 0 && k <= prev { // sorted, no duplicates
				return false
			}
			prev = k
			if p, ok = cut(p, ":"); !ok {
				return false
			}
			if v, p, ok = canonString(p); !ok {
				return false
			}
			e.Details[k] = v
		}
	}
	return len(p) == 1 && p[0] == '}'
}

func cut(p []byte, prefix string) ([]byte, bool) {
	if len(p) < len(prefix) || string(p[:len(prefix)]) != prefix {
		return p, false
	}
	return p[len(prefix):], true
}

// canonString decodes a JSON string at the start of p as encoding/json
// does, and returns it and the rest. It refuses (false) what encoding/json
// would decode differently from the literal bytes in ways it does not
// handle: invalid UTF-8 (which encoding/json replaces), unknown escapes.
func canonString(p []byte) (string, []byte, bool) {
	if len(p) == 0 || p[0] != '"' {
		return "", p, false
	}
	p = p[1:]
	// The common case: no escapes.
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '"':
			if !utf8.Valid(p[:i]) {
				return "", p, false
			}
			return string(p[:i]), p[i+1:], true
		case c == '\\':
			return escapedString(p)
		case c < 0x20:
			return "", p, false
		}
	}
	return "", p, false
}

// escapedString decodes the body of a JSON string (after its quote) that
// holds escapes.
func escapedString(p []byte) (string, []byte, bool) {
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				return "", p, false
			}
			return string(b), p[i+1:], true
		case c < 0x20:
			return "", p, false
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(p) {
			return "", p, false
		}
		switch p[i+1] {
		case '"', '\\', '/':
			b = append(b, p[i+1])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(p[i+2:])
			if !ok {
				return "", p, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// Only a valid pair is taken; encoding/json turns a lone
				// surrogate into U+FFFD, which is left to it.
				if i+1 >= len(p) || p[i] != '\\' || p[i+1] != 'u' {
					return "", p, false
				}
				r2, ok := hex4(p[i+2:])
				if !ok {
					return "", p, false
				}
				dec := utf16.DecodeRune(r, r2)
				if dec == utf8.RuneError {
					return "", p, false
				}
				r = dec
				i += 6
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			return "", p, false
		}
		i += 2
	}
	return "", p, false
}

func hex4(p []byte) (rune, bool) {
	if len(p) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
