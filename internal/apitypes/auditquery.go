package apitypes

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// MaxAuditLimit caps AuditQuery.Limit on the API.
const MaxAuditLimit = 1000

// AuditQuery filters audit events: the query parameters of
// GET /v1/audit/events, /tail and /export. Empty fields match everything.
type AuditQuery struct {
	// SpiffeID selects events whose SPIFFE ID is this one or lies under it
	// as a path.
	SpiffeID string
	Instance string
	Task     string
	Type     string
	Decision string
	// Since and Until bound the event time: Since <= time < Until.
	Since, Until time.Time
	// Before selects events with an index lower than Before; 0: no bound.
	Before int64
	// After selects events with an index of at least After; 0: no bound.
	After int64
	// Ascending returns the oldest events first (order=asc).
	Ascending bool
	// Limit caps the number of results; 0 means the server's default.
	Limit int
}

// Values encodes q as URL query parameters (the inverse of
// ParseAuditQuery).
func (q AuditQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("spiffe_id", q.SpiffeID)
	set("instance", q.Instance)
	set("task", q.Task)
	set("type", q.Type)
	set("decision", q.Decision)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Before > 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Ascending {
		v.Set("order", "asc")
	}
	return v
}

// ParseAuditQuery decodes URL query parameters into an AuditQuery.
// Unknown parameters other than those in allow are errors, so that a
// misspelt filter is not silently ignored.
func ParseAuditQuery(v url.Values, allow ...string) (AuditQuery, error) {
	var q AuditQuery
	for k, vals := range v {
		if len(vals) != 1 {
			return q, fmt.Errorf("query parameter %s is given %d times; give it once", k, len(vals))
		}
		s := vals[0]
		var err error
		switch k {
		case "spiffe_id":
			q.SpiffeID = s
		case "instance":
			q.Instance = s
		case "task":
			q.Task = s
		case "type":
			q.Type = s
		case "decision":
			q.Decision = s
		case "since":
			q.Since, err = time.Parse(time.RFC3339Nano, s)
		case "until":
			q.Until, err = time.Parse(time.RFC3339Nano, s)
		case "before":
			q.Before, err = ParseIndex(s)
		case "after":
			q.After, err = ParseIndex(s)
		case "limit":
			q.Limit, err = strconv.Atoi(s)
			if err == nil && (q.Limit < 1 || q.Limit > MaxAuditLimit) {
				err = fmt.Errorf("want 1 to %d", MaxAuditLimit)
			}
		case "order":
			switch s {
			case "asc":
				q.Ascending = true
			case "desc":
			default:
				err = fmt.Errorf("want asc or desc")
			}
		default:
			if !slices.Contains(allow, k) {
				return q, fmt.Errorf("unknown query parameter %q; filters are spiffe_id, instance, task, type, decision, since, until, before, after, limit, order", k)
			}
		}
		if err != nil {
			return q, fmt.Errorf("query parameter %s=%q: %v", k, s, err)
		}
	}
	return q, nil
}

// ParseIndex parses an audit event index: a non-negative integer.
func ParseIndex(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a non-negative event index")
	}
	return n, nil
}
