package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The canonical encoding of an [Event] is the byte string hashed into the
// Merkle tree (the leaf data of RFC 6962) and stored in the log. It is the
// event as one line of compact JSON, exactly as Go's encoding/json writes
// the Event type:
//
//   - the fields in the order id, time, type, spiffe_id, instance, task,
//     on_behalf_of, actor, target, action, decision, policy, rule, reason,
//     credential, source, node, request_id, latency_us, details;
//   - every field but id, time and type omitted when empty or zero;
//   - time in UTC as RFC 3339 with up to nine fractional digits and no
//     trailing zeros ("2026-05-01T12:00:00.5Z");
//   - details keys sorted bytewise;
//   - strings escaped as encoding/json does (", \, control characters,
//     and <, >, &, U+2028, U+2029 as \u escapes), all text valid UTF-8.
//
// Because the stored bytes are the leaf data, a verifier never needs to
// re-encode: it hashes the bytes it is given. [DecodeEvent] accepts only
// the canonical form, so a decoded event re-encodes to the same bytes.

// appendCanonical appends the canonical encoding of e to b. It writes what
// encoding/json writes for the Event type (TestCanonicalMatchesJSON holds
// it to that, byte for byte) without reflection, about five times faster,
// and pins the format to this code rather than to a Go release.
func (e *Event) appendCanonical(b []byte) ([]byte, error) {
	t := e.Time.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("time %v is outside the years 0 to 9999", e.Time)
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","type":`...)
	b = appendJSONString(b, string(e.Type))
	for _, f := range [...]struct{ key, v string }{
		{`,"spiffe_id":`, e.SpiffeID}, {`,"instance":`, e.Instance}, {`,"task":`, e.Task},
		{`,"on_behalf_of":`, e.OnBehalfOf}, {`,"actor":`, e.Actor}, {`,"target":`, e.Target},
		{`,"action":`, e.Action}, {`,"decision":`, e.Decision}, {`,"policy":`, e.Policy},
		{`,"rule":`, e.Rule}, {`,"reason":`, e.Reason}, {`,"credential":`, e.Credential},
		{`,"source":`, e.Source}, {`,"node":`, e.Node}, {`,"request_id":`, e.RequestID},
	} {
		if f.v != "" {
			b = append(b, f.key...)
			b = appendJSONString(b, f.v)
		}
	}
	if e.LatencyUS != 0 {
		b = append(b, `,"latency_us":`...)
		b = strconv.AppendInt(b, e.LatencyUS, 10)
	}
	if len(e.Details) > 0 {
		var room [16]string // most events' details fit, without an allocation
		keys := room[:0]
		for k := range e.Details {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"details":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, e.Details[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendJSONString appends s (valid UTF-8) as a JSON string escaped as
// encoding/json escapes it: ", \ and control characters, \b \f \n \r \t
// by name, and <, >, &, U+2028 and U+2029 as \u escapes.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// MaxEventSize is the largest canonical encoding the log accepts.
const MaxEventSize = 64 << 10

// MarshalCanonical returns the canonical encoding of e. It fails if a text
// field is not valid UTF-8 (encoding/json would silently replace it), if
// the time is outside the years 0 to 9999, or if the encoding is larger
// than [MaxEventSize].
func (e *Event) MarshalCanonical() ([]byte, error) {
	b, err := e.AppendCanonical(make([]byte, 0, 1024))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AppendCanonical appends the canonical encoding of e to b, as
// [Event.MarshalCanonical] returns it, for a caller that reuses its
// buffer. On error b is returned unchanged.
func (e *Event) AppendCanonical(b []byte) ([]byte, error) {
	for i, p := range textFields(e) {
		if !utf8.ValidString(*p) {
			return b, fmt.Errorf("encode event: field %s is not valid UTF-8", textFieldName(i))
		}
	}
	for k, v := range e.Details {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return b, fmt.Errorf("encode event: details[%q] is not valid UTF-8", k)
		}
	}
	out, err := e.appendCanonical(b)
	if err != nil {
		return b, fmt.Errorf("encode event: %w", err)
	}
	if n := len(out) - len(b); n > MaxEventSize {
		return b, fmt.Errorf("encode event: %d bytes, over the limit of %d; shorten reason or details", n, MaxEventSize)
	}
	return out, nil
}

// DecodeEvent parses a canonical encoding made by [Event.MarshalCanonical].
// It rejects unknown fields and any input that is not in canonical form.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if len(data) > MaxEventSize {
		return e, fmt.Errorf("decode event: %d bytes, over the limit of %d", len(data), MaxEventSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if dec.More() {
		return Event{}, errors.New("decode event: trailing data after the JSON object")
	}
	again, err := e.MarshalCanonical()
	if err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if !bytes.Equal(again, data) {
		return Event{}, errors.New("decode event: not in canonical form (fields out of order, extra whitespace, a non-UTC time or different escaping)")
	}
	return e, nil
}

// textFieldName returns the JSON name of the i'th field textFields returns.
func textFieldName(i int) string {
	return [...]string{"id", "type", "spiffe_id", "instance", "task", "on_behalf_of",
		"actor", "target", "action", "decision", "policy", "rule", "reason", "credential",
		"source", "node", "request_id"}[i]
}

// textFields returns pointers to e's text fields, in encoding order.
func textFields(e *Event) [17]*string {
	return [...]*string{&e.ID, (*string)(&e.Type), &e.SpiffeID, &e.Instance, &e.Task,
		&e.OnBehalfOf, &e.Actor, &e.Target, &e.Action, &e.Decision, &e.Policy, &e.Rule,
		&e.Reason, &e.Credential, &e.Source, &e.Node, &e.RequestID}
}

// Sanitize replaces invalid UTF-8 in e's text fields and details with
// U+FFFD, so that every event can be encoded and round-trips through
// JSON. It copies Details rather than change the caller's map.
func (e *Event) Sanitize() {
	for _, p := range textFields(e) {
		if p != nil && !utf8.ValidString(*p) {
			*p = strings.ToValidUTF8(*p, "\uFFFD")
		}
	}
	for k, v := range e.Details {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			d := make(map[string]string, len(e.Details))
			for k, v := range e.Details {
				d[strings.ToValidUTF8(k, "\uFFFD")] = strings.ToValidUTF8(v, "\uFFFD")
			}
			e.Details = d
			break
		}
	}
}
