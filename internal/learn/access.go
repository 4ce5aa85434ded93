package learn

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/policy"
)

// Records is the part of an audit log backend Scan reads
// (auditlog.Records has it).
type Records interface {
	ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error)
}

// DataReader is the cheaper read Scan uses when r has it
// (store/sqlite's AuditStore): each event's index and canonical encoding,
// without hashes or search keys.
type DataReader interface {
	ReadEventData(ctx context.Context, from int64, limit int, fn func(idx int64, data []byte) error) (int, error)
}

// Access is one recorded access through the access proxy, as its audit
// event holds it.
type Access struct {
	Index int64
	Time  time.Time
	// Allowed is true for access.allowed events.
	Allowed bool
	// Decision is the recorded decision: allow, deny or approval_required.
	Decision string
	// Approval is the approval request an allowed access waited for.
	Approval string
	SpiffeID string
	Instance string
	Task     string
	// TaskPurpose and TaskCalls are recorded since #16; empty and 0 in
	// older events.
	TaskPurpose string
	TaskCalls   int64
	OnBehalfOf  string
	// SubjectLabels and TargetLabels are the caller's Identity labels and
	// the service's flow labels (recorded since #16, as details
	// subject_labels, URL-query encoded, and target_labels, comma-separated).
	SubjectLabels map[string]string
	TargetLabels  []string
	// Service is the HTTP service, or the MCP server of an MCP call.
	Service string
	Method  string
	Path    string
	// Tool, Resource or Prompt is set for an MCP call; Args holds its
	// arguments as canonical JSON when the MCPServer records them
	// (log_arguments), else "".
	Tool, Resource, Prompt string
	Args                   string
	Source                 string
	Node                   string
	Policy                 string
	Rule                   string
	Reason                 string
}

// Filter selects the accesses Scan passes on. The zero value selects all.
type Filter struct {
	// Since and Until bound the event time: Since <= time < Until.
	Since, Until time.Time
	// Identity is a SPIFFE ID pattern (see [MatchIdentity]).
	Identity string
	// Service selects one service by name.
	Service string
}

// pageSize is how many records Scan reads at a time.
const pageSize = 1000

// isAccess reports whether t is an access event type.
func isAccess(t audit.Type) bool { return t == audit.AccessAllowed || t == audit.AccessDenied }

// Scan calls fn with every access event of r that f selects, in index
// order. It reads pageSize records at a time and decodes only the fields
// an access needs, without the canonical re-encoding check of
// audit.DecodeEvent: integrity is `writ audit verify`'s job.
func Scan(ctx context.Context, r Records, f Filter, fn func(*Access) error) error {
	var a Access
	return scanEvents(ctx, r, f, isAccess, func(idx int64, ev *event) error {
		a = accessOf(idx, ev)
		return fn(&a)
	})
}

// scanEvents calls fn with every event of r whose type want accepts and
// that f selects, in index order.
func scanEvents(ctx context.Context, r Records, f Filter, want func(audit.Type) bool, fn func(int64, *event) error) error {
	if f.Identity != "" {
		if err := CheckIdentityPattern(f.Identity); err != nil {
			return err
		}
	}
	dc := newDecoder()
	var ev event
	each := func(idx int64, data []byte) error {
		ok, err := dc.decode(data, &ev, want)
		if err != nil {
			return &auditlog.RecordError{Index: idx, Err: err}
		}
		if !ok || f.Identity != "" && !MatchIdentity(f.Identity, ev.SpiffeID) ||
			!f.Since.IsZero() && ev.Time.Before(f.Since) || !f.Until.IsZero() && !ev.Time.Before(f.Until) ||
			f.Service != "" && ev.D.Service != f.Service && ev.D.MCPServer != f.Service {
			return nil
		}
		return fn(idx, &ev)
	}
	if dr, ok := r.(DataReader); ok {
		for from := int64(0); ; {
			last := from - 1
			n, err := dr.ReadEventData(ctx, from, pageSize, func(idx int64, data []byte) error {
				last = idx
				return each(idx, data)
			})
			if err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			from = last + 1
		}
	}
	for from := int64(0); ; {
		recs, err := r.ReadRecords(ctx, from, pageSize)
		if err != nil {
			return fmt.Errorf("read audit records from %d: %w", from, err)
		}
		if len(recs) == 0 {
			return nil
		}
		for _, rec := range recs {
			if err := each(rec.Index, rec.Data); err != nil {
				return err
			}
		}
		from = recs[len(recs)-1].Index + 1
	}
}

