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
	Service       string
	Method        string
	Path          string
	Source        string
	Node          string
	Policy        string
	Rule          string
	Reason        string
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

// Scan calls fn with every access event of r that f selects, in index
// order. It reads pageSize records at a time and decodes in full only the
// events whose type is an access type.
func Scan(ctx context.Context, r Records, f Filter, fn func(*Access) error) error {
	if f.Identity != "" {
		if err := CheckIdentityPattern(f.Identity); err != nil {
			return err
		}
	}
	var a Access
	for from := int64(0); ; {
		recs, err := r.ReadRecords(ctx, from, pageSize)
		if err != nil {
			return fmt.Errorf("read audit records from %d: %w", from, err)
		}
		if len(recs) == 0 {
			return nil
		}
		for _, rec := range recs {
			k, err := auditlog.DecodeKeys(rec.Data)
			if err != nil {
				return &auditlog.RecordError{Index: rec.Index, Err: err}
			}
			if k.Type != audit.AccessAllowed && k.Type != audit.AccessDenied {
				continue
			}
			if f.Identity != "" && !MatchIdentity(f.Identity, k.SpiffeID) {
				continue
			}
			var ev accessEvent
			// Only the fields an access needs, without the canonical
			// re-encoding check of audit.DecodeEvent (60% of the read
			// cost): integrity is `writ audit verify`'s job.
			if err := json.Unmarshal(rec.Data, &ev); err != nil {
				return &auditlog.RecordError{Index: rec.Index, Err: err}
			}
			if !f.Since.IsZero() && ev.Time.Before(f.Since) || !f.Until.IsZero() && !ev.Time.Before(f.Until) {
				continue
			}
			if f.Service != "" && ev.Details["service"] != f.Service {
				continue
			}
			a = accessOf(rec.Index, &ev)
			if err := fn(&a); err != nil {
				return err
			}
		}
		from = recs[len(recs)-1].Index + 1
	}
}

// accessEvent decodes the fields of an event that accessOf reads (the
// JSON names of audit.Event); the others are skipped.
type accessEvent struct {
	Time       time.Time         `json:"time"`
	Type       audit.Type        `json:"type"`
	SpiffeID   string            `json:"spiffe_id"`
	Instance   string            `json:"instance"`
	Task       string            `json:"task"`
	OnBehalfOf string            `json:"on_behalf_of"`
	Decision   string            `json:"decision"`
	Policy     string            `json:"policy"`
	Rule       string            `json:"rule"`
	Reason     string            `json:"reason"`
	Source     string            `json:"source"`
	Node       string            `json:"node"`
	Details    map[string]string `json:"details"`
}

// accessOf reads an access event.
func accessOf(idx int64, ev *accessEvent) Access {
	d := ev.Details
	a := Access{
		Index: idx, Time: ev.Time, Allowed: ev.Type == audit.AccessAllowed, Decision: ev.Decision,
		Approval: d["approval"], SpiffeID: ev.SpiffeID, Instance: ev.Instance, Task: ev.Task,
		TaskPurpose: d["task_purpose"], OnBehalfOf: ev.OnBehalfOf,
		Service: d["service"], Method: d["method"], Path: d["path"],
		Source: ev.Source, Node: ev.Node, Policy: ev.Policy, Rule: ev.Rule, Reason: ev.Reason,
	}
	if a.Decision == "" {
		a.Decision = string(policy.Deny)
		if a.Allowed {
			a.Decision = string(policy.Allow)
		}
	}
	if n, err := strconv.ParseInt(d["task_calls"], 10, 64); err == nil {
		a.TaskCalls = n
	}
	if s := d["target_labels"]; s != "" {
		a.TargetLabels = strings.Split(s, ",")
	}
	if s := d["subject_labels"]; s != "" {
		if v, err := url.ParseQuery(s); err == nil {
			a.SubjectLabels = make(map[string]string, len(v))
			for k := range v {
				a.SubjectLabels[k] = v.Get(k)
			}
		}
	}
	return a
}

// Request is the policy request the access was decided with, as far as
// the event records it: headers and query values are not recorded, nor
// the groups of an on-behalf-of user.
func (a *Access) Request() *policy.Request {
	src := a.Source
	if h, _, err := net.SplitHostPort(src); err == nil {
		src = h
	}
	return &policy.Request{
		Kind:         policy.KindHTTP,
		Subject:      policy.Subject{SpiffeID: a.SpiffeID, Labels: a.SubjectLabels},
		Instance:     a.Instance,
		Task:         policy.Task{ID: a.Task, Purpose: a.TaskPurpose, OnBehalfOf: a.OnBehalfOf, Calls: a.TaskCalls},
		HTTP:         policy.HTTPRequest{Service: a.Service, Method: a.Method, Path: a.Path},
		TargetLabels: a.TargetLabels,
		Source:       policy.Source{IP: src, Node: a.Node},
		Now:          a.Time,
	}
}

// decidable reports whether the access names what a policy decides on;
// refusals before the caller or the service was known do not.
func (a *Access) decidable() bool {
	return a.SpiffeID != "" && a.Service != "" && a.Method != "" && strings.HasPrefix(a.Path, "/")
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
