package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// envelope is what the fast path (fast.go) reads of an agent's tools/call:
// the request id, the tool's name, and the arguments and _meta as raw
// JSON. Everything else of the request is left to the upstream (the
// arguments) or refused to the fast path (any other member).
type envelope struct {
	id   jsonrpc.ID
	name string
	args json.RawMessage // nil when absent
	meta json.RawMessage // nil when absent
}

// maxFastID bounds a string request id the fast path takes, in bytes.
const maxFastID = 256

// errNotFast is why decodeEnvelope refused a body: the fast path does not
// take it, and the SDK's path answers it (with its own error when the
// body is not a valid request).
var errNotFast = errors.New("not a plain tools/call")

// decodeEnvelope reads body as one JSON-RPC tools/call request of exactly
// this shape, and refuses (errNotFast) anything else: a batch, another
// method, a notification, a duplicate or unknown member at the top level
// or in params, a member whose case differs ("Method"), an id that is not
// a string of at most maxFastID bytes or an integer, a name that is not a
// non-empty string, arguments that are not an object or null, _meta
// that is not an object, invalid
// UTF-8, or anything after the object. What it refuses goes to the SDK's
// path unchanged; what it takes, both paths read the same way.
func decodeEnvelope(body []byte) (envelope, error) {
	var env envelope
	if !utf8.Valid(body) {
		return env, errNotFast
	}
	var (
		rawID, params    json.RawMessage
		version, method  string
		seenV, seenM     bool
		haveID, haveArgs bool
	)
	err := members(body, func(key string, val []byte) error {
		switch key {
		case "jsonrpc":
			seenV = true
			return json.Unmarshal(val, &version)
		case "id":
			haveID = true
			rawID = val
			return nil
		case "method":
			seenM = true
			return json.Unmarshal(val, &method)
		case "params":
			params = val
			return nil
		}
		return errNotFast
	})
	if err != nil || !seenV || version != "2.0" || !seenM || method != "tools/call" || !haveID || params == nil {
		return env, errNotFast
	}
	if env.id, err = fastID(rawID); err != nil {
		return env, err
	}
	err = validMembers(params, func(key string, val []byte) error {
		switch key {
		case "name":
			if val[0] != '"' {
				return errNotFast
			}
			return json.Unmarshal(val, &env.name)
		case "arguments":
			haveArgs = true
			env.args = val
			return nil
		case "_meta":
			env.meta = val
			return nil
		}
		return errNotFast
	})
	if err != nil || env.name == "" {
		return env, errNotFast
	}
	if haveArgs && !isObject(env.args) && string(env.args) != "null" || env.meta != nil && !isObject(env.meta) {
		return env, errNotFast
	}
	return env, nil
}

// members walks the members of the JSON object data, calling f with each
// key (unescaped, as encoding/json reads it) and the bytes of its value.
// A key seen twice, anything but one valid JSON object, or anything but
// white space after it, fails. It reads data once to check it is valid
// JSON (json.Valid, which allocates nothing) and once to find the
// members; encoding/json decodes only the values f asks for.
func members(data []byte, f func(key string, val []byte) error) error {
	if !json.Valid(data) {
		return errNotFast
	}
	return validMembers(data, f)
}

// validMembers is members of data known to be valid JSON (a value inside
// a document members took).
func validMembers(data []byte, f func(key string, val []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotFast
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return nil
	}
	// f refuses a key it does not know, so the keys seen are the few
	// it knows.
	var seen []string
	for {
		end := skipString(data, i)
		key, err := unquoteKey(data[i:end])
		if err != nil || slices.Contains(seen, key) {
			return errNotFast
		}
		seen = append(seen, key)
		i = skipSpace(data, skipSpace(data, end)+1) // past ':'
		end = skipValue(data, i)
		if err := f(key, data[i:end]); err != nil {
			return errNotFast
		}
		i = skipSpace(data, end)
		if data[i] == '}' {
			return nil
		}
		i = skipSpace(data, i+1) // past ','
	}
}

// elements calls f with each element of the valid JSON array data; it
// fails on anything but an array.
func elements(data []byte, f func(val []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return errNotFast
	}
	i = skipSpace(data, i+1)
	if data[i] == ']' {
		return nil
	}
	for {
		end := skipValue(data, i)
		if err := f(data[i:end]); err != nil {
			return errNotFast
		}
		i = skipSpace(data, end)
		if data[i] == ']' {
			return nil
		}
		i = skipSpace(data, i+1)
	}
}

// unquoteKey returns the string of the JSON string literal q: its bytes
// between the quotes when they hold no escape and only ASCII, else as
// encoding/json decodes it (escapes resolved, invalid UTF-8 replaced).
func unquoteKey(q []byte) (string, error) {
	inner := q[1 : len(q)-1]
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			var s string
			err := json.Unmarshal(q, &s)
			return s, err
		}
	}
	return string(inner), nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal of valid JSON
// that starts at data[i].
func skipString(data []byte, i int) int {
	for i++; ; i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index after the value of valid JSON that starts
// at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// fastID is a request id the fast path takes: a string of at most
// maxFastID bytes, or an integer that fits in 64 bits (the SDK's ids).
func fastID(raw json.RawMessage) (jsonrpc.ID, error) {
	if len(raw) == 0 {
		return jsonrpc.ID{}, errNotFast
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || len(s) > maxFastID {
			return jsonrpc.ID{}, errNotFast
		}
		return jsonrpc.MakeID(s)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return jsonrpc.ID{}, errNotFast
	}
	// MakeID takes the float64 the standard decoding gives; beyond 2^53
	// that would round, so such ids go to the SDK's path.
	if n > 1<<53 || n < -(1<<53) {
		return jsonrpc.ID{}, errNotFast
	}
	return jsonrpc.MakeID(float64(n))
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}
