package auditlog

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// This file holds the wire types of the /v1/audit API, shared by
// [NewHandler] and internal/client.

// KeyInfo is the answer of GET /v1/audit/key.
type KeyInfo struct {
	// Origin is the log's name, the first line of its checkpoints.
	Origin string `json:"origin"`
	// VerifierKey is the signed-note verifier key
	// ("<name>+<hash>+<key>") that checks the log's checkpoints.
	VerifierKey string `json:"verifier_key"`
}

// SignedCheckpoint is the answer of GET /v1/audit/checkpoint: a checkpoint
// and its signed note.
type SignedCheckpoint struct {
	Checkpoint
	Note string `json:"note"`
}

// SearchResult is the answer of GET /v1/audit/events.
type SearchResult struct {
	Events []Entry `json:"events"`
	// NextBefore, when set, is the Before value that fetches the next
	// (older) page.
	NextBefore int64 `json:"next_before,omitempty"`
}

// MaxSearchLimit caps Query.Limit on the API.
const MaxSearchLimit = 1000

// Values encodes q as URL query parameters (the inverse of ParseQuery).
func (q Query) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("spiffe_id", q.SpiffeID)
	set("instance", q.Instance)
	set("task", q.Task)
	set("type", string(q.Type))
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

// ParseQuery decodes URL query parameters into a Query. Unknown
// parameters other than those in allow are errors, so that a misspelt
// filter is not silently ignored.
func ParseQuery(v url.Values, allow ...string) (Query, error) {
	var q Query
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
			q.Type = audit.Type(s)
		case "decision":
			q.Decision = s
		case "since":
			q.Since, err = time.Parse(time.RFC3339Nano, s)
		case "until":
			q.Until, err = time.Parse(time.RFC3339Nano, s)
		case "before":
			q.Before, err = parseIndex(s)
		case "after":
			q.After, err = parseIndex(s)
		case "limit":
			q.Limit, err = strconv.Atoi(s)
			if err == nil && (q.Limit < 1 || q.Limit > MaxSearchLimit) {
				err = fmt.Errorf("want 1 to %d", MaxSearchLimit)
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

func parseIndex(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a non-negative event index")
	}
	return n, nil
}