// accessOf reads an access event.
func accessOf(idx int64, ev *event) Access {
	d := &ev.D
	a := Access{
		Index: idx, Time: ev.Time, Allowed: ev.Type == audit.AccessAllowed, Decision: ev.Decision,
		Approval: d.Approval, SpiffeID: ev.SpiffeID, Instance: ev.Instance, Task: ev.Task,
		TaskPurpose: d.TaskPurpose, OnBehalfOf: ev.OnBehalfOf,
		Service: d.Service, Method: d.Method, Path: d.Path,
		Tool: d.Tool, Resource: d.Resource, Prompt: d.Prompt, Args: d.Args,
		Source: ev.Source, Node: ev.Node, Policy: ev.Policy, Rule: ev.Rule, Reason: ev.Reason,
	}
	if d.MCPServer != "" {
		a.Service = d.MCPServer
	}
	if a.Decision == "" {
		a.Decision = string(policy.Deny)
		if a.Allowed {
			a.Decision = string(policy.Allow)
		}
	}
	if d.TaskCalls != "" {
		if n, err := strconv.ParseInt(d.TaskCalls, 10, 64); err == nil {
			a.TaskCalls = n
		}
	}
	if s := d.TargetLabels; s != "" {
		a.TargetLabels = strings.Split(s, ",")
	}
	if s := d.SubjectLabels; s != "" {
		a.SubjectLabels = decodeLabels(s)
	}
	return a
}

// decodeLabels reads details subject_labels (audit.EncodeLabels); nil
// when they do not decode.
func decodeLabels(s string) map[string]string {
	v, err := url.ParseQuery(s)
	if err != nil {
		return nil
	}
	m := make(map[string]string, len(v))
	for k := range v {
		m[k] = v.Get(k)
	}
	return m
}

// Request is the policy request the access was decided with, as far as
// the event records it: headers and query values are not recorded, nor
// the groups of an on-behalf-of user, nor the arguments of an MCP call
// unless its MCPServer logs them.
func (a *Access) Request() *policy.Request {
	q := &policy.Request{}
	a.fill(q)
	return q
}

// fill sets q to a's request, reusing q's storage.
func (a *Access) fill(q *policy.Request) {
	src := a.Source
	if h, _, err := net.SplitHostPort(src); err == nil {
		src = h
	}
	*q = policy.Request{
		Kind:         policy.KindHTTP,
		Subject:      policy.Subject{SpiffeID: a.SpiffeID, Labels: a.SubjectLabels},
		Instance:     a.Instance,
		Task:         policy.Task{ID: a.Task, Purpose: a.TaskPurpose, OnBehalfOf: a.OnBehalfOf, Calls: a.TaskCalls},
		TargetLabels: a.TargetLabels,
		Source:       policy.Source{IP: src, Node: a.Node},
		Now:          a.Time,
	}
	if a.isMCP() {
		q.Kind = policy.KindMCP
		q.MCP = policy.MCPRequest{Server: a.Service, Tool: a.Tool, Resource: a.Resource, Prompt: a.Prompt, Args: a.ArgsMap()}
		return
	}
	q.HTTP = policy.HTTPRequest{Service: a.Service, Method: a.Method, Path: a.Path}
}

// isMCP reports whether a is an MCP call (a tool, resource or prompt).
func (a *Access) isMCP() bool { return a.Tool != "" || a.Resource != "" || a.Prompt != "" }

// ArgsMap decodes the recorded arguments of an MCP call the way the
// gateway hands them to policy (integers as int64, other numbers as
// float64); nil when none are recorded or they do not decode.
func (a *Access) ArgsMap() map[string]any {
	if a.Args == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(a.Args))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	return plainNumbers(m).(map[string]any)
}

func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
		return x
	}
	return v
}

// decidable reports whether the access names what a policy decides on;
// refusals before the caller or the target was known do not.
func (a *Access) decidable() bool {
	if a.SpiffeID == "" || a.Service == "" {
		return false
	}
	return a.isMCP() || a.Method != "" && strings.HasPrefix(a.Path, "/")
}

// CheckIdentityPattern reports whether p is a usable identity pattern.
func CheckIdentityPattern(p string) error {
	if _, err := path.Match(strings.TrimSuffix(p, "/**"), ""); err != nil {
		return fmt.Errorf("identity pattern %q: %w; use a SPIFFE ID, * for one segment or a trailing /** for everything under a path", p, err)
	}
	return nil
}

// MatchIdentity reports whether the SPIFFE ID id matches pattern p: "*"
// matches within one path segment and a trailing "/**" any non-empty
// suffix, as in policy subjects.
func MatchIdentity(p, id string) bool {
	if pre, ok := strings.CutSuffix(p, "/**"); ok {
		parts := strings.Count(pre, "/") + 1
		segs := strings.SplitN(id, "/", parts+1)
		if len(segs) <= parts || segs[parts] == "" {
			return false
		}
		ok, _ := path.Match(pre, strings.Join(segs[:parts], "/"))
		return ok
	}
	ok, _ := path.Match(p, id)
	return ok
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
