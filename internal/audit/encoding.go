package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// MaxEventSize is the largest canonical encoding the log accepts.
const MaxEventSize = 64 << 10

// MarshalCanonical returns the canonical encoding of e. It fails if a text
// field is not valid UTF-8 (encoding/json would silently replace it), if
// the time is outside the years 0 to 9999, or if the encoding is larger
// than [MaxEventSize].
func (e *Event) MarshalCanonical() ([]byte, error) {
	for i, p := range textFields(e) {
		if !utf8.ValidString(*p) {
			return nil, fmt.Errorf("encode event: field %s is not valid UTF-8", textFieldName(i))
		}
	}
	for k, v := range e.Details {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("encode event: details[%q] is not valid UTF-8", k)
		}
	}
	c := *e
	c.Time = c.Time.UTC()
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("encode event: %d bytes, over the limit of %d; shorten reason or details", len(b), MaxEventSize)
	}
	return b, nil
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
