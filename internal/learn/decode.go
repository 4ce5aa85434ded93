package learn

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/writ-dev/writ/internal/audit"
)

// event holds the fields of an audit event that learn and replay read:
// access events (HTTP and MCP), token and task events.
type event struct {
	Time       time.Time
	Type       audit.Type
	SpiffeID   string
	Instance   string
	Task       string
	OnBehalfOf string
	Target     string
	Decision   string
	Policy     string
	Rule       string
	Reason     string
	Source     string
	Node       string
	D          details
}

// details are the event details read; the others are skipped.
type details struct {
	Service, Method, Path, Approval         string
	TaskPurpose, TaskCalls                  string
	SubjectLabels, TargetLabels             string
	Tool, Resource, Prompt, MCPServer, Args string
	Scope, Purpose, Calls                   string
	PolicyEffect, Budget, BudgetRequested   string
}

func (d *details) set(k, v string) {
	switch k {
	case "service":
		d.Service = v
	case "method":
		d.Method = v
	case "path":
		d.Path = v
	case "approval":
		d.Approval = v
	case "task_purpose":
		d.TaskPurpose = v
	case "task_calls":
		d.TaskCalls = v
	case "subject_labels":
		d.SubjectLabels = v
	case "target_labels":
		d.TargetLabels = v
	case "tool":
		d.Tool = v
	case "resource":
		d.Resource = v
	case "prompt":
		d.Prompt = v
	case "mcp_server":
		d.MCPServer = v
	case "args":
		d.Args = v
	case "scope":
		d.Scope = v
	case "purpose":
		d.Purpose = v
	case "calls":
		d.Calls = v
	case "policy_effect":
		d.PolicyEffect = v
	case "budget":
		d.Budget = v
	case "budget_requested":
		d.BudgetRequested = v
	}
}

// decoder decodes events in the canonical encoding (audit.Event's
// documented form: one compact JSON object, fields in a fixed order,
// details a flat object of strings) without reflection and with few
// allocations: strings that repeat across events (identities, methods,
// services, policies) are interned. Anything it does not expect, such as
// an escaped key or a value that is not a string, makes it decode the
// event with encoding/json instead, so it is never less correct than
// json.Unmarshal, only faster on the common form.
type decoder struct {
	intern map[string]string
}

// maxInterned bounds the interning table, so that a log of unique values
// does not grow it without limit.
const maxInterned = 1 << 16

func newDecoder() *decoder { return &decoder{intern: make(map[string]string, 1024)} }

// str returns b as a string, interned when short.
func (dc *decoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > 128 {
		return string(b)
	}
	if s, ok := dc.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(dc.intern) < maxInterned {
		dc.intern[s] = s
	}
	return s
}

// decode decodes data into ev. want, when not nil, is asked about the
// event's type as soon as it is read: false stops decoding and decode
// returns false, nil.
func (dc *decoder) decode(data []byte, ev *event, want func(audit.Type) bool) (bool, error) {
	*ev = event{}
	ok, complete := dc.fast(data, ev, want)
	if ok && !complete {
		return false, nil
	}
	if ok {
		return true, nil
	}
	var j jsonEvent
	if err := json.Unmarshal(data, &j); err != nil {
		return false, err
	}
	*ev = event{Time: j.Time, Type: j.Type, SpiffeID: j.SpiffeID, Instance: j.Instance, Task: j.Task, OnBehalfOf: j.OnBehalfOf,
		Target: j.Target, Decision: j.Decision, Policy: j.Policy, Rule: j.Rule, Reason: j.Reason, Source: j.Source, Node: j.Node}
	for k, v := range j.Details {
		ev.D.set(k, v)
	}
	if want != nil && !want(ev.Type) {
		return false, nil
	}
	return true, nil
}

// jsonEvent is the fallback decoding of an event.
type jsonEvent struct {
	Time       time.Time         `json:"time"`
	Type       audit.Type        `json:"type"`
	SpiffeID   string            `json:"spiffe_id"`
	Instance   string            `json:"instance"`
	Task       string            `json:"task"`
	OnBehalfOf string            `json:"on_behalf_of"`
	Target     string            `json:"target"`
	Decision   string            `json:"decision"`
	Policy     string            `json:"policy"`
	Rule       string            `json:"rule"`
	Reason     string            `json:"reason"`
	Source     string            `json:"source"`
	Node       string            `json:"node"`
	Details    map[string]string `json:"details"`
}

