package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
	err := members(body, func(key string, dec *json.Decoder) error {
		switch key {
		case "jsonrpc":
			seenV = true
			return dec.Decode(&version)
		case "id":
			haveID = true
			return dec.Decode(&rawID)
		case "method":
			seenM = true
			return dec.Decode(&method)
		case "params":
			return dec.Decode(&params)
		}
		return errNotFast
	}, true)
	if err != nil || !seenV || version != "2.0" || !seenM || method != "tools/call" || !haveID || params == nil {
		return env, errNotFast
	}
	if env.id, err = fastID(rawID); err != nil {
		return env, err
	}
	err = members(params, func(key string, dec *json.Decoder) error {
		switch key {
		case "name":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil || len(raw) == 0 || raw[0] != '"' {
				return errNotFast
			}
			return json.Unmarshal(raw, &env.name)
		case "arguments":
			haveArgs = true
			return dec.Decode(&env.args)
		case "_meta":
			return dec.Decode(&env.meta)
		}
		return errNotFast
	}, true)
	if err != nil || env.name == "" {
		return env, errNotFast
	}
	if haveArgs && !isObject(env.args) && string(env.args) != "null" || env.meta != nil && !isObject(env.meta) {
		return env, errNotFast
	}
	return env, nil
}

// members walks the members of the JSON object data, calling f with each
// key and the decoder positioned at its value (f must consume the value).
// A key seen twice, anything but one object, or trailing data after it
// (when whole) fails.
func members(data []byte, f func(key string, dec *json.Decoder) error, whole bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errNotFast
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return errNotFast
		}
		key, ok := t.(string)
		if !ok || seen[key] {
			return errNotFast
		}
		seen[key] = true
		if err := f(key, dec); err != nil {
			return errNotFast
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return errNotFast
	}
	if whole {
		if _, err := dec.Token(); err != io.EOF {
			return errNotFast
		}
	}
	return nil
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