// fast decodes the canonical form. ok is false when data is not in the
// form it reads (decode then falls back); complete is false when want
// refused the type.
func (dc *decoder) fast(p []byte, ev *event, want func(audit.Type) bool) (ok, complete bool) {
	if len(p) < 2 || p[0] != '{' {
		return false, false
	}
	p = p[1:]
	for {
		key, rest, ok := rawString(p)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false, false
		}
		p = rest[1:]
		if len(p) == 0 {
			return false, false
		}
		switch {
		case string(key) == "details":
			if p, ok = dc.details(p, &ev.D); !ok {
				return false, false
			}
		case p[0] == '"':
			val, rest, ok := rawString(p)
			if !ok {
				return false, false
			}
			p = rest
			switch string(key) {
			case "time":
				t, ok := parseTime(val)
				if !ok {
					return false, false
				}
				ev.Time = t
			case "type":
				ev.Type = audit.Type(dc.str(val))
				if want != nil && !want(ev.Type) {
					return true, false
				}
			case "spiffe_id":
				ev.SpiffeID = dc.str(val)
			case "instance":
				ev.Instance = dc.str(val)
			case "task":
				ev.Task = dc.str(val)
			case "on_behalf_of":
				ev.OnBehalfOf = dc.str(val)
			case "target":
				ev.Target = dc.str(val)
			case "decision":
				ev.Decision = dc.str(val)
			case "policy":
				ev.Policy = dc.str(val)
			case "rule":
				ev.Rule = dc.str(val)
			case "reason":
				ev.Reason = string(val)
			case "source":
				ev.Source = dc.str(val)
			case "node":
				ev.Node = dc.str(val)
			case "id", "actor", "action", "credential", "request_id":
			default:
				return false, false // json would match keys case-insensitively
			}
		case string(key) == "latency_us":
			i := 0
			for i < len(p) && (p[i] >= '0' && p[i] <= '9' || p[i] == '-') {
				i++
			}
			if i == 0 {
				return false, false
			}
			p = p[i:]
		default:
			return false, false
		}
		if len(p) == 0 {
			return false, false
		}
		switch p[0] {
		case '}':
			return len(bytes.TrimSpace(p[1:])) == 0, true
		case ',':
			p = p[1:]
		default:
			return false, false
		}
	}
}

// details reads the details object at the front of p.
func (dc *decoder) details(p []byte, d *details) ([]byte, bool) {
	if len(p) < 2 || p[0] != '{' {
		return nil, false
	}
	p = p[1:]
	if p[0] == '}' {
		return p[1:], true
	}
	for {
		key, rest, ok := rawString(p)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return nil, false
		}
		val, rest, ok := rawString(rest[1:])
		if !ok || len(rest) == 0 {
			return nil, false
		}
		switch string(key) {
		case "path", "args", "subject_labels", "target_labels", "scope", "task_purpose", "purpose":
			d.set(string(key), string(val))
		default:
			d.set(string(key), dc.str(val))
		}
		switch rest[0] {
		case '}':
			return rest[1:], true
		case ',':
			p = rest[1:]
		default:
			return nil, false
		}
	}
}

// rawString reads the JSON string at the front of p when it has no
// escapes and is valid UTF-8 (ok is false otherwise, and for anything but
// a string) and returns its bytes, which alias p.
func rawString(p []byte) (s, rest []byte, ok bool) {
	if len(p) == 0 || p[0] != '"' {
		return nil, nil, false
	}
	ascii := true
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			if !ascii && !utf8.Valid(p[1:i]) {
				return nil, nil, false
			}
			return p[1:i], p[i+1:], true
		case c == '\\' || c < 0x20:
			return nil, nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, nil, false
}

// parseTime reads the canonical time (UTC, RFC 3339, up to nine
// fractional digits: "2026-05-01T12:00:00.5Z"); anything else is not ok.
func parseTime(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 {
		return time.Time{}, false
	}
	ns := 0
	frac := b[19 : len(b)-1]
	if len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := num(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		ns = n
	}
	t := time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC)
	if t.Day() != d { // 31 February
		return time.Time{}, false
	}
	return t, true
}
